"""chute_bench_read beside `cat` on the same chunk files, cold and warm page cache.

    python bench/read_vs_cat.py [--dir DIR] [--gb 1] [--sample-kb 110] [--threads 1 2]

Generates the dataset once (random bytes samples), then for each mode evicts the files
from the page cache (posix_fadvise DONTNEED, no root needed) for the cold run.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

import numpy as np

import chute


def _sample(i, size):
    return {"image": np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8).tobytes(), "label": i}


def _evict(files):
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cat(files):
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["cat", *files], stdout=null, check=True)
    return time.perf_counter() - t0


def main():
    import functools

    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/tmp/chute-bench-1gb")
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--sample-kb", type=int, default=110)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    size = args.sample_kb * 1000
    n = int(args.gb * 1e9 / size)
    if not os.path.exists(os.path.join(args.dir, "index.json")):
        t0 = time.perf_counter()
        chute.optimize(functools.partial(_sample, size=size), range(n), args.dir, num_workers=2,
                       overwrite=True, progress=False)
        print(f"optimize: {n} samples in {time.perf_counter() - t0:.1f} s")
    files = sorted(glob.glob(os.path.join(args.dir, "chunk-*.bin")))
    total = sum(os.path.getsize(f) for f in files)
    exe = os.path.join(os.path.dirname(chute.__file__), "bin", "chute_bench_read")
    print(f"{len(files)} chunk files, {total / 1e9:.2f} GB")
    for cache in ("cold", "warm"):
        if cache == "cold":
            _evict(files)
        dt = _cat(files)
        print(f"{cache:4s} cat: {total / dt / 1e6:,.0f} MB/s")
        for threads in args.threads:
            if cache == "cold":
                _evict(files)
            out = subprocess.run([exe, args.dir, str(threads)], check=True, capture_output=True, text=True).stdout
            fields = dict(kv.split("=", 1) for kv in out.split())
            print(f"{cache:4s} chute_bench_read threads={threads}: {float(fields['items_per_s']):,.0f} items/s, "
                  f"{float(fields['GB_per_s']) * 1000:,.0f} MB/s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
