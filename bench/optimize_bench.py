"""Converting a folder of JPEG files into a streaming dataset: chute's `optimize` beside
litdata's `optimize`, Mosaic Streaming's `MDSWriter` and WebDataset's `ShardWriter`.

    python bench/optimize_bench.py [--files 10000] [--kb 110] [--workers 2] [--chunk 64MB]
        [--repeats 3] [--peer-python /path/to/python] [--dir /tmp/chute-optimize-bench]

The inputs are --files JPEG files of about --kb KB (noise images, written once under
--dir/jpeg and read once before timing, so every run reads them from the page cache).
Each library stores each file's bytes as they are (no decoding) with an int label, in
chunks/shards of --chunk, with --workers processes:
  chute     optimize(fn, paths, num_workers=W): W workers each write their part's chunks;
  litdata   optimize(fn, paths, num_workers=W);
  mosaic    MDSWriter, fed by a pool of W processes reading the files (imap, in order);
  webdataset ShardWriter, fed the same way.
Every run is its own process (peers under --peer-python), started after a `sync` so
that no earlier run's write-back competes with it; the libraries take turns --repeats
times, and the median wall time of the conversion call is reported with chute's ratio to
the fastest peer. Like the peers, chute leaves its files to the OS to write back.
MDSWriter and ShardWriter are single-process writers: their samples come from a pool of
--workers processes, or, with FEED=self in the environment, from the writing process
itself (faster for them here: the pool pickles every file's bytes through a pipe).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
import types

LIBS = ["chute", "litdata", "mosaic", "webdataset"]


def make_jpegs(folder: str, count: int, kb: int) -> list[str]:
    """count JPEG files of about kb KB each (written once)."""
    paths = [os.path.join(folder, f"{i:06d}.jpg") for i in range(count)]
    if os.path.exists(os.path.join(folder, "done")):
        return paths
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    side = 16
    while True:  # the side whose noise image encodes to about kb KB
        data = _encode(Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))
        if len(data) >= kb * 1000:
            break
        side += 8
    bases = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(16)]
    for i, path in enumerate(paths):
        pixels = bases[i % 16].copy()
        pixels[i % side] = i % 256  # every file differs
        with open(path, "wb") as f:
            f.write(_encode(Image.fromarray(pixels)))
    open(os.path.join(folder, "done"), "w").close()
    return paths


def _encode(image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def sample(path: str) -> dict:
    """One input: the file's bytes and a label."""
    with open(path, "rb") as f:
        return {"image": f.read(), "label": int(os.path.basename(path)[:6]) % 1000}


def convert(lib: str, paths: list[str], out: str, workers: int, chunk: str) -> None:
    if lib == "chute":
        import chute

        chute.optimize(sample, paths, out, chunk_bytes=chunk, num_workers=workers, progress=False)
    elif lib == "litdata":
        import litdata

        litdata.optimize(fn=sample, inputs=paths, output_dir=out, chunk_bytes=chunk, num_workers=workers)
    elif lib == "mosaic":
        try:
            import torchvision  # noqa: F401
        except Exception:  # its registry build fails next to the CPU torch; vision is unused here
            sys.modules["streaming.vision"] = types.ModuleType("streaming.vision")
        from streaming import MDSWriter

        with MDSWriter(out=out, columns={"image": "bytes", "label": "int"}, size_limit=chunk.lower()) as writer:
            for s in _samples(paths, workers):
                writer.write(s)
    else:
        import webdataset as wds

        os.makedirs(out)
        with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxsize=_bytes(chunk), verbose=0) as writer:
            for path, s in zip(paths, _samples(paths, workers)):
                writer.write({"__key__": os.path.basename(path)[:6], "jpg": s["image"], "cls": s["label"]})


def _samples(paths: list[str], workers: int):
    """The samples in order, for a single-process writer: read by a pool of `workers`
    processes, or by this process (FEED=self)."""
    if os.environ.get("FEED") == "self":
        yield from map(sample, paths)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(sample, paths, chunksize=16)


def _bytes(size: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    return int(float(size[:-2]) * units[size[-2:].upper()])


def run_one(args) -> None:
    """In its own process: one conversion, timed; prints a JSON line."""
    paths = make_jpegs(os.path.join(args.dir, "jpeg"), args.files, args.kb)
    out = os.path.join(args.dir, "out", args.run)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    convert(args.run, paths, out, args.workers, args.chunk)
    seconds = time.perf_counter() - start
    written = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "bytes": written}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--kb", type=int, default=110)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", default="64MB")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default="/tmp/chute-optimize-bench")
    p.add_argument("--peer-python", default=sys.executable)
    p.add_argument("--libs", nargs="+", default=LIBS)
    p.add_argument("--run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        run_one(args)
        return
    paths = make_jpegs(os.path.join(args.dir, "jpeg"), args.files, args.kb)
    total = sum(os.path.getsize(path) for path in paths)
    print(f"{len(paths):,} JPEG files, {total / 1e6:,.0f} MB; {args.workers} workers, chunks of {args.chunk}")
    for path in paths:  # into the page cache
        with open(path, "rb") as f:
            f.read()
    times = {lib: [] for lib in args.libs}
    for _ in range(args.repeats):
        for lib in args.libs:
            python = sys.executable if lib == "chute" else args.peer_python
            cmd = [python, os.path.abspath(__file__), "--run", lib, "--files", str(args.files), "--kb", str(args.kb),
                   "--workers", str(args.workers), "--chunk", args.chunk, "--dir", args.dir]
            os.sync()  # the previous run's output on disk: its write-back does not slow this run
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{lib} failed:\n{proc.stderr[-3000:]}")
            times[lib].append(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    medians = {lib: statistics.median(t) for lib, t in times.items()}
    for lib, median in medians.items():
        runs = ", ".join(f"{t:.2f}" for t in times[lib])
        print(f"{lib:11s} {median:6.2f} s  {len(paths) / median:8,.0f} files/s  {total / 1e6 / median:6,.0f} MB/s"
              f"  (runs: {runs})")
    peers = [lib for lib in medians if lib != "chute"]
    if "chute" in medians and peers:
        best = min(peers, key=medians.get)
        print(f"chute / fastest peer ({best}): {medians[best] / medians['chute']:.2f}x faster")


if __name__ == "__main__":
    main()
