"""Parquet datasets read in place (Hugging Face layouts too): rows equal pyarrow's, split
selection, nested columns, order and resume, S3 through moto, column projection."""

import os

import numpy as np
import pytest

import chute
from object_store import s3_options
from test_order import global_batches, run_layout
from test_peer_formats import MDS, _upload


def _write_parquet(root, files=3, rows=40, row_group_size=7):
    """A Hugging Face style layout written by pyarrow: root/data/train-0000K-of-0000N.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(root, "data"))
    expected = []
    for k in range(files):
        rng = np.random.default_rng(k)
        ids = range(k * rows, (k + 1) * rows)
        table = pa.table({
            "id": pa.array(list(ids), pa.int64()),
            "text": pa.array([None if i % 9 == 0 else f"row {i} ü" for i in ids], pa.string()),
            "image": pa.array([bytes(rng.integers(0, 256, i % 13, np.uint8)) for i in ids], pa.binary()),
            "score": pa.array([i / 3 for i in ids], pa.float32()),
            "small": pa.array([i % 100 - 50 for i in ids], pa.int8()),
            "flag": pa.array([i % 2 == 0 for i in ids]),
            "embedding": pa.array([[float(i)] * 4 for i in ids], pa.list_(pa.float32(), 4)),
            "tokens": pa.array([list(range(i % 5)) for i in ids], pa.list_(pa.int32())),
        })
        pq.write_table(table, os.path.join(root, "data", f"train-{k:05d}-of-{files:05d}.parquet"),
                       row_group_size=row_group_size)
        expected += table.to_pylist()
    return expected


def test_parquet_rows_equal_pyarrows(tmp_path):
    expected = _write_parquet(tmp_path / "hf")
    ds = chute.StreamingDataset(str(tmp_path / "hf"))  # no index; the files are in data/
    assert ds.core.format == "parquet" and len(ds) == len(expected) == 120
    for i, want in enumerate(expected):
        got = ds[i]
        for key in ("embedding", "tokens"):  # lists of numbers come back as numpy arrays
            assert isinstance(got[key], np.ndarray) and got[key].tolist() == pytest.approx(want.pop(key)), (i, key)
            got.pop(key)
        assert got == pytest.approx(want), f"row {i}"
    assert [s["id"] for s in ds] == list(range(120))


def test_parquet_split_selection(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    train = _write_parquet(tmp_path / "hf")  # data/train-0000k-of-00003.parquet
    for k in range(2):
        pq.write_table(pa.table({"id": pa.array([1000 + 10 * k + i for i in range(10)], pa.int64())}).append_column(
            "text", pa.array(["t"] * 10)), str(tmp_path / "hf" / "data" / f"test-{k:05d}-of-00002{'-9f2c' * k}.parquet"))
    with pytest.raises(ValueError, match=r"several splits \('test', 'train'\): choose one with split="):
        chute.StreamingDataset(str(tmp_path / "hf"))
    ds = chute.StreamingDataset(str(tmp_path / "hf"), split="train")
    assert [s["id"] for s in ds] == [row["id"] for row in train]
    assert [s["id"] for s in chute.StreamingDataset(str(tmp_path / "hf"), split="test")] == [
        1000 + 10 * k + i for k in range(2) for i in range(10)]
    with pytest.raises(FileNotFoundError, match=r"no Parquet files of split 'validation' \(there: 'test', 'train'"):
        chute.StreamingDataset(str(tmp_path / "hf"), split="validation")


def test_parquet_order_resume_and_s3(s3_server, tmp_path):
    _write_parquet(tmp_path / "hf")
    path = str(tmp_path / "hf")

    def only_id(sample):
        return {"i": sample["id"]}

    reference = global_batches(run_layout(path, 1, 1, 0, transform=only_id)[0])
    assert sorted(sum(reference, [])) == list(range(120))
    assert global_batches(run_layout(path, 1, 2, 2, transform=only_id)[0]) == reference
    bucket = _upload(s3_server, str(tmp_path / "hf" / "data"), "hf/data")
    remote = chute.StreamingDataset(f"s3://{bucket}/hf", storage_options=s3_options(s3_server.endpoint),
                                    cache_dir=str(tmp_path / "cache"), shuffle=True, transform=only_id)
    assert remote.core.format == "parquet" and remote[77] == {"i": 77}  # ranged reads of one row group
    loader = chute.StreamingDataLoader(remote, batch_size=8, num_workers=2)
    assert sorted(i for b in loader for i in b["i"].tolist()) == list(range(120))


def test_parquet_nested_columns_come_as_python_values(tmp_path):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    point = pa.struct([("x", pa.int64()), ("tags", pa.list_(pa.string()))])
    table = pa.table({
        "id": [0, 1, 2],
        "meta": pa.array([{"x": 1, "tags": ["a", "b"]}, None, {"x": 3, "tags": []}], point),
        "words": pa.array([["ü", None], [], None], pa.list_(pa.string())),
        "boxes": pa.array([[{"x": 1, "tags": None}], [], [{"x": 2, "tags": ["c"]}]], pa.list_(point)),
        "attrs": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int32())),
        "label": pa.array(["cat", "dog", "cat"]).dictionary_encode(),
        "blob": pa.array([[b"\x00\xff"], [], None], pa.list_(pa.binary())),
        "when": pa.array([datetime.datetime(2020, 1, 2, 3, 4, 5)] * 3, pa.timestamp("us")),
    })
    pq.write_table(table, str(tmp_path / "t.parquet"))
    ds = chute.StreamingDataset(str(tmp_path))
    for i, want in enumerate(table.to_pylist()):
        got = ds[i]
        assert got["when"].startswith("2020-01-02 03:04:05")  # other types: Arrow's text
        want["attrs"] = None if want["attrs"] is None else [list(kv) for kv in want["attrs"]]  # maps: [[k, v], ...]
        want["blob"] = None if want["blob"] is None else [b.decode("latin-1") for b in want["blob"]]
        del got["when"], want["when"]
        assert got == want, i


def test_parquet_columns_reads_only_those(s3_server, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = pa.table({"id": list(range(64)), "blob": [os.urandom(200_000) for _ in range(64)]})
    os.makedirs(tmp_path / "p")
    pq.write_table(big, str(tmp_path / "p" / "t.parquet"), row_group_size=64, compression="none")
    bucket = _upload(s3_server, str(tmp_path / "p"), "p")

    def fetched(**kwargs):
        before = chute._core.trace_counters()["bytes_fetched"]
        ds = chute.StreamingDataset(f"s3://{bucket}/p", storage_options=s3_options(s3_server.endpoint),
                                    cache_dir=str(tmp_path / f"cache-{len(kwargs)}"), **kwargs)
        sample = ds[10]
        return sample, chute._core.trace_counters()["bytes_fetched"] - before

    only_id, few = fetched(columns=["id"])
    everything, many = fetched()
    assert only_id == {"id": 10} and everything["blob"] == big.column("blob")[10].as_py()
    assert few < 1_000_000 < 12_000_000 < many  # the blob column chunk (12.8 MB) was not fetched
    with pytest.raises(Exception, match=r"t\.parquet has no column 'nope' \(its columns"):
        chute.StreamingDataset(str(tmp_path / "p"), columns=["nope"])
    with pytest.raises(Exception, match=r"columns= selects columns of Parquet datasets only"):
        chute.StreamingDataset(os.path.join(MDS, "plain"), columns=["i"])
