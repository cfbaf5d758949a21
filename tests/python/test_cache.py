"""The node-local cache of remote chunks, shared through shared memory, crash-safe."""

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

import chute
from object_store import TcpProxy, create_s3_bucket, s3_options

N, CHUNK = 400, 10  # 40 chunks


def _options(endpoint):
    return s3_options(endpoint, timeout=20)


def _sample(i):
    return {"i": i, "x": np.full(20_000, i % 251, dtype=np.uint8)}


@pytest.fixture(scope="module")
def dataset(s3_server):
    bucket = f"c-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    url = f"s3://{bucket}/ds"
    chute.optimize(_sample, range(N), url, chunk_size=CHUNK, num_parts=1, progress=False, num_workers=0,
                   storage_options=_options(s3_server.endpoint))
    size = sum(c[2] for c in chute.StreamingDataset(url, storage_options=_options(s3_server.endpoint)).core.chunks)
    return url, size


def _shm_entries():
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"chute-{os.getuid()}-")]


READER = textwrap.dedent("""
    import json, os, sys, time
    import chute
    from torch.utils.data import DataLoader
    url, options, cache, workers, pause = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    ds = chute.StreamingDataset(url, storage_options=options, cache_dir=cache, shuffle=True,
                                max_cache_size=int(sys.argv[6]) or None)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=lambda s: s)
    seen = []
    held = []
    for sample in loader:
        seen.append(sample["i"])
        assert int(sample["x"][0]) == sample["i"] % 251
        if len(seen) == 5:
            print("reading", flush=True)
            held.append(sample)      # keep a reference into a chunk
            time.sleep(pause)        # ... while we may be killed
    print(json.dumps(sorted(seen)), flush=True)
""")


def _reader(url, endpoint, cache, workers=0, pause=0.0, max_cache_size=0, rank=0, world=1):
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    return subprocess.Popen([sys.executable, "-c", READER, url, json.dumps(_options(endpoint)), cache, str(workers),
                             str(pause), str(max_cache_size)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_ranks_two_workers_download_each_chunk_once(s3_server, dataset, tmp_path):
    url, size = dataset
    proxy = TcpProxy(s3_server.port).start()
    try:
        procs = [_reader(url, proxy.endpoint, str(tmp_path), workers=2, rank=r, world=2) for r in range(2)]
        seen = [_finish(p) for p in procs]
    finally:
        proxy.stop()
    assert sorted(seen[0] + seen[1]) == list(range(N))
    # every chunk once for the node; besides, each of the 4 readers reads its first batch
    # (one sample) directly, in whole 64 KiB spans so that they are checked (at most two
    # spans for a 20 KB item); the rest is index.json (read by each process) and HTTP
    # headers, less than one chunk
    chunk = size // (N // CHUNK)
    first_batches = 4 * 2 * 2**16
    assert size <= proxy.bytes_served < size + first_batches + chunk, (proxy.bytes_served, size, chunk)
    assert not _shm_entries()


def test_cache_stays_within_its_limit(s3_server, dataset, tmp_path):
    url, size = dataset
    chunk = size // (N // CHUNK)
    limit = size // 3
    ds = chute.StreamingDataset(url, storage_options=_options(s3_server.endpoint), cache_dir=str(tmp_path),
                                max_cache_size=limit, shuffle=True)
    cache = ds.core.cache_path
    assert cache.startswith(str(tmp_path))
    peak, stop = [0], threading.Event()

    def sample_size():
        while not stop.is_set():
            total = 0
            for f in glob.glob(os.path.join(cache, "*")) + glob.glob(os.path.join(cache, ".fetch-*")):
                try:
                    total += os.path.getsize(f)
                except OSError:
                    pass
            peak[0] = max(peak[0], total)
            time.sleep(0.002)

    t = threading.Thread(target=sample_size, daemon=True)
    t.start()
    try:
        seen = sorted(s["i"] for s in ds)
    finally:
        stop.set()
        t.join()
    assert seen == list(range(N))
    # open chunks (at most 2) and the one being fetched may exceed the limit, nothing else
    assert peak[0] <= limit + 3 * chunk + 4096, (peak[0], limit, chunk)
    assert peak[0] > 0


def test_killed_readers_leave_nothing_that_blocks_or_leaks(s3_server, dataset, tmp_path):
    url, size = dataset
    cache = str(tmp_path)
    # killed in the middle of a fetch: a slow store keeps the fetch going
    slow = TcpProxy(s3_server.port, delay=0.05).start()
    try:
        fetching = _reader(url, slow.endpoint, cache)
        time.sleep(1.5)
        fetching.send_signal(signal.SIGKILL)
        fetching.wait()
    finally:
        slow.stop()
    # killed while reading, holding a chunk (and its cache reference)
    reading = _reader(url, s3_server.endpoint, cache, pause=60, max_cache_size=size // 4)
    assert reading.stdout.readline().strip() == "reading"
    reading.send_signal(signal.SIGKILL)
    reading.wait()
    # a new process on the same cache completes the epoch with correct samples (the
    # reader checks every sample's payload), also evicting what the dead held
    assert _finish(_reader(url, s3_server.endpoint, cache, max_cache_size=size // 4)) == list(range(N))
    assert not _shm_entries(), _shm_entries()
    leftovers = [f for f in glob.glob(os.path.join(cache, "*", ".fetch-*"))]
    assert not leftovers


def test_chunks_are_prefetched_in_epoch_order(s3_server, dataset, tmp_path):
    url, size = dataset
    ds = chute.StreamingDataset(url, storage_options=_options(s3_server.endpoint), cache_dir=str(tmp_path),
                                shuffle=True, partitions=1, prefetch_bytes=size // 4)
    it = iter(ds)
    # Past the first batch (one sample here), which is read directly and handed out before
    # any download starts: the chunks of the next ~quarter of the epoch are coming.
    next(it), next(it)
    order = ds.epoch_order(0)
    upcoming = list(dict.fromkeys(ds.core.chunk_of(i) for i in order.fill(0, 1, N // 4).tolist()))
    deadline = time.monotonic() + 30
    cached = set()
    while time.monotonic() < deadline and not set(upcoming[:5]) <= cached:
        cached = {int(os.path.basename(f)[1:-4]) for f in glob.glob(os.path.join(ds.core.cache_path, "c*.bin"))}
        time.sleep(0.05)
    assert set(upcoming[:5]) <= cached, (upcoming[:5], sorted(cached))
    assert len(list(it)) == N - 2  # and the epoch goes on


def test_random_access_reads_only_the_item(s3_server, tmp_path):
    # One chunk of 60 samples of 20 KB (1.2 MB), read in 64 KiB spans.
    bucket = f"r-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    url = chute.optimize(_sample, range(60), f"s3://{bucket}/ds", chunk_size=60, num_parts=1, progress=False, num_workers=0,
                         storage_options=_options(s3_server.endpoint))
    proxy = TcpProxy(s3_server.port).start()
    try:
        ds = chute.StreamingDataset(url, storage_options=_options(proxy.endpoint), cache_dir=str(tmp_path))
        chunk = ds.core.chunks[0][2]
        before = proxy.bytes_served
        for i in (3, 4, 40, -1):
            sample = ds[i]
            assert sample["i"] == i % 60 and int(sample["x"][0]) == (i % 60) % 251
        served = proxy.bytes_served - before
    finally:
        proxy.stop()
    # the header and tables, and each item's spans (at most two of 64 KiB for a 20 KB
    # item, so that its bytes are checked), not the whole chunk
    assert served < 4 * 2 * 2**16 + 8192 < chunk, (served, chunk)
    assert not glob.glob(os.path.join(ds.core.cache_path, "c*.bin"))


def test_leaving_an_iteration_unfinished_leaves_nothing_in_dev_shm(s3_server, dataset, tmp_path):
    # DataLoader workers end with os._exit and may still be running when the main process
    # exits (an iteration broken off); the shared-memory index must go all the same.
    url, _ = dataset
    script = textwrap.dedent("""
        import json, sys
        import chute
        ds = chute.StreamingDataset(sys.argv[1], storage_options=json.loads(sys.argv[2]), cache_dir=sys.argv[3])
        batches = iter(chute.StreamingDataLoader(ds, batch_size=8, num_workers=2, collate_fn=list))
        print(len(next(batches)), flush=True)  # and exit, the workers still up
    """)
    before = set(_shm_entries())
    out = subprocess.run([sys.executable, "-c", script, url, json.dumps(_options(s3_server.endpoint)),
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["8"]
    assert set(_shm_entries()) <= before


def _rss_file_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


def test_reading_does_not_keep_the_dataset_mapped(tmp_path):
    """Samples whose leaves are copied out (bytes) leave no chunk pages mapped in the
    reading process (ReleaseMapping), also the pages hashed to verify spans: its resident
    memory does not grow towards the size of the dataset as it reads."""
    big = lambda i: {"image": np.random.default_rng(i).integers(0, 256, 200_000, dtype=np.uint8).tobytes(), "i": i}
    url = chute.optimize(big, range(200), str(tmp_path / "ds"), chunk_bytes="8MB", progress=False, num_workers=0)
    ds = chute.StreamingDataset(url, shuffle=True)
    assert sorted(s["i"] for s in ds[:5]) == list(range(5))  # code paths warmed up (their pages count too)
    before = _rss_file_kb()
    seen = sorted(s["i"] for s in ds)
    grown_mb = (_rss_file_kb() - before) / 1024
    assert seen == list(range(200))
    assert grown_mb < 4, f"{grown_mb:.1f} MB of the 40 MB dataset still mapped"


def test_items_read_by_range_are_checked(s3_server, tmp_path):
    """A byte flipped in an object-store chunk fails the items read by byte range from its
    64 KiB span (random access, an epoch's first batch), naming the chunk; the others read."""
    import boto3

    bucket = f"k-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    url = chute.optimize(_sample, range(60), f"s3://{bucket}/ds", chunk_size=60, num_parts=1, progress=False, num_workers=0,
                         storage_options=_options(s3_server.endpoint))
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    key = "ds/chunk-00000-000000.bin"
    data = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[-100] ^= 0xFF  # in the last item
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    ds = chute.StreamingDataset(url, storage_options=_options(s3_server.endpoint), cache_dir=str(tmp_path))
    assert ds[0]["i"] == 0
    with pytest.raises(chute.CorruptDataError, match=r"chunk-00000-000000\.bin: checksum mismatch in bytes"):
        ds[59]


def test_a_job_killed_whole_leaves_no_segment_behind(s3_server, dataset, tmp_path):
    """Every process of a job SIGKILLed: nothing was left to remove its /dev/shm segment,
    so the next process of the user to attach to any cache removes it."""
    url, _ = dataset
    killed = _reader(url, s3_server.endpoint, str(tmp_path / "killed"), pause=60)
    assert killed.stdout.readline().strip() == "reading"
    orphan = _shm_entries()
    assert len(orphan) == 1
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert _shm_entries() == orphan
    assert _finish(_reader(url, s3_server.endpoint, str(tmp_path / "other"))) == list(range(N))
    assert not _shm_entries(), _shm_entries()


THREADS = textwrap.dedent("""
    import collections, json, os, sys
    import chute
    def threads():
        return collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip()
                                   for t in os.listdir("/proc/self/task"))
    url, options, cache = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    before = threads()
    ds = chute.StreamingDataset(url, storage_options=options, cache_dir=cache, shuffle=True, max_concurrency=2)
    n = sum(len(batch["i"]) for batch in chute.StreamingDataLoader(ds, batch_size=16))
    assert ds[7]["i"] == 7
    print(json.dumps({"samples": n, "new_threads": dict(threads() - before)}))
""")


def test_thread_model(s3_server, dataset, tmp_path):
    """docs/architecture.md, "Threads": a local dataset starts no thread; a remote one
    with a cache its three pools, sized from max_concurrency (2: 2 download, 2 fetch,
    8 item threads; Arrow's S3 client may add its own)."""
    local = chute.optimize(_sample, range(50), str(tmp_path / "local"), chunk_size=CHUNK, num_parts=1, progress=False,
                           num_workers=0)
    url, _ = dataset

    def run(source, options):
        out = subprocess.run([sys.executable, "-c", THREADS, source, json.dumps(options), str(tmp_path / "cache")],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert run(local, None) == {"samples": 50, "new_threads": {}}
    remote = run(url, _options(s3_server.endpoint))
    mine = {name: n for name, n in remote["new_threads"].items() if name.startswith("chute-")}
    assert remote["samples"] == N and mine == {"chute-download": 2, "chute-fetch": 2, "chute-item": 8}, remote


def test_a_mix_of_remote_datasets_prefetches_each(s3_server, dataset, tmp_path):
    """CombinedStreamingDataset reads each dataset through its own Reader: past the first
    batch, chunks of both datasets that no sample read yet came from are being fetched
    into their caches, and the epoch holds every sample of both once."""
    url, size = dataset
    other = f"s3://c-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, other.removeprefix("s3://"))
    other = chute.optimize(_sample, range(N, N + 200), f"{other}/ds", chunk_size=CHUNK, num_parts=1, progress=False, num_workers=0,
                           storage_options=_options(s3_server.endpoint))
    datasets = [chute.StreamingDataset(u, storage_options=_options(s3_server.endpoint), cache_dir=str(tmp_path),
                                       shuffle=True, prefetch_bytes=size // 4) for u in (url, other)]
    it = iter(chute.StreamingDataLoader(chute.CombinedStreamingDataset(datasets), batch_size=6))
    seen = [i for _ in range(2) for i in next(it)["i"].tolist()]
    read_from = [{datasets[0].core.chunk_of(i) for i in seen if i < N},
                 {datasets[1].core.chunk_of(i - N) for i in seen if i >= N}]

    def ahead():  # chunks in each cache that no sample read so far came from
        return [len({int(os.path.basename(f)[1:-4]) for f in glob.glob(os.path.join(ds.core.cache_path, "c*.bin"))}
                    - chunks) for ds, chunks in zip(datasets, read_from)]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and min(ahead()) < 2:
        time.sleep(0.05)
    assert min(ahead()) >= 2, ahead()
    seen += [i for batch in it for i in batch["i"].tolist()]
    assert sorted(seen) == list(range(N + 200))
