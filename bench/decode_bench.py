"""Decoding images into training batches: chute's image preset beside the same decode written
as a PIL transform in a plain DataLoader over chute, litdata and WebDataset, with the
machine's decode limit measured in the same run.

    python bench/decode_bench.py [--samples 10000] [--resolution 224] [--batch 64] [--workers 2]
        [--peer-python /path/to/python] [--dir NEW_DIR] [--cases ...]

The data: --samples JPEGs of 400x350 at quality 90 (~110 KB; a few hundred distinct images
cycled), in a chute dataset, a litdata dataset and WebDataset tar shards on local disk (the
page cache warm: one untimed epoch first). Every case decodes, resizes to cover
--resolution and center-crops to --resolution x --resolution, uint8 CHW, batches of --batch,
with --workers worker processes (`chute@threads`: chute's preset on a thread per core of
the training process, num_workers=0). The
limit is one PIL decode-and-resize loop on each core at once (no DCT scaling), measured
before and after the loaders (the mean: a shared machine's speed drifts); chute's preset
alone in the same loops (simplejpeg's decode, PyTorch's resize) is reported beside it.
`chute@R` / `limit@R` repeat chute and the loop at resolution R (default 112: at most half
the source, where libjpeg decodes at reduced scale). Each case runs in its own process
(litdata and WebDataset under --peer-python). Prints images/s and chute's ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3_bench_server import new_bench_dir  # noqa: E402

CASES = {"limit": "python", "chute": "python", "chute@threads": "python", "chute+PIL": "python", "litdata+PIL": "peer",
         "webdataset+PIL": "peer", "chute@small": "python", "limit@small": "python"}
DISTINCT = 256


def _jpegs(n: int) -> list[bytes]:
    """DISTINCT JPEGs of 400x350, quality 90, about 110 KB each (smooth shapes plus grain)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    y, x = np.mgrid[0:350, 0:400]
    for k in range(min(n, DISTINCT)):
        base = np.stack([np.sin(x / (9 + k % 7) + c) * np.cos(y / (11 + k % 5) - c) for c in range(3)], -1)
        grain = rng.normal(0, 60, (350, 400, 1))  # luminance grain: ~110 KB at quality 90
        pixels = (base * 90 + 128 + grain).clip(0, 255).astype(np.uint8)
        f = io.BytesIO()
        Image.fromarray(pixels).save(f, format="JPEG", quality=90)
        out.append(f.getvalue())
    return out


class _Sample:
    """Sample i: image i mod DISTINCT and label i (picklable for the writers' processes)."""

    def __init__(self, images):
        self.images = images

    def __call__(self, i):
        return {"jpg": self.images[i % len(self.images)], "label": i}


def pil_decode(data: bytes, resolution: int, draft: bool = False):
    """The decode a user writes: PIL open, convert, resize to cover, center crop, CHW uint8."""
    import torch
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    w, h = img.size
    scale = resolution / min(w, h)
    size = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    if draft:
        img.draft("RGB", size)
    img = img.convert("RGB").resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    return torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy())


class _PilOnJpg:
    def __init__(self, resolution):
        self.resolution = resolution

    def __call__(self, sample):
        return pil_decode(sample["jpg"], self.resolution), sample["label"]


def write(kind: str, args) -> None:
    sample = _Sample(_jpegs(args.samples))
    path = os.path.join(args.dir, kind)
    if kind == "chute":
        import chute

        chute.optimize(sample, range(args.samples), path, num_workers=2, progress=False, overwrite=True)
    elif kind == "litdata":
        import litdata

        litdata.optimize(fn=sample, inputs=list(range(args.samples)), output_dir=path, chunk_bytes="64MB",
                         num_workers=2)
    else:  # WebDataset shards (plain tar files of <key>.jpg / <key>.cls members)
        os.makedirs(path)
        per_shard = max(1, 64_000_000 // len(sample(0)["jpg"]))
        for start in range(0, args.samples, per_shard):
            with tarfile.open(os.path.join(path, f"shard-{start // per_shard:06d}.tar"), "w") as tar:
                for i in range(start, min(start + per_shard, args.samples)):
                    for ext, data in (("jpg", sample(i)["jpg"]), ("cls", str(i).encode())):
                        info = tarfile.TarInfo(f"{i:08d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))


def _loader_rate(make, batch_images) -> float:
    """Images/s of the second of two epochs of make()'s loader (the first warms the cache)."""
    loader = make()
    for _ in loader:
        pass
    started, n = time.perf_counter(), 0
    for batch in loader:
        n += batch_images(batch)
    return n / (time.perf_counter() - started)


def _decode_loop(job) -> float:
    """Images/s of one decode-and-resize loop: PIL's ("plain", "draft") or chute's preset alone."""
    import torch

    torch.set_num_threads(1)  # as in a DataLoader worker
    images, resolution, kind, seconds = job
    if kind == "chute":
        from chute import transforms

        preset, rng = transforms.image_pipeline("jpg", resolution), np.random.default_rng(0)
        out = np.empty((3, resolution, resolution), np.uint8)

        def decode(data):
            preset.apply({"jpg": data}, rng, out)
    else:
        def decode(data):
            pil_decode(data, resolution, kind == "draft")
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        decode(images[n % len(images)])
        n += 1
    return n / (time.perf_counter() - started)


def run_case(case: str, args) -> dict:
    resolution = args.small if case.endswith("@small") else args.resolution
    path = os.path.join(args.dir, "litdata" if case.startswith("litdata") else
                        "webdataset" if case.startswith("webdataset") else "chute")
    if case.startswith("limit"):
        import chute

        import multiprocessing

        images = [s["jpg"] for s in chute.StreamingDataset(path)[:DISTINCT]]
        for data in images:  # warm
            pil_decode(data, resolution, draft=True)
        cores = os.cpu_count()
        rates = {}
        with multiprocessing.get_context("fork").Pool(cores) as pool:  # a loop per core, all at once
            for kind in ("plain", "draft", "chute"):
                per_loop = pool.map(_decode_loop, [(images, resolution, kind, args.limit_seconds)] * cores)
                rates[kind] = sum(per_loop) / cores
        return {"per_core": rates["plain"], "per_core_draft": rates["draft"], "per_core_chute": rates["chute"],
                "cores": cores}
    if case.startswith("chute"):
        import chute
        from chute import transforms

        if case == "chute+PIL":
            def make():
                ds = chute.StreamingDataset(path, shuffle=True, transform=_PilOnJpg(resolution))
                return chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)
            return {"rate": _loader_rate(make, lambda b: len(b[0]))}

        def make():
            ds = chute.StreamingDataset(path, shuffle=True,
                                        transform=transforms.image_pipeline("jpg", resolution, keep=["jpg", "label"]))
            return chute.StreamingDataLoader(ds, batch_size=args.batch,
                                             num_workers=0 if case == "chute@threads" else args.workers)
        return {"rate": _loader_rate(make, lambda b: len(b["jpg"]))}
    from torch.utils.data import DataLoader

    if case == "litdata+PIL":
        import litdata

        class Decoded(litdata.StreamingDataset):
            def __getitem__(self, index):
                return _PilOnJpg(resolution)(super().__getitem__(index))

        def make():
            return litdata.StreamingDataLoader(Decoded(path, shuffle=True), batch_size=args.batch,
                                               num_workers=args.workers)
    else:
        import webdataset as wds

        urls = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".tar"))

        def make():
            ds = wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node).shuffle(1000) \
                .map(lambda s: (pil_decode(s["jpg"], resolution), int(s["cls"])))
            return DataLoader(ds, batch_size=args.batch, num_workers=args.workers)
    return {"rate": _loader_rate(make, lambda b: len(b[0]))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--small", type=int, default=112, help="the resolution of the @small cases")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit-seconds", type=float, default=10.0)
    p.add_argument("--peer-python", default=sys.executable, help="the interpreter with litdata and webdataset")
    p.add_argument("--dir", help="a new directory for the datasets, removed at the end")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--run", help=argparse.SUPPRESS)
    p.add_argument("--write", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.write:
        return write(args.write, args)
    if args.run:
        print(json.dumps(run_case(args.run, args)))
        return
    args.dir = new_bench_dir(args.dir, "chute-decode-bench-", in_memory=False)
    base = [a for k, a in enumerate(sys.argv[1:]) if a != "--dir" and (k == 0 or sys.argv[k] != "--dir")]
    try:
        needed = {"chute"} | {c.split("+")[0] for c in args.cases if "+" in c}
        for kind in sorted(needed):
            python = sys.executable if kind == "chute" else args.peer_python
            subprocess.run([python, os.path.abspath(__file__), *base, "--dir", args.dir, "--write", kind], check=True)
        results = {}
        # The limit again at the end: the machine's speed drifts over minutes (a shared host).
        for k, case in enumerate(args.cases + (["limit"] if "limit" in args.cases else [])):
            python = sys.executable if CASES[case] == "python" else args.peer_python
            proc = subprocess.run([python, os.path.abspath(__file__), *base, "--dir", args.dir, "--run", case],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{case}: failed\n{proc.stderr[-3000:]}")
            results[case if k < len(args.cases) else "limit-after"] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)
    report(args, results)


def report(args, r: dict) -> None:
    print(f"{args.samples} JPEGs 400x350 q90 -> {args.resolution}x{args.resolution} uint8 CHW, batch {args.batch}, "
          f"{args.workers} workers, local warm")
    if "limit" in r:
        before, after = (r[k]["per_core"] * r[k]["cores"] for k in ("limit", "limit-after"))
        limit = (before + after) / 2
        print(f"machine limit (a PIL loop on each of the {r['limit']['cores']} cores): {limit:.0f} images/s "
              f"(measured before the loaders {before:.0f}, after them {after:.0f})")
        alone = sum(r[k]["per_core_chute"] * r[k]["cores"] for k in ("limit", "limit-after")) / 2
        share = f"; chute's loader at {r['chute']['rate'] / alone:.0%} of it" if "chute" in r else ""
        print(f"chute's decode alone (its preset in a loop on each core): {alone:.0f} images/s{share}")
    for case in ("chute", "chute@threads", "chute+PIL", "litdata+PIL", "webdataset+PIL"):
        if case in r:
            extra = f"  ({r[case]['rate'] / limit:.0%} of the limit)" if "limit" in r else ""
            print(f"  {case:16}{r[case]['rate']:8.0f} images/s{extra}")
    peers = [c for c in ("chute+PIL", "litdata+PIL", "webdataset+PIL") if c in r]
    if "chute" in r and peers:
        best = max(peers, key=lambda c: r[c]["rate"])
        print(f"chute preset: {r['chute']['rate'] / r[best]['rate']:.2f}x the best PIL transform ({best})")
    if "chute@small" in r and "limit@small" in r:
        s = r["limit@small"]
        print(f"at {args.small}x{args.small}: chute {r['chute@small']['rate']:.0f} images/s; one core "
              f"{s['per_core']:.0f}/s without DCT scaling, {s['per_core_draft']:.0f}/s with it")


if __name__ == "__main__":
    main()
