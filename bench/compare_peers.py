"""chute beside its peers on identical data, through a torch DataLoader with the same
batch size and workers. Each library runs in its own process; peers run under
--peer-python (a separate environment: litdata and Mosaic Streaming pull torchvision,
whose registry build does not import next to the CPU torch here, so Mosaic's unused
vision subpackage is replaced by an empty module before import).

    python bench/compare_peers.py tokens [--tokens 100000000] [--block 2049] [--batch 64]
        [--workers 2] [--peer-python /path/to/python] [--dir /tmp/chute-peers]
    python bench/compare_peers.py bytes [--samples 10000] [--sample-kb 110] ...

Workload `tokens`: documents of random int32 tokens (lengths 100..4000) summing to
--tokens, read as shuffled blocks of --block tokens from local disk in a warm page cache
(one untimed epoch first). chute and litdata use their TokensLoader; Mosaic Streaming has
none, so it gets the same blocks pre-cut as fixed-size samples. Prints blocks/s, tokens/s,
time to first batch and peak RSS (main process and workers), and chute's ratios.

Workload `bytes`: --samples random byte strings of --sample-kb KB (JPEG-like, undecoded)
with an int label, from local disk: epoch 1 right after writing (page cache as the
writer left it) and a warm epoch 2. chute also runs with threads only (`chute-threads`:
num_workers=0, the in-process path).
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import resource
import subprocess
import sys
import time
import types

import numpy as np


# ---- the data ------------------------------------------------------------------------

def make_documents(workdir: str, total: int, seed: int = 0):
    """The token stream and document offsets, saved once as .npy files."""
    stream_path, offsets_path = os.path.join(workdir, "stream.npy"), os.path.join(workdir, "offsets.npy")
    if not os.path.exists(offsets_path):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(100, 4000, total // 100 + 1)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        offsets = offsets[: np.searchsorted(offsets, total) + 1]
        offsets[-1] = total
        np.save(stream_path, rng.integers(0, 50_000, total, dtype=np.int32))
        np.save(offsets_path, offsets)
    return np.load(stream_path, mmap_mode="r"), np.load(offsets_path)


_DOCS = None


def _document(i):
    global _DOCS
    if _DOCS is None:  # a spawned writer process
        _DOCS = make_documents(os.environ["CHUTE_BENCH_DOCS"], 0)
    stream, offsets = _DOCS
    return np.array(stream[offsets[i]: offsets[i + 1]])


# ---- one library per process -----------------------------------------------------------

def _read(loader, block: int):
    """(seconds to first batch, seconds for the epoch, blocks) of one pass."""
    t0 = time.perf_counter()
    first, blocks = None, 0
    for batch in loader:
        if first is None:
            first = time.perf_counter() - t0
        blocks += batch.shape[0] if hasattr(batch, "shape") else len(batch)
    return first, time.perf_counter() - t0, blocks


def run_chute(args, workdir, out_dtype):
    import chute

    path = os.path.join(workdir, "chute")
    if not os.path.exists(os.path.join(path, "index.json")):
        chute.optimize(_document, range(len(_DOCS[1]) - 1), path, chunk_bytes="64MB", num_workers=2,
                       progress=False, overwrite=True)
    ds = chute.StreamingDataset(path, item_loader=chute.TokensLoader(args.block, dtype=out_dtype), shuffle=True)
    loader = chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)
    _read(loader, args.block)  # warm
    return _read(loader, args.block)


def run_litdata(args, workdir):
    import litdata

    path = os.path.join(workdir, "litdata")
    if not os.path.exists(os.path.join(path, "index.json")):
        litdata.optimize(fn=_document, inputs=list(range(len(_DOCS[1]) - 1)), output_dir=path, chunk_bytes="64MB",
                         item_loader=litdata.TokensLoader(), num_workers=2)
    ds = litdata.StreamingDataset(path, item_loader=litdata.TokensLoader(block_size=args.block), shuffle=True)
    loader = litdata.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)
    _read(loader, args.block)
    return _read(loader, args.block)


def run_mosaic(args, workdir):
    try:
        import torchvision  # noqa: F401
    except Exception:  # its registry build fails next to the CPU torch; vision is unused here
        sys.modules["streaming.vision"] = types.ModuleType("streaming.vision")
    import streaming
    from torch.utils.data import DataLoader

    path = os.path.join(workdir, "mosaic")
    stream = _DOCS[0]
    n_blocks = len(stream) // args.block
    if not os.path.exists(os.path.join(path, "index.json")):
        with streaming.MDSWriter(out=path, columns={"tokens": f"ndarray:int32:{args.block}"}, size_limit="64mb") as w:
            for b in range(n_blocks):
                w.write({"tokens": np.array(stream[b * args.block: (b + 1) * args.block])})
    streaming.base.util.clean_stale_shared_memory()
    ds = streaming.StreamingDataset(local=path, shuffle=True, batch_size=args.batch)
    loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_stack_tokens)
    _read(loader, args.block)
    return _read(loader, args.block)


def _stack_tokens(samples):
    import torch

    return torch.from_numpy(np.stack([s["tokens"] for s in samples]))


def _bytes_sample(i, size):
    return {"image": np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8).tobytes(), "label": i}


def _count(batch):
    return len(batch["label"]) if isinstance(batch, dict) else len(batch)


def _read_epochs(loader, epochs=2):
    out = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        first, n = None, 0
        for batch in loader:
            if first is None:
                first = time.perf_counter() - t0
            n += _count(batch)
        out.append((first, time.perf_counter() - t0, n))
    return out


def run_bytes(lib, args):
    workdir = os.path.join(args.dir, "bytes")
    size = args.sample_kb * 1000
    path = os.path.join(workdir, lib.split("-")[0])
    if lib.startswith("chute"):
        import chute

        if not os.path.exists(os.path.join(path, "index.json")):
            chute.optimize(functools.partial(_bytes_sample, size=size), range(args.samples), path, num_workers=2,
                           progress=False, overwrite=True)
        ds = chute.StreamingDataset(path, shuffle=True)
        workers = 0 if lib == "chute-threads" else args.workers
        loader = chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=workers, collate_fn=_collate)
    elif lib == "litdata":
        import litdata

        if not os.path.exists(os.path.join(path, "index.json")):
            litdata.optimize(fn=functools.partial(_bytes_sample, size=size), inputs=list(range(args.samples)),
                             output_dir=path, chunk_bytes="64MB", num_workers=2)
        ds = litdata.StreamingDataset(path, shuffle=True)
        loader = litdata.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_collate)
    elif lib == "mosaic":
        try:
            import torchvision  # noqa: F401
        except Exception:
            sys.modules["streaming.vision"] = types.ModuleType("streaming.vision")
        import streaming
        from torch.utils.data import DataLoader

        if not os.path.exists(os.path.join(path, "index.json")):
            with streaming.MDSWriter(out=path, columns={"image": "bytes", "label": "int"}, size_limit="64mb") as w:
                for i in range(args.samples):
                    w.write(_bytes_sample(i, size))
        streaming.base.util.clean_stale_shared_memory()
        ds = streaming.StreamingDataset(local=path, shuffle=True, batch_size=args.batch)
        loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_collate)
    else:  # webdataset
        import webdataset as wds
        from torch.utils.data import DataLoader

        shards = os.path.join(path, "shard-%06d.tar")
        if not os.path.exists(path):
            os.makedirs(path)
            with wds.ShardWriter(shards, maxsize=64e6) as w:
                for i in range(args.samples):
                    s = _bytes_sample(i, size)
                    w.write({"__key__": f"{i:08d}", "jpg": s["image"], "cls": str(i)})
        urls = sorted(glob.glob(os.path.join(path, "shard-*.tar")))
        ds = wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node).shuffle(1000) \
            .to_tuple("jpg", "cls")
        loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_collate)
    return _read_epochs(loader)


def _collate(samples):
    return samples


def run_one(lib, args):
    global _DOCS
    if args.workload == "bytes":
        epochs = run_bytes(lib, args)
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + \
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"lib": lib, "epochs": [{"first_batch_s": f, "seconds": t, "samples": n,
                                                   "samples_per_s": n / t, "MB_per_s": n * args.sample_kb / 1000 / t}
                                                  for f, t, n in epochs], "peak_rss_mb": kb / 1024}))
        return
    workdir = os.path.join(args.dir, "tokens")
    _DOCS = make_documents(workdir, args.tokens)
    os.environ["CHUTE_BENCH_DOCS"] = workdir
    if lib == "chute":
        first, seconds, blocks = run_chute(args, workdir, "int32")
    elif lib == "chute-int64":
        first, seconds, blocks = run_chute(args, workdir, "int64")
    elif lib == "litdata":
        first, seconds, blocks = run_litdata(args, workdir)
    else:
        first, seconds, blocks = run_mosaic(args, workdir)
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"lib": lib, "first_batch_s": first, "seconds": seconds, "blocks": blocks,
                      "blocks_per_s": blocks / seconds, "tokens_per_s": blocks * args.block / seconds,
                      "peak_rss_mb": kb / 1024}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["tokens", "bytes"])
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--sample-kb", type=int, default=110)
    p.add_argument("--tokens", type=int, default=100_000_000)
    p.add_argument("--block", type=int, default=2049)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--dir", default="/tmp/chute-peers")
    p.add_argument("--peer-python", default=sys.executable)
    p.add_argument("--libs", nargs="+")
    p.add_argument("--run", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        run_one(args.run, args)
        return
    os.makedirs(os.path.join(args.dir, args.workload), exist_ok=True)
    if args.workload == "tokens":
        make_documents(os.path.join(args.dir, "tokens"), args.tokens)
    libs = args.libs or (["chute", "chute-int64", "litdata", "mosaic"] if args.workload == "tokens"
                         else ["chute", "chute-threads", "litdata", "mosaic", "webdataset"])
    results = {}
    for lib in libs:
        python = sys.executable if lib.startswith("chute") else args.peer_python
        cmd = [python, os.path.abspath(__file__), args.workload, "--run", lib, "--tokens", str(args.tokens),
               "--block", str(args.block), "--batch", str(args.batch), "--workers", str(args.workers),
               "--dir", args.dir, "--samples", str(args.samples), "--sample-kb", str(args.sample_kb)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{lib}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[lib] = r
        if args.workload == "bytes":
            for e, ep in enumerate(r["epochs"], 1):
                print(f"{lib:14s} epoch {e}: {ep['samples_per_s']:9,.0f} samples/s {ep['MB_per_s']:8,.0f} MB/s  "
                      f"first batch {ep['first_batch_s'] * 1e3:7.1f} ms", flush=True)
            print(f"{lib:14s} peak RSS {r['peak_rss_mb']:,.0f} MB", flush=True)
            continue
        print(f"{lib:12s} {r['blocks_per_s']:10,.0f} blocks/s  {r['tokens_per_s'] / 1e6:8.1f} M tokens/s  "
              f"first batch {r['first_batch_s'] * 1e3:7.1f} ms  peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
    if args.workload == "bytes":
        peers = [p for p in ("litdata", "mosaic", "webdataset") if p in results]
        for e in (0, 1):
            if "chute" in results and peers:
                best = max(peers, key=lambda p: results[p]["epochs"][e]["samples_per_s"])
                ratio = results["chute"]["epochs"][e]["samples_per_s"] / results[best]["epochs"][e]["samples_per_s"]
                print(f"epoch {e + 1}: chute / best peer ({best}): {ratio:.1f}x samples/s")
        return
    for peer in ("litdata", "mosaic"):
        if "chute" in results and peer in results:
            print(f"chute / {peer}: {results['chute']['tokens_per_s'] / results[peer]['tokens_per_s']:.1f}x tokens/s")


if __name__ == "__main__":
    main()
