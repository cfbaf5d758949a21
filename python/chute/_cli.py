"""The `chute` tools: inspect, verify, cache ls|clear, bench. Exit codes: 0 done, 1 a
dataset or cache problem (named on stderr), 2 a usage error (argparse)."""

from __future__ import annotations

import concurrent.futures
import json
import sys
import time

from tqdm.auto import tqdm


class CliError(Exception):
    """A failure the command reports as `chute: error: ...` with exit code 1."""


def add_commands(sub) -> None:
    def storage_args(p):
        p.add_argument("url", help="dataset directory or URL (s3://, gs://, abfs://)")
        p.add_argument("-o", "--storage-option", action="append", default=[], metavar="KEY=VALUE",
                       help="object-store setting, e.g. endpoint_url=http://... (repeatable)")

    p = sub.add_parser("inspect", help="what a dataset holds: format, samples, chunks, bytes, schema")
    storage_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=inspect)

    p = sub.add_parser("verify", help="check every chunk against its checksums, in parallel")
    storage_args(p)
    p.add_argument("--workers", type=int, default=8, help="chunks checked at once (default 8)")
    p.set_defaults(run=verify)

    p = sub.add_parser("cache", help="list or clear the node-local cache of remote chunks")
    p.add_argument("action", choices=["ls", "clear"])
    p.add_argument("--cache-dir", help="the cache (default: the datasets' default cache_dir)")
    p.add_argument("--dataset", metavar="URL", help="clear: only this dataset's directories")
    p.set_defaults(run=cache)

    p = sub.add_parser("bench", help="read throughput through a StreamingDataLoader, epoch by epoch")
    storage_args(p)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cache-dir", help="where remote chunks are cached (default: a fresh temporary directory)")
    p.set_defaults(run=bench)


def _options(args) -> dict:
    options = {}
    for item in args.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--storage-option {item!r}: use KEY=VALUE")
        options[key] = value
    return options


def _open(args):
    """The C++ dataset, without a node cache: inspecting or verifying caches nothing."""
    from chute import _core
    from chute._units import storage_options_to_strings

    return _core.Dataset.open(args.url, storage_options=storage_options_to_strings(_options(args)))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""


def inspect(args) -> None:
    core = _open(args)
    chunks = core.chunks
    sizes = [c[2] for c in chunks]
    tokens = [c[3] for c in chunks]
    info = {
        "url": args.url,
        "format": core.format,
        "samples": len(core),
        "chunks": len(chunks),
        "bytes": sum(sizes),
        "chunk_bytes": {"min": min(sizes, default=0), "max": max(sizes, default=0)},
        "compression": core.compression or None,
        "schema": json.loads(core.schema_json),
        "tokens": sum(tokens) if tokens and min(tokens) >= 0 else None,
        "fingerprint": core.fingerprint,
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return
    print(f"{args.url}: {info['format']} dataset, fingerprint {info['fingerprint']}")
    print(f"  samples      {info['samples']:,}")
    print(f"  chunks       {info['chunks']:,} ({_size(info['chunk_bytes']['min'])} to "
          f"{_size(info['chunk_bytes']['max'])})")
    print(f"  bytes        {_size(info['bytes'])} ({info['bytes']:,})")
    print(f"  compression  {info['compression'] or 'none'}")
    if info["tokens"] is not None:
        print(f"  tokens       {info['tokens']:,} (a token dataset: TokensLoader reads it as blocks)")
    print(f"  schema       {json.dumps(info['schema'])}")


def verify(args) -> None:
    core = _open(args)
    chunks = core.chunks
    failures = []
    pool = concurrent.futures.ThreadPoolExecutor(max(1, args.workers))
    try:
        with tqdm(total=sum(c[2] for c in chunks), unit="B", unit_scale=True, desc="verify",
                  disable=not sys.stderr.isatty()) as bar:
            futures = {pool.submit(core.verify_chunk, c): c for c in range(len(chunks))}
            for future in concurrent.futures.as_completed(futures):
                c = futures[future]
                try:
                    future.result()
                except Exception as e:  # noqa: BLE001 -- every failure is reported, named by its chunk
                    failures.append((c, e))
                bar.update(chunks[c][2])
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: the chunks not started are dropped
    if failures:
        for c, e in sorted(failures, key=lambda f: f[0]):
            print(f"chute: chunk {chunks[c][0]} is damaged or unreadable: {e}", file=sys.stderr)
        raise CliError(f"{len(failures)} of {len(chunks)} chunks of {args.url} failed verification; "
                       "copy them again from their source or rewrite the dataset")
    print(f"{args.url}: {len(chunks)} chunks ({_size(sum(c[2] for c in chunks))}) verified, all checksums match")


def cache(args) -> None:
    from chute import _core
    from chute._process import default_cache_dir

    root = args.cache_dir or default_cache_dir()
    entries = _core.list_caches(root)
    if args.action == "ls":
        if not entries:
            print(f"{root}: empty")
        for path, url, chunks, size in entries:
            print(f"{url or '(unknown dataset)'}  {chunks} chunks  {_size(size)}  {path}")
        return
    if args.dataset:
        entries = [e for e in entries if e[1].rstrip("/") == args.dataset.rstrip("/")]
        if not entries:
            raise CliError(f"{root} holds no cache of {args.dataset} (see `chute cache ls`)")
    failed = []
    for path, url, chunks, size in entries:
        try:
            _core.remove_cache(path)
            print(f"removed {url or path} ({chunks} chunks, {_size(size)})")
        except (OSError, ValueError) as e:  # in use, or gone meanwhile: the others are still removed
            failed.append(str(e))
    if failed:
        raise CliError("; ".join(failed))


def bench(args) -> None:
    import tempfile

    import chute

    with tempfile.TemporaryDirectory(prefix="chute-bench-") as tmp:
        t0 = time.perf_counter()
        ds = chute.StreamingDataset(args.url, shuffle=True, storage_options=_options(args) or None,
                                    cache_dir=args.cache_dir or tmp)
        loader = chute.StreamingDataLoader(ds, batch_size=args.batch_size, num_workers=args.workers,
                                           collate_fn=list)
        for epoch, (n, dt, first) in enumerate(epoch_rates(loader, args.epochs, t0)):
            if first is None:
                raise CliError(f"{args.url} holds no samples")
            print(f"epoch {epoch + 1}: {n:,} samples in {dt:.2f} s = {n / dt:,.0f} samples/s "
                  f"(first batch {first * 1e3:,.0f} ms; {args.workers} workers, batch {args.batch_size})",
                  flush=True)


def epoch_rates(loader, epochs: int, start: float):
    """Reads `epochs` epochs of a loader whose batches are lists of samples; yields
    (samples, seconds, seconds to the first batch or None) for each, the first one timed
    from `start` (time.perf_counter(): include opening the dataset), the others from their
    own start."""
    t0 = start
    for _ in range(epochs):
        first, n = None, 0
        for batch in loader:
            first = first if first is not None else time.perf_counter() - t0
            n += len(batch)
        yield n, time.perf_counter() - t0, first
        t0 = time.perf_counter()


def run(args) -> int:
    """Runs a tool command; returns its exit code."""
    try:
        args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 -- any failure is a message and exit code 1, not a traceback
        print(f"chute: error: {e}", file=sys.stderr)
        return 1
    return 0
