"""StreamingRawDataset: raw objects listed by a prefix, a directory or index files, local
and in moto (S3) and the GCS emulator, fetched by the engine into the node cache."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import chute
from object_store import create_gcs_bucket, create_s3_bucket, s3_options
from test_order import GLOBAL_BATCH, global_batches, run_layout

N = 120  # objects


def _payload(i: int) -> bytes:
    return (f"object {i} ".encode() * (50 + i % 37))[: 300 + 7 * i]


def _s3(server):
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _bucket(server):
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(server.endpoint, bucket)
    return bucket


def _put_objects(server, bucket, prefix, n=N, with_json_every=3):
    s3 = _s3(server)
    for i in range(n):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{i:04d}.jpg", Body=_payload(i))
        if i % with_json_every == 0:
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{i:04d}.json", Body=json.dumps({"i": i}).encode())


def _write_local(root, n=N):
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        with open(os.path.join(root, f"{i:04d}.jpg"), "wb") as f:
            f.write(_payload(i))
        if i % 3 == 0:
            with open(os.path.join(root, f"{i:04d}.json"), "w") as f:
                json.dump({"i": i}, f)


def _check_grouped(samples):
    assert sorted(s["__key__"] for s in samples) == [f"{i:04d}" for i in range(N)]
    for s in samples:
        i = int(s["__key__"])
        assert s["jpg"] == _payload(i)
        assert s["json"] == (json.dumps({"i": i}).encode() if i % 3 == 0 else None)


def test_directory_groups_extensions_and_reads_in_place(tmp_path):
    _write_local(tmp_path / "imgs")
    ds = chute.StreamingRawDataset(tmp_path / "imgs", block_rows=16)
    assert ds.core.is_local and len(ds) == N
    _check_grouped(list(ds))
    assert ds[5]["jpg"] == _payload(5) and ds[-1]["__key__"] == f"{N - 1:04d}"
    only = chute.StreamingRawDataset(tmp_path / "imgs", columns_to_download=["json"])
    assert len(only) == (N + 2) // 3 and sorted(only[0]) == ["__key__", "json"]
    small = chute.StreamingRawDataset(tmp_path / "imgs", filter="SELECT * FROM dataframe WHERE __size__ < 400")
    assert sorted(s["__key__"] for s in small) == [f"{i:04d}" for i in range(N) if len(_payload(i)) < 400]
    with pytest.raises(ValueError, match=r"extension\(s\) \['png'\].*found: \['jpg', 'json'\]"):
        chute.StreamingRawDataset(tmp_path / "imgs", columns_to_download=["png"])


def test_s3_prefix_through_the_node_cache_with_workers(s3_server, tmp_path):
    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "imgs")
    opts = s3_options(s3_server.endpoint)
    ds = chute.StreamingRawDataset(f"s3://{bucket}/imgs/", storage_options=opts, block_rows=16, shuffle=True)
    assert not ds.core.is_local and len(ds) == N
    loader = chute.StreamingDataLoader(ds, batch_size=8, num_workers=2, collate_fn=lambda s: s)
    _check_grouped([s for batch in loader for s in batch])
    cached = [f for f in os.listdir(ds.core.cache_path) if f.endswith(".bin")]
    assert len(cached) == len(ds.core.chunks)  # every block fetched once, kept for the next epoch
    _check_grouped(list(ds))


def test_gcs_prefix(gcs_server, tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    create_gcs_bucket(gcs_server.endpoint, bucket)
    _write_local(tmp_path / "imgs", 20)
    store = chute._core.Storage.open(f"gs://{bucket}/imgs", {"anonymous": "true"})
    for name in os.listdir(tmp_path / "imgs"):
        store.write(name, (tmp_path / "imgs" / name).read_bytes())
    ds = chute.StreamingRawDataset(f"gs://{bucket}/imgs", storage_options={"anonymous": "true"}, block_rows=8)
    assert sorted(s["jpg"] for s in ds) == sorted(_payload(i) for i in range(20))


def _index_rows(n=N):
    return [{"id": 1000 + i, "image": f"imgs/{i:04d}.jpg", "score": i / 10, "caption": f"caption {i}"}
            for i in range(n)]


def _write_index(path, kind, rows):
    table = pa.Table.from_pylist(rows)
    if kind == "csv":
        pa.csv.write_csv(table, path)
    elif kind == "parquet":
        pq.write_table(table, path, row_group_size=25)  # several row groups
    elif kind == "jsonl":
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    elif kind == "json":
        with open(path, "w") as f:
            json.dump(rows, f)


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl", "json"])
def test_index_files_with_relative_urls(tmp_path, kind):
    import pyarrow.csv  # noqa: F401

    _write_local(tmp_path / "imgs")
    _write_index(tmp_path / f"index.{kind}", kind, _index_rows())
    ds = chute.StreamingRawDataset(tmp_path / f"index.{kind}", columns_to_download=["image"], index_col="id",
                                   block_rows=32)
    samples = list(ds)
    assert [s["id"] for s in samples] == [1000 + i for i in range(N)]
    for s in samples:
        i = s["id"] - 1000
        assert s["image"] == _payload(i) and s["caption"] == f"caption {i}" and s["score"] == pytest.approx(i / 10)


def test_index_on_s3_wildcard_filter_and_text_paths(s3_server, tmp_path):
    import pyarrow.csv  # noqa: F401

    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "data/imgs")
    s3 = _s3(s3_server)
    rows = _index_rows()
    for part in range(3):  # data/index/part-<k>.csv naming ../imgs/<i>.jpg: relative to the file's directory
        _write_index(tmp_path / f"part-{part}.csv", "csv",
                     [dict(r, image="../" + r["image"]) for r in rows[part * 40:(part + 1) * 40]])
        s3.upload_file(str(tmp_path / f"part-{part}.csv"), bucket, f"data/index/part-{part}.csv")
    opts = s3_options(s3_server.endpoint)
    ds = chute.StreamingRawDataset(f"s3://{bucket}/data/index/*.csv", columns_to_download=["image"],
                                   filter="SELECT * FROM dataframe WHERE score >= 6 ORDER BY id",
                                   storage_options=opts)
    assert [s["id"] for s in ds] == [1000 + i for i in range(60, N)]
    assert ds[0]["image"] == _payload(60)
    text = "\n".join(f"s3://{bucket}/data/imgs/{i:04d}.jpg" for i in range(10)) + "\n"
    s3.put_object(Bucket=bucket, Key="paths.txt", Body=text.encode())
    paths = chute.StreamingRawDataset(f"s3://{bucket}/paths.txt", storage_options=opts)
    assert [s["path"] for s in paths] == [_payload(i) for i in range(10)]


def test_index_errors_name_the_fix(tmp_path):
    _write_local(tmp_path / "imgs", 4)
    _write_index(tmp_path / "index.jsonl", "jsonl", _index_rows(4))
    with pytest.raises(ValueError, match=r"columns_to_download=\[\.\.\.\].*'image'"):
        chute.StreamingRawDataset(tmp_path / "index.jsonl")
    with pytest.raises(ValueError, match="no column 'img'"):
        chute.StreamingRawDataset(tmp_path / "index.jsonl", columns_to_download=["img"])
    with pytest.raises(ValueError, match="filter=.*failed"):
        chute.StreamingRawDataset(tmp_path / "index.jsonl", columns_to_download=["image"], filter="SELECT nope")
    with pytest.raises(ValueError, match="no rows left by filter"):
        chute.StreamingRawDataset(tmp_path / "index.jsonl", columns_to_download=["image"],
                                  filter="SELECT * FROM dataframe WHERE score > 100")
    with pytest.raises(FileNotFoundError, match=r"no index file matches '\*\.csv'"):
        chute.StreamingRawDataset(tmp_path / "*.csv", columns_to_download=["image"])


def _with_missing(server, bucket):
    """An index of N rows on S3 whose rows 7 and 50 name objects that do not exist."""
    _put_objects(server, bucket, "imgs")
    rows = _index_rows()
    for i in (7, 50):
        rows[i]["image"] = f"imgs/gone-{i}.jpg"
    body = "\n".join(json.dumps(r) for r in rows).encode()
    _s3(server).put_object(Bucket=bucket, Key="index.jsonl", Body=body)
    return f"s3://{bucket}/index.jsonl"


def test_missing_objects_error_or_skip_the_same_samples_everywhere(s3_server):
    bucket = _bucket(s3_server)
    src = _with_missing(s3_server, bucket)
    opts = s3_options(s3_server.endpoint)
    strict = chute.StreamingRawDataset(src, columns_to_download=["image"], index_col="id", storage_options=opts,
                                       block_rows=16)
    with pytest.raises(FileNotFoundError, match=rf"row 7 \(id=1007\) of .*column 'image': s3://{bucket}/imgs/gone-7"
                                                r"\.jpg: no such object \(allow_missing=True skips such samples\)"):
        list(strict)
    with pytest.raises(FileNotFoundError, match="row 50 .*gone-50"):
        strict[50]  # random access fetches that row alone
    kwargs = dict(columns_to_download=["image"], index_col="id", storage_options=opts, block_rows=16,
                  allow_missing=True)
    expected = sorted(1000 + i for i in range(N) if i not in (7, 50))
    for nodes, rpn, workers in [(1, 1, 0), (1, 2, 2)]:
        per_rank, _ = run_layout(src, nodes, rpn, workers, dataset_class=chute.StreamingRawDataset,
                                 ids=lambda b: b["id"].tolist(), drop_last=True, **kwargs)
        seen = sorted(i for rank in per_rank for batch in rank[0] for i in batch)
        assert seen == expected
    ds = chute.StreamingRawDataset(src, **kwargs)
    assert ds.skipped == [7, 50]
    assert sorted(s["id"] for s in ds) == expected


def test_resume_on_another_layout_reads_exactly_the_rest(s3_server):
    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "imgs")
    kwargs = dict(storage_options=s3_options(s3_server.endpoint), block_rows=10, dataset_class=chute.StreamingRawDataset,
                  columns_to_download=["jpg"],  # (default_collate refuses the None of absent json)
                  ids=lambda b: [int(k) for k in b["__key__"]], drop_last=True)
    src = f"s3://{bucket}/imgs/"
    reference = global_batches(run_layout(src, 1, 1, 0, **kwargs)[0])
    assert global_batches(run_layout(src, 1, 2, 2, **kwargs)[0]) == reference
    first, state = run_layout(src, 1, 2, 0, stop_after=3, **kwargs)
    assert state["consumed"] == 3 * GLOBAL_BATCH
    rest, _ = run_layout(src, 2, 2, 2, state=state, **kwargs)  # four ranks with two workers each
    seen = [i for rank in first for batch in rank[0] for i in batch]
    remaining = [i for rank in rest for batch in rank[0] for i in batch]
    assert sorted(seen + remaining) == list(range(N))


def test_random_access_fetches_only_that_row(s3_server):
    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "imgs")
    ds = chute.StreamingRawDataset(f"s3://{bucket}/imgs/", storage_options=s3_options(s3_server.endpoint),
                                   block_rows=40)
    before = chute._core.trace_counters()["chunks_downloaded"]
    assert ds[77]["jpg"] == _payload(77) and ds[3]["json"] == b'{"i": 3}'
    assert chute._core.trace_counters()["chunks_downloaded"] == before  # no block was fetched
    assert not [f for f in os.listdir(ds.core.cache_path) if f.endswith(".bin")]


def test_cache_limit_is_kept_by_evicting_blocks(s3_server):
    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "imgs", with_json_every=10**9)
    limit = 3 * 10 * 1500  # about three blocks of ten objects (~0.3-1.1 KB each)
    ds = chute.StreamingRawDataset(f"s3://{bucket}/imgs/", storage_options=s3_options(s3_server.endpoint),
                                   block_rows=10, max_cache_size=limit, prefetch_bytes=1)
    assert sorted(s["jpg"] for s in ds) == sorted(_payload(i) for i in range(N))
    cached = [os.path.getsize(os.path.join(ds.core.cache_path, f)) for f in os.listdir(ds.core.cache_path)
              if f.endswith(".bin")]
    assert 0 < len(cached) < len(ds.core.chunks) and sum(cached) <= limit


def test_reader_killed_mid_download_blocks_nobody(s3_server, tmp_path):
    """A process SIGKILLed while fetching blocks (its objects served slowly by a proxy) leaves
    no entry that blocks another reader, and no temporary file that counts."""
    from object_store import TcpProxy

    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "imgs", with_json_every=10**9)
    proxy = TcpProxy(int(s3_server.endpoint.rsplit(":", 1)[1]), delay=0.05)
    proxy.start()
    cache = str(tmp_path / "cache")
    script = textwrap.dedent(f"""
        import sys, chute
        ds = chute.StreamingRawDataset("s3://{bucket}/imgs/", cache_dir={cache!r}, block_rows=60,
                                       storage_options={s3_options(f"http://127.0.0.1:{proxy.port}")!r})
        print("ready", flush=True)
        for s in ds:
            pass
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        import time

        time.sleep(1.0)  # fetching its first block through the slow proxy
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        proxy.stop()
    ds = chute.StreamingRawDataset(f"s3://{bucket}/imgs/", cache_dir=cache, block_rows=60,
                                   storage_options=s3_options(s3_server.endpoint))
    assert sorted(s["jpg"] for s in ds) == sorted(_payload(i) for i in range(N))


def test_million_row_parquet_index_iterates_in_bounded_memory(tmp_path):
    """1,000,000 rows (a few objects named, the rest null) iterated by a process that holds
    the index's blocks one at a time: its peak RSS is measured and bounded."""
    _write_local(tmp_path / "imgs", 10)
    n = 1_000_000
    urls = pa.array([f"imgs/{i:04d}.jpg" if i < 10 else None for i in range(n)], pa.string())
    table = pa.table({"id": pa.array(range(n), pa.int64()), "image": urls,
                      "caption": pa.array([f"a caption of sample {i}" for i in range(n)])})
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=100_000)
    del table, urls
    kwargs = dict(columns_to_download=["image"], block_rows=4096, cache_dir=str(tmp_path / "cache"))
    chute.StreamingRawDataset(tmp_path / "big.parquet", **kwargs)  # builds the node's index once
    # VmHWM, not ru_maxrss: that one keeps the peak of the forked parent across exec.
    script = textwrap.dedent(f"""
        import chute

        def kib(field):
            with open("/proc/self/status") as f:
                return int(f.read().split(field + ":")[1].split()[0])

        ds = chute.StreamingRawDataset({str(tmp_path / "big.parquet")!r}, **{kwargs!r})
        base = kib("VmHWM")
        loader = chute.StreamingDataLoader(ds, batch_size=4096, collate_fn=lambda s: s)
        rows = sum(len(b) for b in loader)
        print(rows, base, kib("VmHWM"))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows, base, peak = map(int, out.stdout.split())
    assert rows == n
    print(f"1M-row index: RSS {base / 1024:.0f} MiB after open, peak {peak / 1024:.0f} MiB while iterating")
    assert peak - base < 100 * 1024  # KiB: the blocks in use, not the table (~60 MB of strings alone)


def test_prefix_listing_in_parallel_on_s3_sees_every_key_once(s3_server):
    """More keys than a page (ListObjectsV2 pages of 1,000), listed in ranges at once by
    chute's S3 client, names needing XML escapes and non-ASCII ones included."""
    from concurrent.futures import ThreadPoolExecutor

    bucket = _bucket(s3_server)
    s3 = _s3(s3_server)
    keys = [f"many/{i:05d}.bin" for i in range(2300)] + ["many/a&b <c>.bin", "many/caf\u00e9 \u00e0.bin",
                                                         "many/sub/dir/x.bin", "other/not-listed.bin"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    store = chute._core.Storage.open(f"s3://{bucket}/many", s3_options(s3_server.endpoint))
    names = [name for name, size in store.walk()]
    assert sorted(names) == sorted(k[len("many/"):] for k in keys if k.startswith("many/"))


def _caption_and_size(sample):
    return {"id": sample["id"], "size": len(sample["image"]), "image": sample["image"]}


def test_raw_dataset_is_an_optimize_input(s3_server, tmp_path):
    """Each part of optimize reads its rows in order through the engine (prefetched), with
    worker processes; skipped rows are left out."""
    bucket = _bucket(s3_server)
    src = _with_missing(s3_server, bucket)
    ds = chute.StreamingRawDataset(src, columns_to_download=["image"], storage_options=s3_options(s3_server.endpoint),
                                   allow_missing=True, block_rows=16)
    out = chute.optimize(_caption_and_size, ds, str(tmp_path / "converted"), num_workers=2, num_parts=3,
                         progress=False)
    converted = chute.StreamingDataset(out)
    assert [s["id"] for s in converted] == [1000 + i for i in range(N) if i not in (7, 50)]
    assert all(s["image"] == _payload(s["id"] - 1000) and s["size"] == len(s["image"]) for s in converted)


def test_a_copy_on_another_node_builds_its_index(tmp_path):
    """A raw dataset pickled to a machine whose cache lacks the index (a Ray worker of
    optimize) builds it there."""
    import pickle
    import shutil

    _write_local(tmp_path / "imgs", 12)
    ds = chute.StreamingRawDataset(tmp_path / "imgs", block_rows=5)
    state = pickle.dumps(ds)
    shutil.rmtree(ds.input_dir)  # another node's cache
    copy = pickle.loads(state)
    assert os.path.exists(os.path.join(copy.input_dir, "index.parquet"))
    assert sorted(s["jpg"] for s in copy) == sorted(_payload(i) for i in range(12))


def test_as_paths_gives_local_files(s3_server, tmp_path, monkeypatch):
    # In place: the objects' own paths.
    root = tmp_path / "objects"
    _write_local(str(root))
    ds = chute.StreamingRawDataset(str(root), as_paths=True, cache_dir=str(tmp_path / "cache"))
    sample = ds[5]
    assert sample["jpg"] == str(root / "0005.jpg") and open(sample["jpg"], "rb").read() == _payload(5)
    # Fetched: written once per node under cache_dir/raw-objects, with the extension.
    bucket = _bucket(s3_server)
    _put_objects(s3_server, bucket, "p")
    cache = tmp_path / "cache2"
    ds = chute.StreamingRawDataset(f"s3://{bucket}/p/", as_paths=True, storage_options=s3_options(s3_server.endpoint),
                                   cache_dir=str(cache))
    loader = chute.StreamingDataLoader(ds, batch_size=16, num_workers=2, collate_fn=lambda b: b)
    samples = [s for batch in loader for s in batch]
    assert len(samples) == N
    for s in samples:
        i = int(s["__key__"])
        assert s["jpg"].startswith(str(cache / "raw-objects")) and s["jpg"].endswith(".jpg")
        assert open(s["jpg"], "rb").read() == _payload(i)
        if i % 3:
            assert s["json"] is None
    assert ds[7]["jpg"] == next(s["jpg"] for s in samples if s["__key__"] == "0007")  # the same file again
    # Over max_cache_size, files not handed out recently are removed, oldest first.
    monkeypatch.setattr(chute.raw._ObjectFiles, "KEEP_S", 0)
    small = chute.StreamingRawDataset(f"s3://{bucket}/p/", as_paths=True, max_cache_size=4000,
                                      storage_options=s3_options(s3_server.endpoint), cache_dir=str(tmp_path / "c3"))
    paths = [s["jpg"] for s in small]
    left = [p for p in paths if os.path.exists(p)]
    assert 0 < sum(os.path.getsize(p) for p in left) <= 4000 + 4000 // 16 + max(map(len, map(_payload, range(N))))
    assert paths[-1] in left
