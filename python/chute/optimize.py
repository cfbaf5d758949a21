"""optimize: run a function over inputs and write its samples as a chute dataset."""

from __future__ import annotations

import datetime
import inspect
import json
import multiprocessing
import os
import sys
import traceback

from tqdm.auto import tqdm

from chute import _core
from chute._serialize import Encoder, SampleError
from chute._units import parse_size, storage_options_to_strings


class OptimizeError(RuntimeError):
    """``fn`` failed on an input, or returned a sample that cannot be stored."""


def optimize(fn, inputs, output_dir, *, chunk_bytes=_core.DEFAULTS["chunk_bytes"], chunk_size=None,
             num_workers=None, compression=None, allow_pickle: bool = False, overwrite: bool = False,
             progress: bool = True, block_bytes=_core.DEFAULTS["block_bytes"], storage_options=None) -> str:
    """Writes the samples of ``fn(input)`` for each input to ``output_dir``.

    Args:
        fn: called with one input; returns one sample, or yields several (a generator).
            A sample is a nesting of dict / list / tuple with leaves None, bool, int,
            float, str, bytes, numpy arrays, torch tensors or PIL images; every sample
            must have the first one's structure and leaf types.
        inputs: a sequence (or iterable) of inputs.
        output_dir: the dataset directory to create, or an object-store URL
            (``s3://bucket/prefix``, ``gs://...``); chunks are uploaded as they fill up,
            index.json last.
        chunk_bytes: target chunk size ("64MB", "256MiB" or bytes).
        chunk_size: maximum samples per chunk (None: no limit).
        num_workers: processes running ``fn`` (default: CPU count; 0 runs in this process).
            The output is byte-identical for any value.
        compression: None, "zstd" or "zstd:LEVEL" (per block of ``block_bytes``).
        allow_pickle: pickle leaves of other types instead of failing.
        overwrite: replace a dataset already in ``output_dir``.
        progress: show a progress bar.
        storage_options: object-store settings (see :class:`chute.StreamingDataset`).

    Returns the output directory. Raises OptimizeError naming the input that failed.
    """
    inputs = list(inputs)
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, len(inputs)) or 1
    output_dir = os.fspath(output_dir)
    writer = _core.DatasetWriter(
        output_dir,
        chunk_bytes=parse_size(chunk_bytes, "chunk_bytes"),
        chunk_items=chunk_size or 0,
        compression=compression or "",
        block_bytes=parse_size(block_bytes, "block_bytes"),
        overwrite=overwrite,
        storage_options=storage_options_to_strings(storage_options),
    )
    tree = fields = None
    results = _run(fn, inputs, num_workers, allow_pickle)
    with tqdm(total=len(inputs), disable=not progress, desc="optimize", unit="input") as bar:
        for index, outcome in results:
            if isinstance(outcome, _Failure):
                results.close()
                outcome.raise_for(index, inputs[index])
            for sample_tree, sample_fields, leaves in outcome:
                if tree is None:
                    tree, fields = sample_tree, sample_fields
                elif sample_tree != tree or sample_fields != fields:
                    results.close()
                    raise OptimizeError(
                        f"fn(inputs[{index}]) = fn({_short(inputs[index])}) returned a sample whose "
                        f"structure or leaf types differ from the first sample's:\n  first: "
                        f"{_describe(tree, fields)}\n  this:  {_describe(sample_tree, sample_fields)}\n"
                        "Every sample of a dataset must have the same structure and leaf types.")
                writer.add(leaves)
            bar.update(1)
    schema = {"tree": tree if tree is not None else "*", "fields": fields or []}
    metadata = {"created_by": f"chute {_version()}",
                "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    writer.finish(json.dumps(schema), json.dumps(metadata))
    return output_dir


def _version() -> str:
    from chute import __version__

    return __version__


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(tree, fields) -> str:
    return json.dumps({"tree": tree, "leaves": [f"{f['name']}: {f['type']}" + (
        f"[{f['dtype']}]" if "dtype" in f else "") for f in fields]})


class _Failure:
    """An exception from a worker, carried back with its formatted traceback."""

    def __init__(self, exc: BaseException):
        self.text = "".join(traceback.format_exception(exc))
        try:
            import pickle

            pickle.dumps(exc)
            self.exc = exc
        except Exception:
            self.exc = None

    def raise_for(self, index: int, value, error=None):
        """Raises `error` (OptimizeError by default) naming the input."""
        what = "returned a sample that cannot be stored" if isinstance(self.exc, SampleError) else "failed"
        message = f"fn {what} on inputs[{index}] = {_short(value)}: "
        if self.exc is not None:
            message += f"{type(self.exc).__name__}: {self.exc}"
        message += f"\n--- traceback in the worker ---\n{self.text}"
        raise (error or OptimizeError)(message) from self.exc


# Set in each worker process (and in this process when num_workers == 0).
_worker_fn = None
_worker_encoder = None


def _init_worker(fn, allow_pickle):
    global _worker_fn, _worker_encoder
    _worker_fn, _worker_encoder = fn, Encoder(allow_pickle)


def _process(job):
    """Runs fn on one input: (index, [encoded samples] or _Failure)."""
    index, value = job
    try:
        result = _worker_fn(value)
        samples = list(result) if inspect.isgenerator(result) else [result]
        return index, [_worker_encoder.encode(s) for s in samples]
    except Exception as exc:  # reported with the input by the parent
        return index, _Failure(exc)


def _run(fn, inputs, num_workers: int, allow_pickle: bool):
    """Yields (index, outcome) in input order."""
    if num_workers <= 0 or len(inputs) <= 1:
        _init_worker(fn, allow_pickle)
        for job in enumerate(inputs):
            yield _process(job)
        return
    # fork passes fn without pickling (lambdas and closures work); spawn where fork is absent.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(num_workers, initializer=_init_worker, initargs=(fn, allow_pickle)) as pool:
        yield from pool.imap(_process, enumerate(inputs), chunksize=1)
