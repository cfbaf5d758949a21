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
    return make_dataset(_sample, range(100), chunk_size=25, num_parts=1)


def test_missing_directory(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=f"{missing}: no such dataset directory"):
        chute.StreamingDataset(missing)


def test_missing_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.json does not exist.*not a chute dataset"):
        chute.StreamingDataset(tmp_path)


def test_corrupt_byte_is_caught_by_the_checksum(dataset):
    chunk = os.path.join(dataset, "chunk-00000-000002.bin")
    data = bytearray(open(chunk, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(chunk, "wb").write(bytes(data))
    ds = chute.StreamingDataset(dataset)
    assert ds[10]["i"] == 10  # other chunks still read
    with pytest.raises(chute.CorruptDataError, match=r"chunk-00000-000002\.bin: checksum mismatch"):
        ds[55]
    with pytest.raises(chute.CorruptDataError, match=r"chunk-00000-000002\.bin"):
        list(ds)


def test_truncated_chunk(dataset):
    chunk = os.path.join(dataset, "chunk-00000-000001.bin")
    size = os.path.getsize(chunk)
    os.truncate(chunk, size - 10)
    with pytest.raises(chute.CorruptDataError, match=rf"chunk-00000-000001\.bin: truncated: {size - 10} bytes, "
                                                      rf"index.json says {size}"):
        chute.StreamingDataset(dataset)[30]


def test_missing_chunk(dataset):
    os.remove(os.path.join(dataset, "chunk-00000-000003.bin"))
    with pytest.raises(FileNotFoundError, match=r"chunk-00000-000003\.bin.*listed in index.json is missing"):
        chute.StreamingDataset(dataset)[99]


def _big(i):  # 100 KB that does not compress
    return {"i": i, "x": np.random.default_rng(i).integers(0, 256, 100_000, dtype=np.uint8)}


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


def _header(path):
    """(data_offset, span_shift, num_spans) of a chunk file (docs/format.md)."""
    head = open(path, "rb").read(64)
    data_offset = int.from_bytes(head[32:40], "little")
    return data_offset, int.from_bytes(head[48:52], "little"), int.from_bytes(head[52:56], "little")


@pytest.mark.parametrize("compression", [None, "zstd:1"])
def test_only_the_spans_read_are_checked(make_dataset, compression):
    # 40 items of 100 KB in one chunk: 64 KiB spans, each checked before the first item
    # in it is returned; a flipped byte fails the items of its span, not the others.
    path = make_dataset(_big, range(40), chunk_bytes="64MB", num_parts=1, compression=compression)
    chunk = os.path.join(path, "chunk-00000-000000.bin")
    data_offset, shift, spans = _header(chunk)
    assert shift == 16 and spans == -(-(os.path.getsize(chunk) - data_offset) // 2**16)
    _flip(chunk, os.path.getsize(chunk) - 10)  # in the last span
    ds = chute.StreamingDataset(path)
    assert ds[0]["i"] == 0
    with pytest.raises(chute.CorruptDataError, match=r"chunk-00000-000000\.bin: checksum mismatch in bytes"):
        ds[39]
    with pytest.raises(chute.CorruptDataError, match=r"chunk-00000-000000\.bin"):
        list(ds)


def test_damaged_tables_are_caught(make_dataset):
    path = make_dataset(_big, range(12), chunk_bytes="64MB", num_parts=1)
    chunk = os.path.join(path, "chunk-00000-000000.bin")
    _flip(chunk, 64 + 8 * 5 + 1)  # item_offsets[5]
    with pytest.raises(chute.CorruptDataError, match=r"chunk-00000-000000\.bin: checksum mismatch in the header or tables"):
        chute.StreamingDataset(path)[0]


def test_version_1_chunks_without_spans_are_read(make_dataset):
    # A version-1 chunk has no span table (header fields zero): its layout still reads.
    path = make_dataset(_big, range(12), chunk_bytes="64MB", num_parts=1)
    chunk = os.path.join(path, "chunk-00000-000000.bin")
    with open(chunk, "r+b") as f:
        f.seek(8)
        f.write((1).to_bytes(4, "little"))
        f.seek(48)
        f.write(bytes(16))  # span_shift, num_spans, tables_xxh3
    ds = chute.StreamingDataset(path, verify_checksums=False)
    assert [s["i"] for s in ds] == list(range(12))
    np.testing.assert_array_equal(ds[7]["x"], _big(7)["x"])


def test_newer_format_version(dataset):
    index_path = os.path.join(dataset, "index.json")
    index = json.load(open(index_path))
    index["version"] = chute._core.FORMAT_VERSION + 1
    json.dump(index, open(index_path, "w"))
    newer = chute._core.FORMAT_VERSION + 1
    with pytest.raises(chute.FormatVersionError, match=f"index.json is format version {newer}.*upgrade chute"):
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
