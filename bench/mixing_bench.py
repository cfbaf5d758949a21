"""Mixing against one dataset over the same bytes, from the S3 bench server.

    python bench/mixing_bench.py [--samples 10000] [--sample-kb 110] [--batch 64] [--workers 2]
        [--first-byte-ms 20] [--mbps-per-connection 100] [--epochs 3] [--repeats 3]
        [--dir /tmp/chute-mixing] [--python PYTHON]

The same --samples random byte strings (JPEG-like, undecoded, with an int label) are
written once as one chute dataset (`one`) and once split in two halves (`a`, `b`).
bench/s3_bench_server.py serves them as a simulated cloud store (each request waits
--first-byte-ms, then --mbps-per-connection per connection). Each case runs in its own
process with a fresh cache directory, reading 1 + --epochs epochs through a
StreamingDataLoader (shuffled, --batch, --workers), --repeats times each, alternating:
  single     StreamingDataset(one)
  combined   CombinedStreamingDataset([a, b]) (weights by size, stratified batches)
Epoch 1 downloads into the node cache, the later ones read the cache. Printed: the
median over the runs of epoch 1 and of the later epochs' median, per case, and the
median of each combined run's ratio to the single run just before it. --python runs the cases under another interpreter (an older
chute, say), the server and the data staying the same.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import tempfile

from compare_peers import _bytes_sample, _collate
from peer_runtime import read_epochs
from s3_bench_server import case_arguments, run_cases


def write(args):
    import chute

    sample = functools.partial(_bytes_sample, size=args.sample_kb * 1000)
    half = args.samples // 2
    for name, inputs in (("one", range(args.samples)), ("a", range(half)), ("b", range(half, args.samples))):
        path = os.path.join(args.dir, "mixing", name)
        if not os.path.exists(os.path.join(path, "index.json")):
            chute.optimize(sample, inputs, path, num_workers=2, progress=False, overwrite=True)


def run_case(case, args):
    import chute

    cache = tempfile.mkdtemp(prefix=f"{case}-cache-", dir=args.dir)
    try:
        def make():
            def dataset(name):
                return chute.StreamingDataset(f"s3://mixing/{name}", shuffle=True, cache_dir=cache)

            ds = dataset("one") if case == "single" else chute.CombinedStreamingDataset([dataset("a"), dataset("b")])
            return chute.StreamingDataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=_collate)

        epochs = read_epochs(make, epochs=1 + args.epochs)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps({"first_batch_s": epochs[0][0], "per_s": [n / t for _, t, n in epochs]}))


def main():
    p = argparse.ArgumentParser()
    case_arguments(p, "/tmp/chute-mixing")
    p.add_argument("--first-byte-ms", type=float, default=20)
    p.add_argument("--mbps-per-connection", type=float, default=100)
    p.add_argument("--epochs", type=int, default=3, help="epochs timed after the first (from the cache)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each case, alternating")
    args = p.parse_args()
    if args.run:
        run_case(args.run, args)
        return
    os.makedirs(os.path.join(args.dir, "mixing"), exist_ok=True)
    write(args)
    print(f"S3 bench server: {args.first_byte_ms:g} ms to first byte, {args.mbps_per_connection:g} MB/s per "
          f"connection; {args.samples:,} samples of {args.sample_kb} KB", flush=True)
    results = run_cases(__file__, ("single", "combined") * args.repeats, args.dir, args.first_byte_ms,
                        args.mbps_per_connection, args.python)
    rates = {}  # case -> per run: (epoch 1, median of the later epochs)
    for case, runs in results.items():
        rates[case] = [(r["per_s"][0], statistics.median(r["per_s"][1:])) for r in runs]
        first, later = zip(*rates[case])
        print(f"{case:9s} epoch 1: median {statistics.median(first):8,.0f} samples/s "
              f"({', '.join(f'{x:,.0f}' for x in first)}); "
              f"first batch median {statistics.median(r['first_batch_s'] for r in runs) * 1e3:,.0f} ms")
        print(f"{case:9s} epochs 2+: median {statistics.median(later):8,.0f} samples/s "
              f"({', '.join(f'{x:,.0f}' for x in later)})")
    # Each combined run against the single run just before it: the machine's drift cancels.
    for e, name in enumerate(("epoch 1", "epochs 2+")):
        ratios = [c[e] / s[e] for s, c in zip(rates["single"], rates["combined"])]
        print(f"{name}: combined / single = {statistics.median(ratios):.2f} (median of the runs' ratios: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
