"""Checkpoint save and load through a simulated cloud store: chute.checkpoint beside
s3torchconnector's S3Checkpoint and torch.save to a local file followed by a boto3 upload
(load: a boto3 download, then torch.load), on the same state dict in one run.

    python bench/checkpoint_bench.py [--size-mb 1024] [--tensors 64] [--first-byte-ms 20]
        [--mbps-per-connection 100] [--peer-python /path/to/python] [--dir NEW_DIR]
        [--repeat 1] [--cases chute torch.save+boto3 s3torchconnector]

The store is bench/s3_bench_server.py (each request waits --first-byte-ms; every connection
moves at most --mbps-per-connection MB/s each way). The state dict is --tensors float32 /
bfloat16 tensors summing to --size-mb MB plus a few Python values. Each library runs in its
own process (s3torchconnector under --peer-python, where it is installed); a save is timed
until the object is complete in the store, a load until the state dict is in memory, and the
loaded state is checked against the saved one (untimed). Prints seconds, GB/s and chute's
speedup over the fastest peer, for save and load.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3_bench_server import new_bench_dir, run_cases  # noqa: E402

BUCKET = "ckpt"
CASES = {"chute": "python", "torch.save+boto3": "python", "s3torchconnector": "peer"}


def make_state(size_mb: int, tensors: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    per = size_mb * 10**6 // tensors
    state = {}
    for i in range(tensors):
        dtype = torch.bfloat16 if i % 4 == 3 else torch.float32
        state[f"layer{i}.weight"] = torch.randn(per // dtype.itemsize, generator=gen).to(dtype)
    state.update(step=1000, lr=3e-4, names=["encoder", "decoder"])
    return state


def same_state(a, b) -> bool:
    import torch

    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def _chute(state, key, options):
    import chute.checkpoint

    url = f"s3://{BUCKET}/{key}"
    return (lambda: chute.checkpoint.save(state, url, storage_options=options),
            lambda: chute.checkpoint.load(url, storage_options=options))


def _torch_boto3(state, key, endpoint):
    import boto3
    import torch

    s3 = boto3.client("s3", endpoint_url=endpoint)
    local = tempfile.mkdtemp(prefix="ckpt-bench-local-")  # on disk, as a local checkpoint would be
    atexit.register(shutil.rmtree, local, True)

    def save():
        path = os.path.join(local, "save.pt")
        torch.save(state, path)
        s3.upload_file(path, BUCKET, key)
        os.remove(path)

    def load():
        path = os.path.join(local, "load.pt")
        s3.download_file(BUCKET, key, path)
        try:
            return torch.load(path)
        finally:
            os.remove(path)

    return save, load


def _s3torchconnector(state, key, endpoint):
    import torch
    from s3torchconnector import S3Checkpoint
    from s3torchconnector._s3client import S3ClientConfig

    checkpoint = S3Checkpoint(region="us-east-1", endpoint=endpoint,
                              s3client_config=S3ClientConfig(force_path_style=True))
    url = f"s3://{BUCKET}/{key}"

    def save():
        with checkpoint.writer(url) as f:
            torch.save(state, f)

    def load():
        with checkpoint.reader(url) as f:
            return torch.load(f)

    return save, load


def run_case(case: str, args) -> dict:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    state = make_state(args.size_mb, args.tensors)
    key = f"{case}/state.pt"
    if case == "chute":
        options = {"endpoint_url": endpoint, "access_key_id": "bench", "secret_access_key": "bench",
                   "region": "us-east-1"}
        save, load = _chute(state, key, options)
    elif case == "torch.save+boto3":
        save, load = _torch_boto3(state, key, endpoint)
    else:
        save, load = _s3torchconnector(state, key, endpoint)
    started = time.perf_counter()
    save()
    saved = time.perf_counter() - started
    started = time.perf_counter()
    loaded = load()
    load_s = time.perf_counter() - started
    if not same_state(loaded, state):
        raise SystemExit(f"{case}: the loaded state differs from the saved one")
    del loaded
    import boto3

    boto3.client("s3", endpoint_url=endpoint).delete_object(Bucket=BUCKET, Key=key)  # memory for the next case
    return {"save_s": saved, "load_s": load_s}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--tensors", type=int, default=64)
    p.add_argument("--first-byte-ms", type=float, default=20)
    p.add_argument("--mbps-per-connection", type=float, default=100)
    p.add_argument("--peer-python", default=sys.executable, help="the interpreter with s3torchconnector")
    p.add_argument("--dir", help="a new directory for the store's files, removed at the end (default: a "
                                 "temporary one in /dev/shm: the store's own disk is not what is measured)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        print(json.dumps(run_case(args.run, args)))
        return
    args.dir = new_bench_dir(args.dir, "chute-ckpt-bench-")
    os.makedirs(os.path.join(args.dir, BUCKET))
    results = {}
    try:
        for where, python in (("python", sys.executable), ("peer", args.peer_python)):
            cases = [c for c in args.cases if CASES[c] == where] * args.repeat
            if cases:
                results.update(run_cases(__file__, cases, args.dir, args.first_byte_ms, args.mbps_per_connection,
                                         python, writable=True))
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)
    gb = args.size_mb / 1000
    print(f"{args.size_mb} MB state dict ({args.tensors} tensors), store: {args.first_byte_ms:g} ms first byte, "
          f"{args.mbps_per_connection:g} MB/s per connection")
    print(f"{'':18}{'save s':>8}{'GB/s':>7}{'load s':>9}{'GB/s':>7}")
    best = {}
    for case, runs in results.items():
        row = {k: min(r[k] for r in runs) for k in ("save_s", "load_s")}
        best[case] = row
        print(f"{case:18}{row['save_s']:8.2f}{gb / row['save_s']:7.2f}{row['load_s']:9.2f}{gb / row['load_s']:7.2f}")
    peers = [c for c in best if c != "chute"]
    for op in ("save_s", "load_s"):
        if "chute" in best and peers:
            peer = min(peers, key=lambda c: best[c][op])
            print(f"chute {op[:-2]}: {best[peer][op] / best['chute'][op]:.2f}x the fastest peer ({peer})")


if __name__ == "__main__":
    main()
