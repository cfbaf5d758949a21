"""chute beside its peers on identical data, through a torch DataLoader with the same
batch size and workers. Each library runs in its own process; peers run under
--peer-python (a separate environment: litdata and Mosaic Streaming pull torchvision,
whose registry build does not import next to the CPU torch here, so Mosaic's unused
vision subpackage is replaced by an empty module before import).

    python bench/compare_peers.py tokens [--source local|s3] [--tokens 100000000] [--block 2049]
        [--batch 64] [--workers 2] [--peer-python /path/to/python] [--dir /tmp/chute-peers]
    python bench/compare_peers.py bytes [--source local|s3] [--samples 10000] [--sample-kb 110]
        [--first-byte-ms 20] [--mbps-per-connection 100] ...

Workload `tokens`: documents of random int32 tokens (lengths 100..4000) summing to
--tokens, read as shuffled blocks of --block tokens from local disk in a warm page cache
(one untimed epoch first). chute and litdata use their TokensLoader; Mosaic Streaming has
none, so it gets the same blocks pre-cut as fixed-size samples. Prints blocks/s, tokens/s,
time to first batch, peak memory, and chute's ratios. `--source s3`: epoch 1 read from the
S3 bench server (below) into a fresh cache directory instead.

Workload `bytes`: --samples random byte strings of --sample-kb KB (JPEG-like, undecoded)
with an int label, shuffled, two epochs. `--source local`: from local disk (epoch 1 with
the page cache as the writer left it, epoch 2 warm). `--source s3`: from
bench/s3_bench_server.py serving the same files as a simulated cloud store (each request
waits --first-byte-ms, then --mbps-per-connection per connection), each library caching
into a fresh directory (epoch 1 downloads, epoch 2 reads its cache); WebDataset streams
its shards with curl. chute also runs with threads only (`chute-threads`: num_workers=0,
the in-process path). Epoch 1's time and first batch include opening the dataset.
`chute@litdata`, `chute@mosaic` and `chute@webdataset` are chute reading those libraries'
own copies in place (litdata's index and chunks, MDS shards, tar shards; for tokens,
litdata's TokensLoader dataset and Mosaic's ndarray:int32 blocks, after those libraries'
runs wrote them); the summary compares each with the library that wrote it.

Peak memory is sampled from /proc over the process and its DataLoader workers: RSS
(counting mapped file pages, e.g. chunks read through mmap) and anonymous RSS (private
memory only).
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from peer_runtime import MemorySampler, import_streaming, litdata_over_http, read_epochs

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

def _tokens_source(args, workdir, copy):
    """(URL, cache directory) of `copy`'s tokens on the S3 bench server, or (its local path,
    None); and which epoch is timed (local: the second, in a warm page cache)."""
    if not args.endpoint:
        return os.path.join(workdir, copy), None, 1
    return f"s3://tokens/{copy}", tempfile.mkdtemp(prefix=f"{copy}-cache-", dir=workdir), 0


def run_chute(args, workdir, out_dtype, copy="chute"):
    """chute reading its own copy, or (copy "litdata" / "mosaic") that library's, in place."""
    import chute

    path = os.path.join(workdir, copy)
    if copy != "chute" and not os.path.exists(os.path.join(path, "index.json")):
        sys.exit(f"chute@{copy} reads {copy}'s copy of the tokens: run {copy} first (--libs {copy} chute@{copy})")
    if not os.path.exists(os.path.join(path, "index.json")):
        chute.optimize(_document, range(len(_DOCS[1]) - 1), path, chunk_bytes="64MB", num_workers=2,
                       progress=False, overwrite=True)
    source, cache, epoch = _tokens_source(args, workdir, copy)
    ds = chute.StreamingDataset(source, item_loader=chute.TokensLoader(args.block, dtype=out_dtype), shuffle=True,
                                cache_dir=cache)
    loader = chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)
    return read_epochs(lambda: loader)[epoch]


def run_litdata(args, workdir):
    import litdata

    path = os.path.join(workdir, "litdata")
    if not os.path.exists(os.path.join(path, "index.json")):
        litdata.optimize(fn=_document, inputs=list(range(len(_DOCS[1]) - 1)), output_dir=path, chunk_bytes="64MB",
                         item_loader=litdata.TokensLoader(), num_workers=2)
        # optimize switched this process to spawn: forked loader workers keep litdata_over_http
        multiprocessing.set_start_method("fork", force=True)
    source, cache, epoch = _tokens_source(args, workdir, "litdata")
    if cache:
        litdata_over_http()
        source = litdata.streaming.resolver.Dir(path=cache, url=source)
    ds = litdata.StreamingDataset(source, item_loader=litdata.TokensLoader(block_size=args.block), shuffle=True)
    loader = litdata.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)
    return read_epochs(lambda: loader)[epoch]


def run_mosaic(args, workdir):
    import_streaming()
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
    source, cache, epoch = _tokens_source(args, workdir, "mosaic")
    ds = streaming.StreamingDataset(remote=source if cache else None, local=cache or source, shuffle=True,
                                    batch_size=args.batch)
    loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_stack_tokens)
    return read_epochs(lambda: loader)[epoch]


def _stack_tokens(samples):
    import torch

    return torch.from_numpy(np.stack([s["tokens"] for s in samples]))


def _bytes_sample(i, size):
    return {"image": np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8).tobytes(), "label": i}


def _copy_of(lib):
    """The copy of the data `lib` reads: "chute@litdata" reads litdata's (in place)."""
    return lib.split("@")[1] if "@" in lib else lib.split("-")[0]


def write_bytes_datasets(args, libs):
    """Each library's copy of the same samples under --dir/bytes/<lib>, written once."""
    workdir = os.path.join(args.dir, "bytes")
    for lib in dict.fromkeys(_copy_of(lib) for lib in libs):
        path = os.path.join(workdir, lib)
        if os.path.exists(os.path.join(path, "done")):
            continue
        python = sys.executable if lib == "chute" else args.peer_python
        subprocess.run([python, os.path.abspath(__file__), "bytes", "--write", lib, "--dir", args.dir,
                        "--samples", str(args.samples), "--sample-kb", str(args.sample_kb)], check=True)
        open(os.path.join(path, "done"), "w").close()


def write_bytes(lib, args):
    path = os.path.join(args.dir, "bytes", lib)
    size = args.sample_kb * 1000
    sample = functools.partial(_bytes_sample, size=size)
    if lib == "chute":
        import chute

        chute.optimize(sample, range(args.samples), path, num_workers=2, progress=False, overwrite=True)
    elif lib == "litdata":
        import litdata

        litdata.optimize(fn=sample, inputs=list(range(args.samples)), output_dir=path, chunk_bytes="64MB",
                         num_workers=2)
    elif lib == "mosaic":
        import_streaming()
        import streaming

        with streaming.MDSWriter(out=path, columns={"image": "bytes", "label": "int"}, size_limit="64mb") as w:
            for i in range(args.samples):
                w.write(sample(i))
    else:
        import webdataset as wds

        os.makedirs(path, exist_ok=True)
        with wds.ShardWriter(os.path.join(path, "shard-%06d.tar"), maxsize=64e6) as w:
            for i in range(args.samples):
                w.write({"__key__": f"{i:08d}", "jpg": sample(i)["image"], "cls": str(i)})


def bytes_loader(lib, args):
    """A function making the DataLoader of `lib` over its copy of the data, read from local
    disk or (--endpoint) from the S3 bench server into a fresh cache directory."""
    local = os.path.join(args.dir, "bytes", _copy_of(lib))
    remote = f"s3://bytes/{_copy_of(lib)}" if args.endpoint else None
    cache = tempfile.mkdtemp(prefix=f"{lib}-cache-", dir=args.dir) if remote else None
    workers = 0 if lib == "chute-threads" else args.workers
    if lib.startswith("chute"):
        import chute

        def make():
            ds = chute.StreamingDataset(remote or local, shuffle=True, cache_dir=cache)
            return chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=workers, collate_fn=_collate)
    elif lib == "litdata":
        import litdata

        litdata_over_http()

        def make():
            source = litdata.streaming.resolver.Dir(path=cache, url=remote) if remote else local
            ds = litdata.StreamingDataset(source, shuffle=True)
            return litdata.StreamingDataLoader(ds, batch_size=args.batch, num_workers=workers, collate_fn=_collate)
    elif lib == "mosaic":
        import_streaming()
        import streaming
        from torch.utils.data import DataLoader

        def make():
            streaming.base.util.clean_stale_shared_memory()
            ds = streaming.StreamingDataset(remote=remote, local=cache or local, shuffle=True, batch_size=args.batch)
            return DataLoader(ds, batch_size=args.batch, num_workers=workers, collate_fn=_collate)
    else:  # webdataset: shards over plain HTTP GETs from the same server, as its users do
        import webdataset as wds
        from torch.utils.data import DataLoader

        names = sorted(os.path.basename(u) for u in glob.glob(os.path.join(local, "shard-*.tar")))
        urls = [f"pipe:curl -s -f {args.endpoint}/bytes/webdataset/{n}" if remote else os.path.join(local, n)
                for n in names]

        def make():
            ds = wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.split_by_node).shuffle(1000) \
                .to_tuple("jpg", "cls")
            return DataLoader(ds, batch_size=args.batch, num_workers=workers, collate_fn=_collate)
    return make


def _collate(samples):
    # litdata hands out bytes leaves as memoryviews of its chunk buffer, which cannot be
    # pickled to the main process: its users convert them.
    return [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in s.items()} if isinstance(s, dict) else s
            for s in samples]


def run_one(lib, args):
    global _DOCS
    if args.workload == "bytes":
        make = bytes_loader(lib, args)
        memory = MemorySampler()
        epochs = read_epochs(make)
        rss, anon = memory.stop()
        for cache in glob.glob(os.path.join(args.dir, f"{lib}-cache-*")):  # GBs the next runs need not share
            shutil.rmtree(cache, ignore_errors=True)
        print(json.dumps({"lib": lib, "epochs": [{"first_batch_s": f, "seconds": t, "samples": n,
                                                   "samples_per_s": n / t, "MB_per_s": n * args.sample_kb / 1000 / t}
                                                  for f, t, n in epochs], "peak_rss_mb": rss, "peak_anon_mb": anon}))
        return
    workdir = os.path.join(args.dir, "tokens")
    _DOCS = make_documents(workdir, args.tokens)
    os.environ["CHUTE_BENCH_DOCS"] = workdir
    memory = MemorySampler()
    if lib == "chute":
        first, seconds, blocks = run_chute(args, workdir, "int32")
    elif lib == "chute-int64":
        first, seconds, blocks = run_chute(args, workdir, "int64")
    elif lib.startswith("chute@"):
        first, seconds, blocks = run_chute(args, workdir, "int32", copy=lib.split("@")[1])
    elif lib == "litdata":
        first, seconds, blocks = run_litdata(args, workdir)
    else:
        first, seconds, blocks = run_mosaic(args, workdir)
    rss, anon = memory.stop()
    for cache in glob.glob(os.path.join(workdir, "*-cache-*")):
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps({"lib": lib, "first_batch_s": first, "seconds": seconds, "blocks": blocks,
                      "blocks_per_s": blocks / seconds, "tokens_per_s": blocks * args.block / seconds,
                      "peak_rss_mb": rss, "peak_anon_mb": anon}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["tokens", "bytes"])
    p.add_argument("--source", choices=["local", "s3"], default="local",
                   help="read from local disk or from the S3 bench server")
    p.add_argument("--first-byte-ms", type=float, default=20)
    p.add_argument("--mbps-per-connection", type=float, default=100)
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
    p.add_argument("--write", help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.write:
        write_bytes(args.write, args)
        return
    if args.run:
        run_one(args.run, args)
        return
    os.makedirs(os.path.join(args.dir, args.workload), exist_ok=True)
    libs = args.libs or (["chute", "chute-int64", "litdata", "mosaic"] if args.workload == "tokens"
                         else ["chute", "chute-threads", "litdata", "mosaic", "webdataset"])
    env = dict(os.environ)
    server = None
    if args.workload == "tokens":  # (each library writes its copy when it first runs)
        make_documents(os.path.join(args.dir, "tokens"), args.tokens)
    else:
        write_bytes_datasets(args, libs)
    if args.source == "s3":
        from s3_bench_server import start

        server, args.endpoint = start(args.dir, args.first_byte_ms, args.mbps_per_connection)
        print(f"S3 bench server {args.endpoint}: {args.first_byte_ms:g} ms to first byte, "
              f"{args.mbps_per_connection:g} MB/s per connection", flush=True)
        # chute and litdata (boto3) read AWS_ENDPOINT_URL, Mosaic S3_ENDPOINT_URL.
        env.update(AWS_ENDPOINT_URL=args.endpoint, S3_ENDPOINT_URL=args.endpoint, AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    results = {}
    for lib in libs:
        python = sys.executable if lib.startswith("chute") else args.peer_python
        cmd = [python, os.path.abspath(__file__), args.workload, "--run", lib, "--tokens", str(args.tokens),
               "--block", str(args.block), "--batch", str(args.batch), "--workers", str(args.workers),
               "--dir", args.dir, "--samples", str(args.samples), "--sample-kb", str(args.sample_kb)]
        if args.endpoint:
            cmd += ["--endpoint", args.endpoint]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{lib}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results[lib] = r
        if args.workload == "bytes":
            for e, ep in enumerate(r["epochs"], 1):
                print(f"{lib:14s} epoch {e}: {ep['samples_per_s']:9,.0f} samples/s {ep['MB_per_s']:8,.0f} MB/s  "
                      f"first batch {ep['first_batch_s'] * 1e3:7.1f} ms", flush=True)
            print(f"{lib:14s} peak RSS {r['peak_rss_mb']:,.0f} MB (anonymous {r['peak_anon_mb']:,.0f} MB)", flush=True)
            continue
        print(f"{lib:12s} {r['blocks_per_s']:10,.0f} blocks/s  {r['tokens_per_s'] / 1e6:8.1f} M tokens/s  "
              f"first batch {r['first_batch_s'] * 1e3:7.1f} ms  peak RSS {r['peak_rss_mb']:7.0f} MB "
              f"(anonymous {r['peak_anon_mb']:,.0f} MB)", flush=True)
    if server is not None:
        print(f"S3 bench server: {server.requests:,} requests, {server.bytes_served / 1e6:,.0f} MB served")
        server.shutdown()
    if args.workload == "bytes":
        peers = [p for p in ("litdata", "mosaic", "webdataset") if p in results]
        if "chute" in results and peers:
            mine = results["chute"]
            for e in (0, 1):
                best = max(peers, key=lambda p: results[p]["epochs"][e]["samples_per_s"])
                theirs = results[best]["epochs"][e]
                print(f"epoch {e + 1}: chute / best peer ({best}): "
                      f"{mine['epochs'][e]['samples_per_s'] / theirs['samples_per_s']:.1f}x samples/s, first batch "
                      f"{mine['epochs'][e]['first_batch_s'] * 1e3:.0f} vs {theirs['first_batch_s'] * 1e3:.0f} ms")
            for key in ("peak_rss_mb", "peak_anon_mb"):
                print(f"{key}: chute {mine[key]:,.0f}, peers " +
                      ", ".join(f"{p} {results[p][key]:,.0f}" for p in peers))
        for peer in peers:  # in place: chute reading the peer's own copy, against the peer
            if f"chute@{peer}" in results:
                mine = results[f"chute@{peer}"]
                ratios = [mine["epochs"][e]["samples_per_s"] / results[peer]["epochs"][e]["samples_per_s"]
                          for e in (0, 1)]
                print(f"in place, {peer}'s dataset: chute / {peer}: epoch 1 {ratios[0]:.1f}x, epoch 2 {ratios[1]:.1f}x")
        return
    for peer in ("litdata", "mosaic"):
        if "chute" in results and peer in results:
            print(f"chute / {peer}: {results['chute']['tokens_per_s'] / results[peer]['tokens_per_s']:.1f}x tokens/s")
        if f"chute@{peer}" in results and peer in results:
            print(f"in place, {peer}'s dataset: chute / {peer}: "
                  f"{results[f'chute@{peer}']['tokens_per_s'] / results[peer]['tokens_per_s']:.1f}x tokens/s")


if __name__ == "__main__":
    main()
