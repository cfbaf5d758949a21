"""A remote dataset read from the node cache against the same dataset on local disk.

    python bench/cache_bench.py [tokens|bytes] [--tokens 100000000] [--block 2049] [--samples 10000]
        [--sample-kb 110] [--batch 64] [--workers 2] [--epochs 5] [--dir /tmp/chute-cache-bench]
        [--python PYTHON]

`tokens`: documents of random int32 tokens (as in compare_peers.py) read as shuffled
blocks of --block tokens with a TokensLoader (--workers gather threads). `bytes`:
--samples random byte strings of --sample-kb KB, shuffled, through --workers DataLoader
workers. Each case runs in its own process, 1 + --epochs epochs: `local` reads the
dataset's directory (later epochs from a warm page cache), `cached` reads it from
bench/s3_bench_server.py (no added latency) into a fresh cache directory (epoch 1
downloads, the later ones read the cache, also warm). Prints the median of the later
epochs of both and their ratio: with every chunk cached, the two should match.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import tempfile

from compare_peers import _bytes_sample, _collate, _document, make_documents
from peer_runtime import read_epochs
from s3_bench_server import case_arguments, run_cases


def write(args):
    import chute

    path = os.path.join(args.dir, "data", args.workload)
    if os.path.exists(os.path.join(path, "index.json")):
        return
    if args.workload == "tokens":
        import compare_peers

        compare_peers._DOCS = make_documents(args.dir, args.tokens)
        os.environ["CHUTE_BENCH_DOCS"] = args.dir
        chute.optimize(_document, range(len(compare_peers._DOCS[1]) - 1), path, num_workers=2, progress=False)
    else:
        chute.optimize(functools.partial(_bytes_sample, size=args.sample_kb * 1000), range(args.samples), path,
                       num_workers=2, progress=False)


def run_case(case, args):
    import chute

    cache = tempfile.mkdtemp(prefix="cache-", dir=args.dir)
    url = f"s3://data/{args.workload}" if case == "cached" else os.path.join(args.dir, "data", args.workload)
    try:
        def make():
            if args.workload == "tokens":
                ds = chute.StreamingDataset(url, item_loader=chute.TokensLoader(args.block, dtype="int32"),
                                            shuffle=True, cache_dir=cache)
                return chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers)
            ds = chute.StreamingDataset(url, shuffle=True, cache_dir=cache)
            return chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_collate)

        epochs = read_epochs(make, epochs=1 + args.epochs)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps([n / t for _, t, n in epochs]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=["tokens", "bytes"], nargs="?", default="tokens")
    p.add_argument("--tokens", type=int, default=100_000_000)
    p.add_argument("--block", type=int, default=2049)
    p.add_argument("--epochs", type=int, default=5, help="epochs timed after the first")
    case_arguments(p, "/tmp/chute-cache-bench")
    args = p.parse_args()
    if args.run:
        run_case(args.run, args)
        return
    os.makedirs(os.path.join(args.dir, "data"), exist_ok=True)
    write(args)
    results = run_cases(__file__, ("local", "cached"), args.dir, 0, 0, args.python)
    unit = "blocks" if args.workload == "tokens" else "samples"
    median = {case: statistics.median(runs[0][1:]) for case, runs in results.items()}
    for case, (rates,) in results.items():
        print(f"{case:6s} epochs 2-{len(rates)}: median {median[case]:10,.0f} {unit}/s  "
              f"({', '.join(f'{r:,.0f}' for r in rates[1:])})")
    print(f"cached / local: {median['cached'] / median['local']:.2f}")


if __name__ == "__main__":
    main()
