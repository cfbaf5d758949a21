"""optimize: run a function over inputs and write its samples as a chute dataset.

The inputs are split into ``num_parts`` contiguous parts, fixed by their number alone.
Each part is a job: its worker runs ``fn``, encodes the samples and writes the part's
chunks (``chunk-<part>-<n>.bin``) itself, recording them in
``.chute-optimize-part-<part>.json`` as they land (beside the chunks: an object store
would keep an empty "directory" behind). The driver writes index.json last,
listing the parts' chunks in order. The output therefore depends only on the inputs and
the settings, never on the number of workers or machines.
"""

from __future__ import annotations

import inspect
import json
import os

from tqdm.auto import tqdm

from chute import _core
from chute._serialize import Encoder, SampleError
from chute._units import parse_size, storage_options_to_strings
from chute._missing import SKIPPED
from chute.dataset import StreamingDataset
from chute.executors import JobFailure, JobLost, executor_for

# In output_dir while a run is unfinished: one record per part (its landed chunks and
# where its next input starts), named RECORD_PREFIX + part + ".json".
RECORD_PREFIX = ".chute-optimize-part-"
# Default number of parts, at most one per input.
DEFAULT_PARTS = 64


class OptimizeError(RuntimeError):
    """``fn`` failed on an input, or returned a sample that cannot be stored."""


def optimize(fn, inputs, output_dir, *, chunk_bytes=_core.DEFAULTS["chunk_bytes"], chunk_size=None,
             num_workers=None, compression=None, allow_pickle: bool = False, overwrite: bool = False,
             progress: bool = True, block_bytes=_core.DEFAULTS["block_bytes"], storage_options=None,
             resume: bool = False, num_parts=None, executor=None) -> str:
    """Writes the samples of ``fn(input)`` for each input to ``output_dir``.

    Args:
        fn: called with one input; returns one sample, or yields several (a generator).
            A sample is a nesting of dict / list / tuple with leaves None, bool, int,
            float, str, bytes, numpy arrays, torch tensors or PIL images; every sample
            must have the first one's structure and leaf types.
        inputs: a sequence (or iterable) of inputs.
        output_dir: the dataset directory to create, or an object-store URL
            (``s3://bucket/prefix``, ``gs://...``); chunks are written (uploaded) by the
            workers as they fill up, index.json last.
        chunk_bytes: target chunk size ("64MB", "256MiB" or bytes).
        chunk_size: maximum samples per chunk (None: no limit).
        num_workers: processes running ``fn`` and writing chunks (default: CPU count; 0
            runs in this process). The output is byte-identical for any value.
        compression: None, "zstd" or "zstd:LEVEL" (per block of ``block_bytes``).
        allow_pickle: pickle leaves of other types instead of failing.
        overwrite: replace a dataset already in ``output_dir``.
        progress: show a progress bar (advancing as parts finish).
        storage_options: object-store settings (see :class:`chute.StreamingDataset`).
        resume: continue an interrupted run (a crash, a kill) with the same inputs and
            settings: the chunks it finished are kept and the inputs they hold are not run
            again; the result is the same as an uninterrupted run's. A finished dataset is
            left as it is.
        num_parts: the inputs are split into this many contiguous parts (default: 64, at
            most one per input), each written by one worker into chunks of its own; a
            part's last chunk is usually not full. More parts let more workers run at
            once; the output depends on this setting, not on the workers.
        executor: where the parts run: None (``num_workers`` processes here), "ray"
            (a Ray cluster, see :class:`chute.RayExecutor`) or a ``chute.RayExecutor``.
            The output is byte-identical to a run here with the same settings.

    Returns the output directory. Raises OptimizeError naming the input that failed.
    """
    # A chute dataset (raw objects, say) stays one: each part reads its samples in order
    # through the engine, never the whole dataset in this process.
    inputs = inputs if isinstance(inputs, StreamingDataset) else list(inputs)
    output_dir = os.fspath(output_dir)
    options = storage_options_to_strings(storage_options)
    if num_parts is None:
        num_parts = max(1, min(_count(inputs), DEFAULT_PARTS))
    if num_parts < 1:
        raise ValueError(f"num_parts must be at least 1, not {num_parts}")
    settings = {"chunk_bytes": parse_size(chunk_bytes, "chunk_bytes"), "chunk_items": chunk_size or 0,
                "compression": compression or "", "block_bytes": parse_size(block_bytes, "block_bytes"),
                "num_inputs": _count(inputs), "num_parts": num_parts}
    storage = _core.Storage.open(output_dir, options)
    names = storage.list("")  # listed once: the records, their temporary files, index.json
    for name in names:  # records being written when a run was killed (local files)
        if name.startswith(RECORD_PREFIX) and ".tmp-" in name:
            storage.delete(name)
    record_names = [name for name in names if name.startswith(RECORD_PREFIX) and name.endswith(".json")]
    if resume and "index.json" in names:  # finished (maybe killed before removing the records)
        _remove(storage, record_names)
        return output_dir
    records = _records(storage, record_names, settings, output_dir) if resume else {}
    # Bad settings fail here, before anything is removed.
    runner = executor_for(executor, num_workers)
    _PartWriter(fn, allow_pickle, inputs, output_dir, options, settings)._writer(0, [])
    if not resume:
        _remove(storage, record_names)  # an interrupted run's: before its chunks go, so none names a lost chunk
    _core.prepare_output(output_dir, overwrite, [c[0] for r in records.values() for c in r["chunks"]], options)

    jobs = [(part, records.get(part)) for part in range(num_parts) if not records.get(part, {}).get("done")]
    parts = {part: record for part, record in records.items() if record.get("done")}
    results = runner.run(_init_worker, (fn, allow_pickle, inputs, output_dir, options, settings), _write_part, jobs)
    with tqdm(total=settings["num_inputs"], initial=sum(_bounds(p, settings)[1] - _bounds(p, settings)[0] for p in parts),
              disable=not progress, desc="optimize", unit="input") as bar:
        try:
            for part, outcome in results:
                if isinstance(outcome, tuple):  # (input index or None, JobFailure)
                    index, failure = outcome
                    if index is None:
                        failure.raise_as(OptimizeError, "optimize to {} failed writing inputs[{}:{}]".format(
                            output_dir, *_bounds(part, settings)))
                    if isinstance(failure.exc, OptimizeError):  # a sample of another structure: names the input
                        raise failure.exc
                    what = ("returned a sample that cannot be stored" if isinstance(failure.exc, SampleError)
                            else "failed")
                    failure.raise_as(OptimizeError, f"fn {what} on inputs[{index}] = {_input(inputs, index)}")
                parts[part] = outcome
                start, end = _bounds(part, settings)
                bar.update(end - start)
        except JobLost as exc:
            what = "" if exc.job is None else " on inputs[{}:{}]".format(*_bounds(exc.job[0], settings))
            raise OptimizeError(f"optimize to {output_dir} stopped{what}: {exc}; rerun with resume=True to go "
                                "on from the chunks written") from None
        finally:
            results.close()

    schema = _common_schema(parts, inputs)
    chunks = [tuple(c) for part in range(num_parts) for c in parts[part]["chunks"]]
    _core.write_index(output_dir, chunks, json.dumps(schema), settings["compression"],
                      json.dumps({"created_by": f"chute {_version()}", "num_parts": num_parts}), options)
    _remove(storage, [_record_name(part) for part in range(num_parts)])  # every part ends with one
    return output_dir


def _bounds(part: int, settings: dict) -> tuple[int, int]:
    """The inputs [start, end) of a part."""
    n, parts = settings["num_inputs"], settings["num_parts"]
    return part * n // parts, (part + 1) * n // parts


def _records(storage, names: list, settings: dict, output_dir: str) -> dict:
    """The records (named `names`) of an interrupted run into output_dir, by part."""
    records = {}
    for name in names:
        record = json.loads(storage.read(name))
        if record.get("settings") != settings:
            raise OptimizeError(f"cannot resume {output_dir}: the interrupted run had other settings or inputs "
                                f"({record.get('settings')}, now {settings}); rerun without resume=True")
        records[record["part"]] = record
    return records


def _record_name(part: int) -> str:
    return f"{RECORD_PREFIX}{part:05d}.json"


def _remove(storage, names: list) -> None:
    for name in names:
        storage.delete(name)


def _common_schema(parts: dict, inputs: list) -> dict:
    """The schema every part's samples have; OptimizeError naming the first input of a
    part whose samples differ from the first part's."""
    first = None
    for part in sorted(parts):
        record = parts[part]
        if record["schema"] is None:
            continue
        if first is None:
            first = record
        elif record["schema"] != first["schema"]:
            index = record["first_input"]
            raise OptimizeError(_structure_error(index, _input(inputs, index), json.loads(first["schema"]),
                                                 json.loads(record["schema"]), first["first_input"]))
    tree, fields = json.loads(first["schema"]) if first else ("*", [])
    return {"tree": tree, "fields": fields}


def _structure_error(index: int, shown: str, first, this, first_index: int) -> str:
    return (f"fn(inputs[{index}]) = fn({shown}) returned a sample whose structure or leaf types differ "
            f"from the first sample's (of inputs[{first_index}]):\n  first: {_describe(*first)}\n  this:  "
            f"{_describe(*this)}\nEvery sample of a dataset must have the same structure and leaf types.")


def _version() -> str:
    from chute import __version__

    return __version__


def _input(inputs, index: int) -> str:
    """inputs[index] for a message: a dataset's sample is named, not read (again)."""
    if isinstance(inputs, StreamingDataset):
        return f"sample {index} of {getattr(inputs, 'src', inputs.input_dir)}"
    return _short(inputs[index])


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(tree, fields) -> str:
    return json.dumps({"tree": tree, "leaves": [f"{f['name']}: {f['type']}" + (
        f"[{f['dtype']}]" if "dtype" in f else "") for f in fields]})


class _InputFailed(Exception):
    """fn(inputs[index]) failed, or returned a sample that cannot be stored (the cause)."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


def _count(inputs) -> int:
    """The number of inputs (every sample of a dataset, whatever rank this process is)."""
    return inputs.num_samples if isinstance(inputs, StreamingDataset) else len(inputs)


class _PartWriter:
    """Set up once in each worker: writes whole parts."""

    def __init__(self, fn, allow_pickle, inputs, output_dir, options, settings):
        self.fn, self.encoder, self.inputs = fn, Encoder(allow_pickle), inputs
        self.output_dir, self.options, self.settings = output_dir, options, settings
        self.storage = _core.Storage.open(output_dir, options)  # this process's own client

    def __call__(self, job):
        """(part, its record once finished) or (part, (index of the input that failed or
        None, JobFailure))."""
        part, record = job
        try:
            return part, self._write(part, record)
        except _InputFailed as failed:
            return part, (failed.index, JobFailure(failed.__cause__))
        except BaseException as exc:  # writing failed (storage): reported by the driver
            return part, (None, JobFailure(exc))

    def _write(self, part: int, record) -> dict:
        start, end = _bounds(part, self.settings)
        record = record or {"part": part, "settings": self.settings, "chunks": [], "next": [start, 0],
                            "schema": None, "first_input": None}
        writer = self._writer(part, record["chunks"])
        if len(writer.chunks) < len(record["chunks"]):  # a kept chunk was lost (a machine crash): the part again
            record.update(chunks=[], next=[start, 0], schema=None, first_input=None)
            writer = self._writer(part, [])
        first_input, written_samples = record["next"]
        values = self._values(first_input, end)
        for index in range(first_input, end):
            try:
                value = next(values)
            except StopIteration:
                raise RuntimeError(f"the dataset ended before its input {index}") from None
            except Exception as exc:  # reading the input (a missing object, ...)
                raise _InputFailed(index) from exc
            if value is SKIPPED:  # a raw sample whose objects are missing (allow_missing)
                continue
            for sample, (schema, leaves) in enumerate(self._samples(index, value, record)):
                if index == first_input and sample < written_samples:
                    continue  # in the chunks kept
                chunks = writer.num_chunks
                try:
                    writer.add(leaves)
                except OSError:
                    raise  # storage
                except Exception as exc:  # a leaf it cannot store (an int beyond 64 bits, ...)
                    raise _InputFailed(index) from exc
                if writer.num_chunks > chunks:  # a chunk landed, holding every sample before this one
                    record.update(chunks=writer.chunks, next=[index, sample])
                    self.storage.write(_record_name(part), json.dumps(record).encode())
        writer.close()
        record.update(chunks=writer.chunks, next=[end, 0], done=True)
        self.storage.write(_record_name(part), json.dumps(record).encode())
        return record

    def _values(self, start: int, end: int):
        """inputs[start:end], one at a time."""
        if isinstance(self.inputs, StreamingDataset):
            return self.inputs._in_order(start, end)
        return (self.inputs[i] for i in range(start, end))

    def _samples(self, index: int, value, record: dict):
        """(schema, leaves) of each sample of fn(value), value = inputs[index]; _InputFailed
        on an error of fn, of encoding, or a sample of another structure."""
        try:
            result = self.fn(value)
            for produced in result if inspect.isgenerator(result) else [result]:
                tree, fields, leaves = self.encoder.encode(produced)
                schema = json.dumps([tree, fields])
                if record["schema"] is None:
                    record["schema"], record["first_input"] = schema, index
                elif schema != record["schema"]:
                    raise OptimizeError(_structure_error(index, _short(value), json.loads(record["schema"]),
                                                         [tree, fields], record["first_input"]))
                yield schema, leaves
        except GeneratorExit:  # closed by the caller
            raise
        except BaseException as exc:  # reported with the input by the driver (sys.exit in fn too)
            raise _InputFailed(index) from exc

    def _writer(self, part: int, resume_chunks: list):
        s = self.settings
        return _core.ChunkWriter(self.output_dir, chunk_bytes=s["chunk_bytes"], chunk_items=s["chunk_items"],
                                 compression=s["compression"], block_bytes=s["block_bytes"],
                                 chunk_prefix=f"chunk-{part:05d}-", storage_options=self.options,
                                 resume_chunks=[tuple(c) for c in resume_chunks])


# Set in each worker (and in this process when the parts run here).
_worker = None


def _init_worker(*args):
    global _worker
    _worker = _PartWriter(*args)


def _write_part(job):
    return _worker(job)
