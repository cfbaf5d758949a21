"""optimize: run a function over inputs and write its samples as a chute dataset."""

from __future__ import annotations

import datetime
import inspect
import json
import os
import traceback

from tqdm.auto import tqdm

from chute import _core
from chute._serialize import Encoder, SampleError
from chute._units import parse_size, storage_options_to_strings
from chute._workers import run_jobs


class OptimizeError(RuntimeError):
    """``fn`` failed on an input, or returned a sample that cannot be stored."""


def optimize(fn, inputs, output_dir, *, chunk_bytes=_core.DEFAULTS["chunk_bytes"], chunk_size=None,
             num_workers=None, compression=None, allow_pickle: bool = False, overwrite: bool = False,
             progress: bool = True, block_bytes=_core.DEFAULTS["block_bytes"], storage_options=None,
             resume: bool = False) -> str:
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
        resume: continue an interrupted run (a crash, a kill) with the same inputs and
            settings: the chunks it finished are kept and the inputs they hold are not run
            again; the result is the same as an uninterrupted run's. (Every run records
            its finished chunks in ``output_dir/.chute-optimize.json``, removed at the
            end.) A finished dataset is left as it is.

    Returns the output directory. Raises OptimizeError naming the input that failed.
    """
    inputs = list(inputs)
    output_dir = os.fspath(output_dir)
    options = storage_options_to_strings(storage_options)
    settings = {"chunk_bytes": parse_size(chunk_bytes, "chunk_bytes"), "chunk_items": chunk_size or 0,
                "compression": compression or "", "block_bytes": parse_size(block_bytes, "block_bytes"),
                "num_inputs": len(inputs)}
    storage = _core.Storage.open(output_dir, options)
    for name in storage.list(""):  # a record being written when a run was killed (local files)
        if name.startswith(RESUME_RECORD + ".tmp-"):
            storage.delete(name)
    if resume and storage.exists("index.json"):  # finished (maybe killed before removing the record)
        if storage.exists(RESUME_RECORD):
            storage.delete(RESUME_RECORD)
        return output_dir
    record = _resume_record(storage, settings, output_dir) if resume else None
    if not resume and storage.exists(RESUME_RECORD):
        storage.delete(RESUME_RECORD)  # an interrupted run's, whose chunks this run replaces
    first_input, written_samples = record["next"] if record else (0, 0)
    writer = _core.DatasetWriter(output_dir, **{k: v for k, v in settings.items() if k != "num_inputs"},
                                 overwrite=overwrite, storage_options=options,
                                 resume_chunks=[tuple(c) for c in record["chunks"]] if record else [])
    tree = fields = None
    jobs = [(i, inputs[i]) for i in range(first_input, len(inputs))]
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, len(jobs)) or 1
    results = run_jobs(_init_worker, (fn, allow_pickle), _process, jobs, num_workers)
    with tqdm(total=len(inputs), initial=first_input, disable=not progress, desc="optimize", unit="input") as bar:
        for index, outcome in results:
            if isinstance(outcome, _Failure):
                results.close()
                outcome.raise_for(index, inputs[index])
            for sample, (sample_tree, sample_fields, leaves) in enumerate(outcome):
                if index == first_input and sample < written_samples:
                    continue  # in the chunks kept
                if tree is None:
                    tree, fields = sample_tree, sample_fields
                    if record and json.dumps([tree, fields]) != record["schema"]:
                        results.close()
                        raise OptimizeError(f"cannot resume {output_dir}: fn(inputs[{index}]) returns samples of "
                                            "another structure than the interrupted run wrote; rerun without "
                                            "resume=True")
                elif sample_tree != tree or sample_fields != fields:
                    results.close()
                    raise OptimizeError(
                        f"fn(inputs[{index}]) = fn({_short(inputs[index])}) returned a sample whose "
                        f"structure or leaf types differ from the first sample's:\n  first: "
                        f"{_describe(tree, fields)}\n  this:  {_describe(sample_tree, sample_fields)}\n"
                        "Every sample of a dataset must have the same structure and leaf types.")
                chunks = writer.num_chunks
                writer.add(leaves)
                if writer.num_chunks > chunks:  # a chunk landed, holding every sample before this one
                    storage.write(RESUME_RECORD, json.dumps({
                        "settings": settings, "chunks": writer.chunks, "next": [index, sample],
                        "schema": json.dumps([tree, fields])}).encode())
            bar.update(1)
    if tree is None and record:  # every sample was in the kept chunks
        tree, fields = json.loads(record["schema"])
    schema = {"tree": tree if tree is not None else "*", "fields": fields or []}
    metadata = {"created_by": f"chute {_version()}",
                "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    writer.finish(json.dumps(schema), json.dumps(metadata))
    if storage.exists(RESUME_RECORD):
        storage.delete(RESUME_RECORD)
    return output_dir


# What a run has written so far (its finished chunks and where the next one starts).
RESUME_RECORD = ".chute-optimize.json"


def _resume_record(storage, settings: dict, output_dir: str):
    """The record of an interrupted run into output_dir, or None if there is none."""
    if not storage.exists(RESUME_RECORD):
        return None
    record = json.loads(storage.read(RESUME_RECORD))
    if record.get("settings") != settings:
        raise OptimizeError(f"cannot resume {output_dir}: the interrupted run had other settings or inputs "
                            f"({record.get('settings')}, now {settings}); rerun without resume=True")
    return record


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
    except BaseException as exc:  # reported with the input by the parent (sys.exit in fn too: no lost task)
        return index, _Failure(exc)
