"""Bad input gets a clear error naming the file and the fix."""

import json
import os

import numpy as np
import pytest

import chute


def _sample(i):
    return {"i": i, "x": np.arange(100, dtype=np.int64) + i}


@pytest.fixture
def dataset(make_dataset):
    return make_dataset(_sample, range(100), chunk_size=25)


def test_missing_directory(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=f"{missing}: no such dataset directory"):
        chute.StreamingDataset(missing)


def test_missing_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.json does not exist.*not a chute dataset"):
        chute.StreamingDataset(tmp_path)


def test_corrupt_byte_is_caught_by_the_checksum(dataset):
    chunk = os.path.join(dataset, "chunk-000002.bin")
    data = bytearray(open(chunk, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(chunk, "wb").write(bytes(data))
    ds = chute.StreamingDataset(dataset)
    assert ds[10]["i"] == 10  # other chunks still read
    with pytest.raises(chute.CorruptDataError, match=r"chunk-000002\.bin: checksum mismatch"):
        ds[55]
    with pytest.raises(chute.CorruptDataError, match=r"chunk-000002\.bin"):
        list(ds)


def test_truncated_chunk(dataset):
    chunk = os.path.join(dataset, "chunk-000001.bin")
    size = os.path.getsize(chunk)
    os.truncate(chunk, size - 10)
    with pytest.raises(chute.CorruptDataError, match=rf"chunk-000001\.bin: truncated: {size - 10} bytes, "
                                                      rf"index.json says {size}"):
        chute.StreamingDataset(dataset)[30]


def test_missing_chunk(dataset):
    os.remove(os.path.join(dataset, "chunk-000003.bin"))
    with pytest.raises(FileNotFoundError, match=r"chunk-000003\.bin.*listed in index.json is missing"):
        chute.StreamingDataset(dataset)[99]


def test_newer_format_version(dataset):
    index_path = os.path.join(dataset, "index.json")
    index = json.load(open(index_path))
    index["version"] = chute._core.FORMAT_VERSION + 1
    json.dump(index, open(index_path, "w"))
    with pytest.raises(chute.FormatVersionError, match="index.json is format version 2.*upgrade chute"):
        chute.StreamingDataset(dataset)


def test_damaged_index(dataset):
    index_path = os.path.join(dataset, "index.json")
    open(index_path, "w").write('{"format": "chute", "version": 1, "chunks": [')
    with pytest.raises(chute.CorruptDataError, match="index.json: not valid JSON"):
        chute.StreamingDataset(dataset)


def test_fn_failure_names_the_input(make_dataset):
    def fn(name):
        if name == "b.jpg":
            raise ValueError("cannot decode")
        return {"name": name}

    with pytest.raises(chute.OptimizeError, match=r"fn failed on inputs\[1\] = 'b.jpg': ValueError: cannot decode"):
        make_dataset(fn, ["a.jpg", "b.jpg", "c.jpg"], num_workers=2)


def test_structure_change_is_an_error(make_dataset):
    with pytest.raises(chute.OptimizeError, match=r"inputs\[3\].*differ from the first sample"):
        make_dataset(lambda i: {"a": i} if i != 3 else {"a": i, "b": 1}, range(5))
    with pytest.raises(chute.OptimizeError, match=r"inputs\[2\].*differ"):
        make_dataset(lambda i: {"a": float(i) if i == 2 else i}, range(5), "types")


def test_unsupported_leaf_and_huge_int(make_dataset):
    with pytest.raises(chute.OptimizeError, match=r"leaf 'x'.*unsupported type object.*allow_pickle=True"):
        make_dataset(lambda i: {"x": object()}, range(2))
    with pytest.raises(chute.OptimizeError, match="does not fit in 64 bits"):
        make_dataset(lambda i: 2**70, range(2), "big")


def test_existing_dataset_is_not_overwritten_silently(make_dataset):
    path = make_dataset(_sample, range(3))
    with pytest.raises(ValueError, match="already holds a chute dataset.*overwrite=True"):
        make_dataset(_sample, range(3))
    make_dataset(lambda i: {"j": i}, range(7), overwrite=True)
    ds = chute.StreamingDataset(path)
    assert len(ds) == 7 and ds[6] == {"j": 6}


def test_bad_arguments(make_dataset):
    with pytest.raises(ValueError, match="unknown compression 'gzip'"):
        make_dataset(_sample, range(3), compression="gzip")
    with pytest.raises(ValueError, match="chunk_bytes='64XB' is not a size"):
        make_dataset(_sample, range(3), chunk_bytes="64XB")
