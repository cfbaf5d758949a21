"""map: run a function over inputs and keep the files it writes, locally or in a bucket."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from tqdm.auto import tqdm

from chute import _core
from chute._units import storage_options_to_strings
from chute.executors import JobFailure, JobLost, executor_for
from chute.optimize import _short

# Under output_dir: one small object per input whose files are all uploaded.
DONE_DIR = ".chute-map"


class MapError(RuntimeError):
    """``fn`` failed on an input, or its files could not be uploaded."""


def map(fn, inputs, output_dir, *, num_workers=None, resume: bool = False, storage_options=None,
        progress: bool = True, executor=None) -> str:
    """Calls ``fn(input, staging_dir)`` for each input and uploads the files it writes.

    Args:
        fn: called with one input and a fresh local directory; the files (and
            subdirectories) it writes there are uploaded to ``output_dir`` under the same
            relative paths as soon as it returns, then the directory is removed.
        inputs: a sequence of inputs (the same sequence, in the same order, to resume).
        output_dir: a local directory or an object-store URL (``s3://bucket/prefix``, ...).
        num_workers: processes running ``fn`` and uploading (default: CPU count; 0 runs
            in this process).
        resume: skip the inputs an earlier run over the same inputs finished. Each
            input's completion is recorded in ``output_dir/.chute-map/<index>`` once all
            its files are uploaded, so a run killed at any point resumes without redoing
            them (a run without resume starts the record afresh). Files are read whole
            to be uploaded; a killed run may leave its workers' staging directories in
            the temporary directory.
        storage_options: object-store settings (see :class:`chute.StreamingDataset`).
        progress: show a progress bar.
        executor: where ``fn`` runs: None (``num_workers`` processes here), "ray" (a Ray
            cluster, see :class:`chute.RayExecutor`) or a ``chute.RayExecutor``.

    Returns ``output_dir``. Raises MapError naming the input that failed (the inputs
    finished before it stay recorded: rerun with ``resume=True``).
    """
    inputs = list(inputs)
    output_dir = os.fspath(output_dir)
    options = storage_options_to_strings(storage_options)
    storage = _core.Storage.open(output_dir, options)
    names = storage.list(DONE_DIR)
    for name in names:  # markers being written when a run was stopped (local files)
        if ".tmp-" in name:
            storage.delete(f"{DONE_DIR}/{name}")
    markers = [name for name in names if name.isdigit()]
    done = {int(name) for name in markers} if resume else set()
    if not resume:  # an earlier run's markers would let a later resume skip inputs of this one
        for name in markers:
            storage.delete(f"{DONE_DIR}/{name}")
    jobs = [(i, inputs[i]) for i in range(len(inputs)) if i not in done]
    results = executor_for(executor, num_workers).run(_init_worker, (fn, output_dir, options), _process, jobs)
    with tqdm(total=len(inputs), initial=len(inputs) - len(jobs), disable=not progress, desc="map",
              unit="input") as bar:
        try:
            for index, outcome in results:
                if isinstance(outcome, JobFailure):
                    outcome.raise_as(MapError, f"fn failed on inputs[{index}] = {_short(inputs[index])}")
                bar.update(1)
        except JobLost as exc:
            what = "" if exc.job is None else f" on inputs[{exc.job[0]}] = {_short(exc.job[1])}"
            raise MapError(f"map to {output_dir} stopped{what}: {exc}; rerun with resume=True to go on from the "
                           "inputs finished") from None
        finally:
            results.close()
    return output_dir


# Set in each worker process (and in this process when num_workers == 0).
_worker = None


class _Worker:
    def __init__(self, fn, output_dir, options):
        self.fn = fn
        self.storage = _core.Storage.open(output_dir, options)  # this process's own client

    def __call__(self, job):
        index, value = job
        staging = tempfile.mkdtemp(prefix="chute-map-")
        try:
            self.fn(value, staging)
            files = []
            for root, _, names in os.walk(staging):
                for name in sorted(names):
                    path = os.path.join(root, name)
                    relative = os.path.relpath(path, staging).replace(os.sep, "/")
                    with open(path, "rb") as f:
                        self.storage.write(relative, f.read())
                    files.append(relative)
            self.storage.write(f"{DONE_DIR}/{index}", json.dumps(sorted(files)).encode())
            return index, len(files)
        except BaseException as exc:  # reported with the input by the parent (sys.exit in fn too: no lost task)
            return index, JobFailure(exc)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _init_worker(fn, output_dir, options):
    global _worker
    _worker = _Worker(fn, output_dir, options)


def _process(job):
    return _worker(job)
