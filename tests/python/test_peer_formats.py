"""Datasets written by other libraries, read in place: Mosaic Streaming's MDS and litdata
(fixtures written by mosaicml-streaming 0.13.0 and litdata 0.2.76 themselves, with what
their own readers return: tests/data/peers/make_fixtures.py)."""

import gzip
import io
import json
import math
import os
import pickle
import shutil
import tarfile
import uuid

import numpy as np
import pytest
import torch

import chute
from object_store import create_s3_bucket, s3_options
from test_order import GLOBAL_BATCH, global_batches, run_layout

PEERS = os.path.join(os.path.dirname(__file__), "..", "data", "peers")
MDS = os.path.join(PEERS, "mds")
LITDATA = os.path.join(PEERS, "litdata")
# Arrow IPC rows (0.2.76's layout for JSON-like dicts); pytree items uncompressed and in the
# three zstd modes (frames of 4 items, per item, whole file).
LITDATA_VARIANTS = ["rows", "tree", "tree-zstd-batch", "tree-zstd-sample", "tree-zstd-chunk"]
VARIANTS = ["plain", "zstd", "gz"]  # uncompressed shards; whole shards compressed with zstd:7, gzip


def _upload(server, local_dir, prefix):
    """Copies the files of `local_dir` to s3://<new bucket>/<prefix>/ on `server`; the bucket."""
    import boto3

    bucket = f"peers-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(server.endpoint, bucket)
    s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    for name in os.listdir(local_dir):
        s3.upload_file(os.path.join(local_dir, name), bucket, f"{prefix}/{name}")
    return bucket


def _expected(variant, root=MDS):
    with open(os.path.join(root, f"{variant}.expected.pkl"), "rb") as f:
        return pickle.load(f)


def _same_as_peer(got, want, where):
    assert sorted(got) == sorted(want), where
    for key, value in want.items():
        mine = got[key]
        if isinstance(value, tuple) and value and value[0] == "PIL":  # (PIL, mode, size, pixels)
            assert (mine.mode, mine.size, mine.tobytes()) == value[1:], f"{where}[{key}]"
        elif isinstance(value, (np.ndarray, np.generic)):
            assert type(mine) is type(value) and mine.dtype == value.dtype, f"{where}[{key}]: {mine!r} vs {value!r}"
            assert np.shape(mine) == np.shape(value) and np.asarray(mine).tobytes() == np.asarray(value).tobytes(), \
                f"{where}[{key}]"
        elif isinstance(value, torch.Tensor):
            assert isinstance(mine, torch.Tensor) and mine.dtype == value.dtype and torch.equal(mine, value), \
                f"{where}[{key}]"
        elif isinstance(value, dict):
            _same_as_peer(mine, value, f"{where}[{key}]")
        elif isinstance(value, list) and value and isinstance(value[0], tuple):  # a list of images
            assert [(m.mode, m.size, m.tobytes()) for m in mine] == [v[1:] for v in value], f"{where}[{key}]"
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(mine), f"{where}[{key}]"
        else:
            assert type(mine) is type(value) and mine == value, f"{where}[{key}]: {mine!r} vs {value!r}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_mds_samples_equal_what_mosaic_reads(variant):
    ds = chute.StreamingDataset(os.path.join(MDS, variant))  # recognized from its index.json
    expected = _expected(variant)
    assert ds.core.format == "mds" and len(ds) == len(expected) == 30
    for i, want in enumerate(expected):
        _same_as_peer(ds[i], want, f"{variant} sample {i}")
    assert [s["i"] for s in ds] == list(range(30))  # iteration in the writer's order
    assert [s["i"] for s in ds[-3:]] == [27, 28, 29]


def _only_i(sample):
    return {"i": sample["i"]}


def test_mds_order_and_resume_on_any_layout():
    path = os.path.join(MDS, "plain")
    reference = global_batches(run_layout(path, 1, 1, 0, transform=_only_i)[0])
    assert sorted(sum(reference, [])) == list(range(30))
    for nodes, rpn, workers in [(1, 2, 0), (1, 2, 2)]:  # the full global batches; the last is padded
        assert global_batches(run_layout(path, nodes, rpn, workers, transform=_only_i)[0])[:3] == reference[:3]
    first, state = run_layout(path, 1, 2, 0, stop_after=2, transform=_only_i)
    assert state["consumed"] == 2 * GLOBAL_BATCH
    rest, _ = run_layout(path, 1, 1, 2, state=state, transform=_only_i)  # resumed on one rank, two workers
    seen = sorted(i for rank in first for batch in rank[0] for i in batch)
    remaining = sorted(i for rank in rest for batch in rank[0] for i in batch)
    assert sorted(seen + remaining) == list(range(30))


def test_mds_from_s3_through_the_node_cache(s3_server, tmp_path):
    for variant in ("plain", "zstd"):
        bucket = _upload(s3_server, os.path.join(MDS, variant), variant)
        ds = chute.StreamingDataset(f"s3://{bucket}/{variant}", storage_options=s3_options(s3_server.endpoint),
                                    cache_dir=str(tmp_path / "cache"), shuffle=True, seed=3)
        expected = _expected(variant)
        _same_as_peer(ds[17], expected[17], f"s3 {variant} sample 17")  # random access
        loader = chute.StreamingDataLoader(ds, batch_size=4, num_workers=2, collate_fn=list)
        got = {s["i"]: s for batch in loader for s in batch}
        assert sorted(got) == list(range(30))
        for i, want in enumerate(expected):
            _same_as_peer(got[i], want, f"s3 {variant} sample {i}")


def _copy_with_index(tmp_path, edit):
    out = shutil.copytree(os.path.join(MDS, "plain"), tmp_path / "ds")
    with open(out / "index.json") as f:
        index = json.load(f)
    edit(index)
    with open(out / "index.json", "w") as f:
        json.dump(index, f)
    return str(out)


def test_mds_refusals_name_the_file_and_the_column(tmp_path):
    def pickled(index):
        for shard in index["shards"]:
            shard["column_encodings"][shard["column_names"].index("blob")] = "pkl"

    with pytest.raises(Exception, match=r"index\.json: column 'blob' has encoding 'pkl': pickled columns"):
        chute.StreamingDataset(_copy_with_index(tmp_path / "a", pickled))

    def version_3(index):
        index["version"] = 3

    with pytest.raises(Exception, match=r"index\.json: MDS index version is not 2"):
        chute.StreamingDataset(_copy_with_index(tmp_path / "b", version_3))

    def lz4(index):
        index["shards"][0].update(compression="lz5", zip_data=dict(index["shards"][0]["raw_data"]))

    with pytest.raises(Exception, match=r"unknown compression 'lz5'"):
        chute.StreamingDataset(_copy_with_index(tmp_path / "c", lz4))


def test_mds_corrupt_shard_names_the_shard(tmp_path):
    out = shutil.copytree(os.path.join(MDS, "plain"), tmp_path / "ds")
    shard = out / "shard.00001.mds"
    data = bytearray(shard.read_bytes())
    data[0] ^= 0xFF  # the sample count
    shard.write_bytes(bytes(data))
    ds = chute.StreamingDataset(str(out))
    with pytest.raises(Exception, match=r"shard\.00001\.mds: holds \d+ samples, index\.json says"):
        [s for s in ds]


def test_format_can_be_forced_and_a_wrong_one_is_named(tmp_path, make_dataset):
    assert chute.StreamingDataset(os.path.join(MDS, "plain"), format="mds").core.format == "mds"
    own = make_dataset(lambda i: {"i": i}, range(5))
    with pytest.raises(Exception, match=r"not an MDS index"):
        chute.StreamingDataset(own, format="mds")
    assert chute.StreamingDataset(os.path.join(LITDATA, "tree")).core.format == "litdata"
    with pytest.raises(Exception, match=r"not a litdata index"):
        chute.StreamingDataset(own, format="litdata")


@pytest.mark.parametrize("variant", LITDATA_VARIANTS)
def test_litdata_samples_equal_what_litdata_reads(variant):
    ds = chute.StreamingDataset(os.path.join(LITDATA, variant))
    expected = _expected(variant, LITDATA)
    assert ds.core.format == "litdata" and len(ds) == len(expected) == 25
    for i, want in enumerate(expected):
        _same_as_peer(ds[i], want, f"{variant} sample {i}")
    key = "label" if variant == "rows" else "i"
    assert [s[key] for s in ds] == [e[key] for e in expected]  # the writers' order


def test_litdata_from_s3_with_workers(s3_server, tmp_path):
    for variant in ("rows", "tree-zstd-batch", "tree-zstd-chunk"):
        bucket = _upload(s3_server, os.path.join(LITDATA, variant), variant)
        ds = chute.StreamingDataset(f"s3://{bucket}/{variant}", storage_options=s3_options(s3_server.endpoint),
                                    cache_dir=str(tmp_path / "cache"), shuffle=True)
        expected = _expected(variant, LITDATA)
        key = "label" if variant == "rows" else "i"  # unique per sample
        loader = chute.StreamingDataLoader(ds, batch_size=4, num_workers=2, collate_fn=list)
        got = {s[key]: s for batch in loader for s in batch}
        assert sorted(got) == sorted(e[key] for e in expected)
        for want in expected:
            _same_as_peer(got[want[key]], want, f"s3 {variant} sample {want[key]}")
        if variant != "tree-zstd-batch":  # chunks read whole (Arrow rows, a zstd file): once per node, even
            chunks = sum(os.path.getsize(os.path.join(LITDATA, variant, n))  # for the first batch (plus the
                         for n in os.listdir(os.path.join(LITDATA, variant)) if n.endswith(".bin"))  # headers)
            assert chunks <= loader.stats()["bytes_fetched"] < 1.5 * chunks


def test_litdata_refusals_name_the_reason(tmp_path):
    def edit(variant, change):
        out = shutil.copytree(os.path.join(LITDATA, variant), tmp_path / f"{variant}-{len(os.listdir(tmp_path))}")
        index = json.loads((out / "index.json").read_text())
        change(index["config"])
        (out / "index.json").write_text(json.dumps(index))
        return str(out)

    with pytest.raises(Exception, match=r"index\.json: the dataset is encrypted"):
        chute.StreamingDataset(edit("tree", lambda c: c.update(encryption={"algorithm": "fernet", "level": "sample"})))
    with pytest.raises(Exception, match=r"leaves stored as 'pickle' are not read \(pickled data is not unpickled\)"):
        chute.StreamingDataset(edit("tree", lambda c: c["data_format"].__setitem__(0, "pickle")))
    with pytest.raises(Exception, match=r"litdata's ParquetLoader datasets are not read"):
        chute.StreamingDataset(edit("tree", lambda c: c.update(item_loader="ParquetLoader")))


def test_litdata_token_blocks_equal_litdatas_and_resume():
    """litdata's TokensLoader cuts blocks within each chunk (a chunk's remainder is never
    read); chute reads the same blocks, in any order, resumable."""
    path = os.path.join(LITDATA, "tokens")
    expected = _expected("tokens", LITDATA)  # 258 blocks of 16, as litdata returns them
    ds = chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size=16))
    assert len(ds) == len(expected) == 258
    for i, want in enumerate(expected):
        assert np.asarray(ds[i]).tolist() == want.tolist(), f"block {i}"
    shuffled = chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size=16), shuffle=True, seed=5)
    loader = chute.StreamingDataLoader(shuffled, batch_size=8, num_workers=2)
    first = []
    for k, batch in enumerate(loader):
        first += [tuple(row) for row in batch.tolist()]
        if k == 9:
            break
    state = loader.state_dict()
    rest = chute.StreamingDataLoader(
        chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size=16), shuffle=True, seed=5),
        batch_size=8, num_workers=1)
    rest.load_state_dict(state)
    blocks = first + [tuple(row) for batch in rest for row in batch.tolist()]
    assert sorted(blocks) == sorted(tuple(b.tolist()) for b in expected)  # each block once


def test_mds_token_column_reads_as_token_blocks():
    path = os.path.join(MDS, "tokens")  # sample i: arange(100 i, 100 i + 16), int32
    per_sample = chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size=16))
    assert len(per_sample) == 40
    assert all(np.asarray(per_sample[i]).tolist() == list(range(100 * i, 100 * i + 16)) for i in range(40))
    longer = chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size=24))
    assert len(longer) == 40 * 16 // 24  # blocks run on across samples and shards
    assert np.asarray(longer[1]).tolist() == list(range(108, 116)) + list(range(200, 216))


WEBDATASET = os.path.join(PEERS, "webdataset", "plain")  # 24 samples in 4 shards, a long (PAX) key


def test_webdataset_samples_equal_what_webdataset_reads():
    expected = _expected("plain", os.path.join(PEERS, "webdataset"))
    ds = chute.StreamingDataset(WEBDATASET)  # no index: recognized by its *.tar shards
    assert ds.core.format == "webdataset" and len(ds) == len(expected) == 24
    for i, want in enumerate(expected):
        want = {k: v for k, v in want.items() if k != "__local_path__"}
        assert _no_url(ds[i]) == want, f"sample {i}"
    # "__url__": the shard's, as WebDataset gives it (the fixtures were written elsewhere)
    assert sorted({ds[i]["__url__"] for i in range(24)}) == sorted(
        os.path.join(WEBDATASET, n) for n in os.listdir(WEBDATASET))
    decoded = chute.StreamingDataset(WEBDATASET, decode=True)
    assert decoded[8] == {"__key__": "000008", "__url__": decoded[8]["__url__"], "cls": 3, "txt": "caption 8",
                          "json": {"i": 8}, "bin": expected[8]["bin"]}


def _no_url(sample: dict) -> dict:
    return {k: v for k, v in sample.items() if k != "__url__"}


def test_webdataset_order_resume_and_s3(s3_server, tmp_path):
    reference = global_batches(run_layout(WEBDATASET, 1, 1, 0, transform=_key_only)[0])
    assert sorted(sum(reference, [])) == list(range(24))
    assert global_batches(run_layout(WEBDATASET, 1, 2, 2, transform=_key_only)[0]) == reference
    bucket = _upload(s3_server, WEBDATASET, "shards")
    remote = chute.StreamingDataset(f"s3://{bucket}/shards", storage_options=s3_options(s3_server.endpoint),
                                    cache_dir=str(tmp_path / "cache"))
    local = chute.StreamingDataset(WEBDATASET)
    # The scan read the (small) shards whole and kept them: the node cache takes them, the
    # epoch fetches only its first batch's items (read by their own ranges, before chunks).
    before = chute._core.trace_counters()["bytes_fetched"]
    assert sorted(s["__key__"] for s in remote) == sorted(s["__key__"] for s in local)
    shards = sum(os.path.getsize(os.path.join(WEBDATASET, n)) for n in os.listdir(WEBDATASET))
    assert chute._core.trace_counters()["bytes_fetched"] - before < shards / 10
    copies = [p for p in (tmp_path / "cache" / "webdataset-scans").iterdir() if p.name.endswith(".shards")]
    assert len(copies) == 1 and not os.listdir(copies[0])  # all moved into the node cache
    assert remote.core.format == "webdataset" and _no_url(remote[13]) == _no_url(local[13])
    assert remote[13]["__url__"] == f"s3://{bucket}/shards/{os.path.basename(local[13]['__url__'])}"
    # The scan is kept in the cache directory: the next open reads no shard bytes.
    before = chute._core.trace_counters()["bytes_fetched"]
    again = chute.StreamingDataset(f"s3://{bucket}/shards", storage_options=s3_options(s3_server.endpoint),
                                   cache_dir=str(tmp_path / "cache"))
    assert chute._core.trace_counters()["bytes_fetched"] == before and len(again) == 24
    assert os.listdir(tmp_path / "cache" / "webdataset-scans")
    loader = chute.StreamingDataLoader(remote, batch_size=5, num_workers=2, collate_fn=list)
    assert sorted((s["__key__"] for b in loader for s in b)) == sorted(s["__key__"] for s in local)


def _key_only(sample):
    return {"i": int(sample["__key__"].rsplit("-", 1)[-1])}


def test_webdataset_scan_is_redone_when_a_shard_changes(tmp_path):
    shards = shutil.copytree(WEBDATASET, tmp_path / "shards")
    cache = str(tmp_path / "cache")
    assert len(chute.StreamingDataset(str(shards), cache_dir=cache)) == 24
    os.remove(shards / "shard-000003.tar")  # 3 samples fewer
    assert len(chute.StreamingDataset(str(shards), cache_dir=cache)) == 21


def test_webdataset_refusals(tmp_path):
    (tmp_path / "a.tar").write_bytes(b"x" * 1024)
    with pytest.raises(Exception, match=r"a\.tar: bad tar header checksum at offset 0"):
        chute.StreamingDataset(str(tmp_path))
    for name, content, error in [("shard.tar.gz", b"\x1f\x8b", r"shard\.tar\.gz: the gzip stream is truncated"),
                                 ("shard.tar.gz", b"not gzip", r"shard\.tar\.gz: not a gzip stream"),
                                 ("shard.tar.xz", b"x", r"shard\.tar\.xz: tar shards compressed other than with gzip")]:
        d = tmp_path / name.replace(".", "-") / str(len(content))
        d.mkdir(parents=True)
        (d / name).write_bytes(content)
        with pytest.raises(Exception, match=error):
            chute.StreamingDataset(str(d))


def test_webdataset_gzip_shards(s3_server, tmp_path):
    # .tar.gz shards as ShardWriter writes them (the tar, gzipped): the same samples as the
    # plain shards, scanned as a stream; each shard inflated whole when opened.
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in sorted(os.listdir(WEBDATASET)):
        with open(os.path.join(WEBDATASET, name), "rb") as f:
            (gz / (name + ".gz")).write_bytes(gzip.compress(f.read(), mtime=0))
    plain = chute.StreamingDataset(WEBDATASET)
    ds = chute.StreamingDataset(str(gz))
    assert ds.core.format == "webdataset" and len(ds) == 24
    assert [_no_url(ds[i]) for i in range(24)] == [_no_url(plain[i]) for i in range(24)]
    assert ds[0]["__url__"] == str(gz / "shard-000000.tar.gz")
    assert global_batches(run_layout(str(gz), 1, 2, 2, transform=_key_only)[0]) == global_batches(
        run_layout(WEBDATASET, 1, 2, 2, transform=_key_only)[0])
    # Members larger than the scan's window are skipped piece by piece.
    big = tmp_path / "big"
    big.mkdir()
    payload = np.random.default_rng(0).integers(0, 256, 3 << 20, np.uint8).tobytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("a.bin", payload), ("a.txt", b"first"), ("b.txt", b"second")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (big / "s.tar.gz").write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    shutil.copy(os.path.join(WEBDATASET, "shard-000001.tar"), gz)
    with pytest.raises(ValueError, match=r"shard-000001\.tar\.gz and .*shard-000001\.tar are the same shard twice"):
        chute.StreamingDataset(str(gz))
    os.remove(gz / "shard-000001.tar")
    assert [_no_url(chute.StreamingDataset(str(big))[i]) for i in range(2)] == [
        {"__key__": "a", "bin": payload, "txt": b"first"}, {"__key__": "b", "txt": b"second"}]
    bucket = _upload(s3_server, str(gz), "gz")
    remote = chute.StreamingDataset(f"s3://{bucket}/gz", storage_options=s3_options(s3_server.endpoint),
                                    cache_dir=str(tmp_path / "cache"), decode=True)
    assert _no_url(remote[13]) == _no_url(chute.StreamingDataset(WEBDATASET, decode=True)[13])
    loader = chute.StreamingDataLoader(remote, batch_size=5, num_workers=2, collate_fn=list)
    assert sorted(s["__key__"] for b in loader for s in b) == sorted(s["__key__"] for s in plain)


def _tree_i(sample):
    return {"i": sample["i"]}


def test_litdata_order_on_any_layout_and_mixing_formats():
    path = os.path.join(LITDATA, "tree")
    reference = global_batches(run_layout(path, 1, 1, 0, transform=_tree_i)[0])
    assert sorted(sum(reference, [])) == list(range(25))
    assert global_batches(run_layout(path, 1, 2, 2, transform=_tree_i)[0])[:3] == reference[:3]
    mixed = chute.CombinedStreamingDataset(
        [chute.StreamingDataset(path, transform=_tree_i),
         chute.StreamingDataset(os.path.join(MDS, "plain"), transform=lambda s: {"i": 1000 + s["i"]})],
        weights=[0.5, 0.5], seed=3)
    seen = [i for batch in chute.StreamingDataLoader(mixed, batch_size=4) for i in batch["i"].tolist()]
    assert sorted(seen) == list(range(25)) + list(range(1000, 1030))  # both formats, each sample once


def test_mds_array_shape_that_overflows_is_corrupt(tmp_path):
    """An ndarray whose dims multiply past 2**64 (a damaged or hostile shard) is an error,
    not a zero-size view of arbitrary memory."""
    import struct

    array = bytes([(2 << 2) | 3]) + struct.pack("<QQ", 1 << 32, 1 << 32)  # int8, shape (2^32, 2^32), no values
    sample = struct.pack("<I", len(array)) + array  # the column's size, then the column
    header = struct.pack("<III", 1, 12, 12 + len(sample))
    (tmp_path / "shard.00000.mds").write_bytes(header + sample)
    (tmp_path / "index.json").write_text(json.dumps({"version": 2, "shards": [{
        "column_encodings": ["ndarray:int8"], "column_names": ["a"], "column_sizes": [None], "compression": None,
        "format": "mds", "hashes": [], "raw_data": {"basename": "shard.00000.mds", "bytes": len(header + sample),
                                                     "hashes": {}},
        "samples": 1, "size_limit": None, "version": 2, "zip_data": None}]}))
    with pytest.raises(Exception, match=r"shard\.00000\.mds: sample 0: ndarray column 'a' has a shape too large"):
        chute.StreamingDataset(str(tmp_path))[0]
