"""Profiling a StreamingDataLoader: a Chrome / Perfetto trace of its first batches and
counters of what it read and waited for (docs/profiling.md).

Each process records its own spans: C++ spans of the engine (chute._core.trace_*) and
Python spans recorded here, on the same clock (CLOCK_MONOTONIC). A DataLoader worker
writes its spans to ``<profile_dir>/.worker-<run>-<pid>.json`` once its share of the
profiled batches is collated; the main process merges that run's files with its own
spans into ``<profile_dir>/chute-trace.json`` (``chute-trace-rank<r>.json`` under DDP).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time

import torch

from chute import _core

TRACE_FILE = "chute-trace.json"
WORKER_PREFIX = ".worker-"
# How long the main process waits for the workers' spans once it has its batches.
WORKER_FILE_TIMEOUT = 30.0

_spans: list | None = None  # Python spans while recording: (name, start ns, duration ns, thread id, thread name)
_run_ids = itertools.count()


def _forget_in_child() -> None:
    global _spans
    _spans = None  # a forked worker records only if it starts itself (traced_samples)


os.register_at_fork(after_in_child=_forget_in_child)


def new_run() -> str:
    """An id for one profiled iteration, naming its workers' files."""
    return f"{os.getpid()}-{next(_run_ids)}"


def start() -> None:
    global _spans
    _spans = []
    _core.trace_start()


def recording() -> bool:
    return _spans is not None


@contextlib.contextmanager
def span(name: str):
    """Records the block as `name` while a trace is on."""
    spans = _spans  # once: another thread may stop the trace meanwhile (the span is then dropped)
    if spans is None:
        yield
        return
    begin = time.monotonic_ns()
    try:
        yield
    finally:
        spans.append((name, begin, time.monotonic_ns() - begin, threading.get_native_id(),
                      threading.current_thread().name))


def stop(process_name: str) -> list[dict]:
    """Stops recording; this process's spans as trace events."""
    global _spans
    spans, _spans = _spans or [], None
    native = _core.trace_stop()
    pid = os.getpid()
    events, threads = [], {}
    for category, records in (("engine", native), ("python", spans)):
        for name, begin, duration, tid, thread_name in records:
            events.append({"name": name, "cat": category, "ph": "X", "ts": begin / 1000, "dur": duration / 1000,
                           "pid": pid, "tid": tid})
            threads[tid] = thread_name
    events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": process_name}})
    events += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name or str(tid)}}
               for tid, name in threads.items()]
    return events


def write_worker(profile_dir: str, run: str, events: list[dict]) -> None:
    os.makedirs(profile_dir, exist_ok=True)
    path = os.path.join(profile_dir, f"{WORKER_PREFIX}{run}-{os.getpid()}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(events, f)
    os.replace(path + ".tmp", path)  # whole or absent


def write_trace(profile_dir: str, run: str, events: list[dict], workers: int, wait: bool, rank: int,
                world_size: int) -> str:
    """Merges `events` with the spans of the run's `workers` worker processes (waiting
    for them up to WORKER_FILE_TIMEOUT if `wait`) into the trace file; returns its path."""
    os.makedirs(profile_dir, exist_ok=True)
    deadline = time.monotonic() + (WORKER_FILE_TIMEOUT if wait else 0)
    prefix = f"{WORKER_PREFIX}{run}-"
    while True:
        files = [n for n in os.listdir(profile_dir) if n.startswith(prefix) and n.endswith(".json")]
        if len(files) >= workers or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for name in files:
        with open(os.path.join(profile_dir, name)) as f:
            events += json.load(f)
        os.remove(os.path.join(profile_dir, name))
    path = os.path.join(profile_dir, TRACE_FILE if world_size == 1 else f"chute-trace-rank{rank}.json")
    with open(path, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms",
                   "otherData": {"worker_traces": len(files), "workers_expected": workers}}, f)
    return path


def traced_samples(dataset, samples):
    """The samples a dataset's __iter__ yields; in a DataLoader worker of a loader that
    profiles (``dataset._profile``: the directory and the batches), with this process's
    spans recorded until its share of those batches is collated, i.e. until it starts on
    the sample after them."""
    profile = getattr(dataset, "_profile", None)
    worker = torch.utils.data.get_worker_info()
    if profile is None or worker is None or worker.id >= profile[1]:  # the main process profiles itself
        yield from samples
        return
    profile_dir, batches, run = profile
    dataset._profile = None  # once per worker (a persistent one iterates again)
    quota = len(range(worker.id, batches, worker.num_workers))  # batches, or samples:
    quota *= 1 if getattr(dataset, "_decode_batches", None) is not None else dataset._batch_size
    name = f"chute worker {worker.id}"
    start()
    try:
        for n, sample in enumerate(samples):
            if n == quota:
                write_worker(profile_dir, run, stop(name))
            yield sample
    finally:
        if recording():  # the epoch ended first
            write_worker(profile_dir, run, stop(name))


class Collate:
    """A collate_fn recorded as a "collate" span."""

    def __init__(self, collate_fn):
        self.collate_fn = collate_fn

    def __call__(self, samples):
        with span("collate"):
            return self.collate_fn(samples)
