"""Cost of the epoch order on a huge index, without any data: building the order of an
epoch and resuming in the middle of it (the first batch after the resume point).

    python bench/order_bench.py [--samples 100000000] [--chunks 100000]
"""

import argparse
import time
import tracemalloc

from chute import _core


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=100_000_000)
    p.add_argument("--chunks", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--world-size", type=int, default=8)
    args = p.parse_args()
    sizes = [args.samples // args.chunks] * args.chunks
    tracemalloc.start()
    t0 = time.perf_counter()
    order = _core.EpochOrder(sizes, shuffle=True, seed=42, epoch=3, partitions=64, window_items=sizes[0])
    t1 = time.perf_counter()
    middle = len(order) // 2
    rank, world, batch = 3, args.world_size, args.batch_size
    # rank r's batch k holds positions start + (k * batch + m) * world + r (chute/reader.h)
    first = order.fill(middle + rank, world, batch)
    t2 = time.perf_counter()
    n = 0
    for k in range(-(-1_000_000 // batch)):
        n += len(order.fill(middle + k * batch * world + rank, world, batch))
    t3 = time.perf_counter()
    print(f"{len(order):,} samples in {args.chunks:,} chunks: order built in {(t1 - t0) * 1e3:.1f} ms; "
          f"resume at position {middle:,} -> first batch of rank 3 in {(t2 - t1) * 1e3:.2f} ms "
          f"(ids {first[:3].tolist()}...); 1M ids of one rank in {(t3 - t2) * 1e3:.0f} ms; "
          f"peak Python-side memory {tracemalloc.get_traced_memory()[1] / 1e6:.1f} MB "
          f"(C++ side: {args.chunks * 20 / 1e6:.1f} MB of per-chunk tables)")


if __name__ == "__main__":
    main()
