"""The `chute` command: `chute demo` optimizes a generated local dataset, then streams it
and prints throughput; inspect, verify, cache and bench are tools for datasets and the
node cache (chute/_cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def _make_sample(index: int, sample_bytes: int):
    import numpy as np

    rng = np.random.default_rng(index)
    return {"image": rng.integers(0, 256, sample_bytes, dtype=np.uint8).tobytes(), "label": index % 1000}


def demo(args) -> None:
    import functools

    import chute
    from chute._cli import epoch_rates

    root = args.dir or os.path.join(tempfile.gettempdir(), "chute-demo")
    out = os.path.join(root, "dataset")
    t0 = time.perf_counter()
    chute.optimize(functools.partial(_make_sample, sample_bytes=args.sample_kb * 1000),
                   range(args.num_samples), out, num_workers=args.workers, overwrite=True,
                   progress=sys.stderr.isatty())
    t1 = time.perf_counter()
    total_mb = args.num_samples * args.sample_kb / 1000
    print(f"optimize: {args.num_samples} samples ({total_mb:.0f} MB) -> {out} in {t1 - t0:.2f} s")

    ds = chute.StreamingDataset(out, shuffle=True)
    loader = chute.StreamingDataLoader(ds, batch_size=args.batch_size, num_workers=args.workers, collate_fn=list)
    for epoch, (seen, dt, _) in enumerate(epoch_rates(loader, 2, time.perf_counter())):  # each pass: the next epoch
        print(f"stream epoch {epoch}: {seen} samples in {dt:.2f} s = {seen / dt:,.0f} samples/s, "
              f"{seen * args.sample_kb / 1000 / dt:,.0f} MB/s ({args.workers} workers)")


def main(argv=None) -> None:
    from chute._cli import add_commands, run

    parser = argparse.ArgumentParser(prog="chute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="optimize a generated dataset and stream it")
    p.add_argument("--dir", help="where to write (default: $TMPDIR/chute-demo)")
    p.add_argument("--num-samples", type=int, default=5000)
    p.add_argument("--sample-kb", type=int, default=110)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(run=demo)
    add_commands(sub)
    args = parser.parse_args(argv)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
