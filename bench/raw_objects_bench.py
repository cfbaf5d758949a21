"""Raw objects streamed from a simulated cloud store: chute.StreamingRawDataset over a prefix
beside the S3 connector for PyTorch (S3MapDataset and S3IterableDataset.from_prefix in a
plain DataLoader) and a plain boto3 map dataset, in one run; and listing a large prefix.

    python bench/raw_objects_bench.py [--samples 10000] [--sample-kb 110] [--batch 64]
        [--workers 2] [--first-byte-ms 20] [--mbps-per-connection 100] [--keys 200000]
        [--peer-python /path/to/python] [--server-processes 2] [--dir NEW_DIR] [--cases ...]

The store is bench/s3_bench_server.py (each request waits --first-byte-ms; each connection
moves at most --mbps-per-connection MB/s). --samples objects of --sample-kb KB (random bytes)
under s3://bench/raw/; every case shuffles and reads two epochs in batches of --batch with
--workers DataLoader workers, each sample's bytes in memory; chute's node cache starts empty.
Random access: the median time of ds[i] for 100 random i on a fresh dataset (chute) or
get_object (boto3). Listing: --keys empty objects under s3://keys/k/, listed by chute
(parallel) and by one ListObjectsV2 loop (boto3's paginator), the best of three runs each.
Prints samples/s per epoch and chute's ratio to the best peer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3_bench_server import case_arguments, new_bench_dir, run_cases  # noqa: E402

BUCKET, PREFIX, KEYS_BUCKET = "bench", "raw", "keys"
CASES = {"chute": "python", "boto3-map": "python", "s3torchconnector-map": "peer",
         "s3torchconnector-iterable": "peer", "list-chute": "python", "list-boto3": "python"}


def _keep(samples):
    return samples  # a batch: the samples as they are (bytes)


def _epochs(loader, epochs=2) -> list[dict]:
    out = []
    for _ in range(epochs):
        started, n, nbytes = time.perf_counter(), 0, 0
        for batch in loader:
            n += len(batch)
            nbytes += sum(len(s) for s in batch)
        out.append({"samples": n, "bytes": nbytes, "s": time.perf_counter() - started})
    return out


def _chute(args, endpoint):
    import chute

    options = {"endpoint_url": endpoint, "access_key_id": "bench", "secret_access_key": "bench", "region": "us-east-1"}
    cache = tempfile.mkdtemp(prefix="raw-bench-cache-")
    try:
        started = time.perf_counter()
        ds = chute.StreamingRawDataset(f"s3://{BUCKET}/{PREFIX}/", storage_options=options, cache_dir=cache,
                                       shuffle=True, transform=_only_bytes)
        open_s = time.perf_counter() - started
        loader = chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_keep)
        epochs = _epochs(loader)
        fresh = chute.StreamingRawDataset(f"s3://{BUCKET}/{PREFIX}/", storage_options=options,
                                          cache_dir=tempfile.mkdtemp(dir=cache))
        return {"open_s": open_s, "epochs": epochs, "random_s": _random_access(lambda i: fresh[i]["bin"], len(fresh))}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _only_bytes(sample):
    return sample["bin"]


def _random_access(get, n) -> float:
    rng = random.Random(0)
    times = []
    for _ in range(100):
        i = rng.randrange(n)
        started = time.perf_counter()
        get(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Boto3Map:
    """A map dataset of the keys under a prefix: get_object per item (a client per worker)."""

    def __init__(self, endpoint, keys):
        self.endpoint, self.keys, self.client, self.pid = endpoint, keys, None, None

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        if self.pid != os.getpid():
            import boto3

            self.client, self.pid = boto3.client("s3", endpoint_url=self.endpoint), os.getpid()
        return self.client.get_object(Bucket=BUCKET, Key=self.keys[i])["Body"].read()


def _list_boto3(endpoint, bucket, prefix):
    import boto3

    keys = []
    for page in boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _boto3(args, endpoint):
    from torch.utils.data import DataLoader

    started = time.perf_counter()
    ds = Boto3Map(endpoint, _list_boto3(endpoint, BUCKET, PREFIX + "/"))
    open_s = time.perf_counter() - started
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers, collate_fn=_keep)
    return {"open_s": open_s, "epochs": _epochs(loader), "random_s": _random_access(ds.__getitem__, len(ds))}


def _s3torchconnector(args, endpoint, iterable):
    from s3torchconnector import S3IterableDataset, S3MapDataset
    from s3torchconnector._s3client import S3ClientConfig
    from torch.utils.data import DataLoader

    kwargs = dict(region="us-east-1", endpoint=endpoint, transform=_read,
                  s3client_config=S3ClientConfig(force_path_style=True))
    started = time.perf_counter()
    if iterable:
        ds = S3IterableDataset.from_prefix(f"s3://{BUCKET}/{PREFIX}/", enable_sharding=True, **kwargs)
        loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_keep)
    else:
        ds = S3MapDataset.from_prefix(f"s3://{BUCKET}/{PREFIX}/", **kwargs)
        len(ds)  # lists the prefix
        loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers, collate_fn=_keep)
    open_s = time.perf_counter() - started
    result = {"open_s": open_s, "epochs": _epochs(loader)}
    if not iterable:
        result["random_s"] = _random_access(ds.__getitem__, len(ds))
    return result


def _read(obj):
    return obj.read()


def _listing(case, endpoint):
    import boto3

    # Untimed: the store walks the bucket once on the first listing request.
    boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=KEYS_BUCKET, Prefix="k/", MaxKeys=1)
    started = time.perf_counter()
    if case == "list-chute":
        import chute

        options = {"endpoint_url": endpoint, "access_key_id": "bench", "secret_access_key": "bench",
                   "region": "us-east-1"}
        n = len(chute._core.Storage.open(f"s3://{KEYS_BUCKET}/k", options).walk())
    else:
        n = len(_list_boto3(endpoint, KEYS_BUCKET, "k/"))
    return {"keys": n, "s": time.perf_counter() - started}


def run_case(case: str, args) -> dict:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if case.startswith("list-"):
        return _listing(case, endpoint)
    if case == "chute":
        return _chute(args, endpoint)
    if case == "boto3-map":
        return _boto3(args, endpoint)
    return _s3torchconnector(args, endpoint, iterable=case.endswith("iterable"))


def make_store(args) -> None:
    raw = os.path.join(args.dir, BUCKET, PREFIX)
    os.makedirs(raw)
    rng = random.Random(0)
    block = os.urandom(1 << 20)
    for i in range(args.samples):
        size = args.sample_kb * 1000
        start = rng.randrange(len(block) - size)
        with open(os.path.join(raw, f"{i:06d}.bin"), "wb") as f:
            f.write(block[start:start + size])
    if any(c.startswith("list-") for c in args.cases):
        keys = os.path.join(args.dir, KEYS_BUCKET, "k")
        os.makedirs(keys)
        for i in range(args.keys):
            open(os.path.join(keys, f"{i:08d}.jpg"), "wb").close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    case_arguments(p, None)
    p.add_argument("--first-byte-ms", type=float, default=20)
    p.add_argument("--mbps-per-connection", type=float, default=100)
    p.add_argument("--keys", type=int, default=200_000)
    p.add_argument("--peer-python", default=sys.executable, help="the interpreter with s3torchconnector")
    p.add_argument("--server-processes", type=int, default=2,
                   help="processes serving the store (one Python process answers ~1,500 small GETs/s)")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = p.parse_args()
    if args.run:
        print(json.dumps(run_case(args.run, args)))
        return
    args.dir = new_bench_dir(args.dir, "chute-raw-bench-")
    try:
        make_store(args)
        results = {}
        for where, python in (("python", sys.executable), ("peer", args.peer_python)):
            # Listings are short: three runs each, the best counts (this machine is noisy).
            cases = [c for c in args.cases if CASES[c] == where for _ in range(3 if c.startswith("list-") else 1)]
            if cases:
                results.update(run_cases(__file__, cases, args.dir, args.first_byte_ms, args.mbps_per_connection,
                                         python, processes=args.server_processes))
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)
    report(args, {case: min(runs, key=lambda r: r.get("s", 0)) for case, runs in results.items()})


def report(args, results: dict) -> None:
    print(f"{args.samples} objects of {args.sample_kb} KB, batch {args.batch}, {args.workers} workers, shuffled; "
          f"store: {args.first_byte_ms:g} ms first byte, {args.mbps_per_connection:g} MB/s per connection, "
          f"{args.server_processes} server processes")
    print(f"{'':28}{'open s':>8}{'epoch 1/s':>11}{'epoch 2/s':>11}{'ds[i] p50 ms':>14}")
    rates = {}
    for case, r in results.items():
        if case.startswith("list-"):
            continue
        for e in r["epochs"]:
            if e["samples"] != args.samples:
                raise SystemExit(f"{case}: read {e['samples']} samples, expected {args.samples}")
        rates[case] = [e["samples"] / e["s"] for e in r["epochs"]]
        random_ms = f"{r['random_s'] * 1e3:14.1f}" if "random_s" in r else f"{'-':>14}"
        print(f"{case:28}{r['open_s']:8.2f}{rates[case][0]:11.0f}{rates[case][1]:11.0f}{random_ms}")
    peers = [c for c in rates if c != "chute"]
    if "chute" in rates and peers:
        for epoch in (0, 1):
            best = max(peers, key=lambda c: rates[c][epoch])
            print(f"chute epoch {epoch + 1}: {rates['chute'][epoch] / rates[best][epoch]:.1f}x the best peer ({best})")
    if "chute" in results:
        print(f"chute ds[i] p50: {results['chute']['random_s'] * 1e3 / args.first_byte_ms:.2f}x one time to first byte")
    if "list-chute" in results and "list-boto3" in results:
        c, b = results["list-chute"], results["list-boto3"]
        if c["keys"] != args.keys or b["keys"] != args.keys:
            raise SystemExit(f"listing: chute saw {c['keys']} keys, boto3 {b['keys']}, expected {args.keys}")
        print(f"listing {args.keys} keys: chute {c['s']:.2f} s, one ListObjectsV2 loop {b['s']:.2f} s "
              f"({b['s'] / c['s']:.1f}x)")


if __name__ == "__main__":
    main()
