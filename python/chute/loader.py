"""StreamingDataLoader: a torch DataLoader over a StreamingDataset that can stop and
resume mid-epoch — also on a different number of ranks or workers."""

from __future__ import annotations

import collections
import os
import time

import torch
from torch.utils.data import DataLoader, default_collate
from torch.utils.data._utils.pin_memory import pin_memory

from chute import _core, _profile
from chute._distributed import current_layout
from chute._decoded_batch import BatchDecoding
from chute._shared_batch import SharedCollate, forget_exited_workers, worker_counters
from chute._process import keep_freed_memory
from chute._missing import SKIPPED
from chute.dataset import StreamingDataset

STATE_VERSION = 1


class StreamingDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` for a :class:`StreamingDataset` or a
    :class:`CombinedStreamingDataset`.

    Each ``iter(loader)`` reads the next epoch (the first is ``dataset.epoch``), unless
    :meth:`load_state_dict` was called: then it continues the saved epoch where it
    stopped. Global batch k (batch k of every rank) is the same set of samples for any
    number of ranks and workers with the same global batch size.

    All ``DataLoader`` keyword arguments are accepted (``collate_fn``, ``pin_memory``,
    ``persistent_workers``, ...); ``shuffle``, ``sampler`` and ``batch_sampler`` are the
    dataset's business and not accepted. Batches come from worker processes through
    shared memory (bytes and numpy leaves too, not only tensors).

    With a dataset transform of :mod:`chute.transforms` steps, batches are decoded by
    threads: with ``num_workers=0`` and only chute.transforms, a thread per core of this
    process; otherwise those of each worker process, which decodes a fixed-shape field
    (images resized to one size) straight into the shared memory its batch crosses in.

    ``profile_batches=N`` records a Chrome / Perfetto trace of the first N batches of the
    first iteration — the engine's spans (download, fetch, wait_chunk, checksum, decode,
    read_batch, gather_tokens) and Python's (collate, handoff, wait_for_batch), per process
    and thread — into ``profile_dir/chute-trace.json`` (``profile_dir`` defaults to
    ``./chute-profile``); open it in https://ui.perfetto.dev or chrome://tracing.
    :meth:`stats` returns counters of what the loader read and waited for.
    """

    def __init__(self, dataset, batch_size: int = 1, num_workers: int = 0, *, profile_batches: int | None = None,
                 profile_dir: str | None = None, **kwargs):
        from chute.combined import CombinedStreamingDataset

        if not isinstance(dataset, (StreamingDataset, CombinedStreamingDataset)):
            raise TypeError("StreamingDataLoader needs a chute.StreamingDataset or CombinedStreamingDataset, "
                            f"not {type(dataset).__name__}")
        for key in ("shuffle", "sampler", "batch_sampler"):
            if kwargs.get(key) not in (None, False):
                raise ValueError(f"{key}= is not supported: shuffling and splitting are done by the dataset "
                                 "(StreamingDataset(shuffle=True, seed=...))")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive int")
        if profile_batches is not None and (not isinstance(profile_batches, int) or profile_batches < 1):
            raise ValueError(f"profile_batches={profile_batches!r} must be a positive int")
        dataset._batch_size = batch_size
        self._batch = batch_size
        self._profile_batches = profile_batches
        self._profile_dir = os.fspath(profile_dir or "chute-profile")
        self.profile_path = None  # the trace file, once written
        self._collate = None  # SharedCollate, with worker processes
        self._token_threads = self._decode_threads = None
        self._drop_partial = False
        tokens = getattr(dataset, "item_loader", None) is not None
        preset = getattr(dataset, "_preset", None) if "collate_fn" not in kwargs else None
        self._worker_decoding = None  # whether workers drop a last partial batch, when they decode batches
        if tokens or (preset is not None and not preset.runs_python and num_workers == 0):
            # Token batches are gathered whole in C++ (num_workers: by that many threads), and
            # with num_workers=0 chute.transforms decode on a thread per core, both with the
            # GIL released: no worker processes, no pickling of batches between processes.
            what = "a TokensLoader" if tokens else "chute.transforms"
            allowed = ("pin_memory", "prefetch_factor") + (() if tokens else ("drop_last",))
            unsupported = sorted(k for k in kwargs if k not in allowed)
            if unsupported:
                raise ValueError(f"with {what}, batches are built by threads of this process: "
                                 f"{', '.join(unsupported)} not supported"
                                 + (" (use drop_last on the StreamingDataset)" if "drop_last" in unsupported else ""))
            if tokens:
                self._token_threads = max(1, num_workers)
            else:
                self._decode_threads = os.cpu_count() or 1
                self._drop_partial = bool(kwargs.get("drop_last"))
            self._prefetch = kwargs.get("prefetch_factor") or 2
            super().__init__(dataset, batch_size=None, num_workers=0, pin_memory=kwargs.get("pin_memory", False))
        elif preset is not None and num_workers > 0:
            # Worker processes decode whole batches, each on its threads, straight into the
            # shared memory the batch crosses in. Measured ~7% faster than threads of one
            # process (decode_bench.py): the Python between decoder calls holds the GIL.
            self._worker_decoding = bool(kwargs.pop("drop_last", False))
            kwargs["collate_fn"] = self._collate = SharedCollate(None)
            super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        else:
            collate = _DropSkipped(kwargs.get("collate_fn") or default_collate)
            if num_workers > 0:
                kwargs["collate_fn"] = self._collate = SharedCollate(collate)
            elif profile_batches:
                kwargs["collate_fn"] = _profile.Collate(collate)
            else:
                kwargs["collate_fn"] = collate
            super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, **kwargs)
        self._next_epoch = dataset.epoch
        self._resume_at = dataset._epoch_start()  # where the next iteration starts
        self._current = None     # (epoch, start, world_size) while iterating
        self._batches = 0
        self._stats = {"batches": 0, "loop_wait_s": 0.0}
        self._engine_at_start = _core.trace_counters()  # this process's, to count from here

    def __len__(self) -> int:
        """Batches per rank and epoch."""
        if (self._decode_threads and self._drop_partial) or self._worker_decoding:
            return len(self.dataset) // self._batch
        if self._token_threads or self._decode_threads or self._worker_decoding is not None:
            return -(-len(self.dataset) // self._batch)
        return super().__len__()

    def __iter__(self):
        ds = self.dataset
        keep_freed_memory()  # this process receives (workers) or builds the batches
        epoch, start = self._next_epoch, self._resume_at
        ds._set_position(epoch, start)
        self._current = (epoch, start, current_layout().world_size)
        self._batches = 0
        self._next_epoch, self._resume_at = epoch + 1, ds._epoch_start()
        profile = self._profile_batches if self.profile_path is None else None
        if profile:
            run = _profile.new_run()
            ds._profile = (self._profile_dir, profile, run)  # for the workers, which start now
            _profile.start()
        ds._in_loader = True  # (before workers start): skipped samples keep their places in batches
        ds._decode_batches = self._worker_decoding
        if self._token_threads:
            batches = self._token_batches(epoch, start)
        elif self._decode_threads:
            batches = self._decoded_batches(epoch, start)
        else:
            batches = iter(super().__iter__())
        ended = False
        try:
            while True:
                waited = time.perf_counter()
                with _profile.span("wait_for_batch"):
                    batch = next(batches, _END)
                self._stats["loop_wait_s"] += time.perf_counter() - waited
                if batch is _END:
                    ended = True
                    break
                self._batches += 1
                if batch is None:  # every sample of it was skipped: counted, not yielded
                    continue
                self._stats["batches"] += 1
                if self._batches == profile:
                    self._write_profile(run, profile, wait=True)
                yield batch
        finally:
            ds._in_loader = False
            ds._decode_batches = None
            if profile and self.profile_path is None:  # fewer batches than profile_batches
                # The epoch ended: its workers have written their spans or are about to. Stopped
                # early (break, an error): what is there, without waiting.
                self._write_profile(run, profile, wait=ended)
            forget_exited_workers()

    def _write_profile(self, run: str, batches: int, wait: bool) -> None:
        self.dataset._profile = None
        workers = 0 if self._token_threads else min(self.num_workers, batches)
        layout = current_layout()
        self.profile_path = _profile.write_trace(self._profile_dir, run, _profile.stop("chute main"), workers,
                                                 wait, layout.rank, layout.world_size)

    def stats(self) -> dict:
        """Counters since the loader was made: ``batches`` it handed out, ``loop_wait_s``
        (time the training loop waited for them), and the engine's, summed over this
        process and the loader's workers: ``bytes_fetched`` (from remote storage),
        ``chunks_downloaded`` (into the node cache), ``chunk_cache_hits`` /
        ``chunk_cache_misses`` (chunks a reader found in the node cache / had to wait
        for), ``data_wait_s`` (readers blocked on chunk bytes). The engine's counters of
        this process count all its reading since the loader was made (also another
        loader's there)."""
        now = _core.trace_counters()
        engine = [{key: now[key] - self._engine_at_start[key] for key in now}]
        if self._collate is not None:
            engine += worker_counters.get(self._collate.loader_id, {}).values()
        totals = dict(self._stats, workers=len(engine) - 1)
        for counters in engine:
            for key, value in counters.items():
                totals[key] = totals.get(key, 0) + value
        totals["data_wait_s"] = totals.pop("data_wait_ns") / 1e9
        return totals

    def _token_batches(self, epoch: int, start: int):
        """[batch_size, block_size] token batches in order, gathered ahead by the Reader's
        threads (C++, GIL released)."""
        ds = self.dataset
        layout = current_layout()
        reader = ds._reader(epoch, rank=layout.rank, world_size=layout.world_size, batch_size=self._batch,
                            start=start, gather_threads=self._token_threads, gather_ahead=self._prefetch)
        pin = self.pin_memory and torch.cuda.is_available()
        while (blocks := reader.next()) is not None:
            batch = ds._tokens(blocks)
            yield batch.pin_memory() if pin else batch

    def _decoded_batches(self, epoch: int, start: int):
        """Batches decoded by chute.transforms on threads of this process: the samples of
        prefetch_factor x threads batches decode at once while the engine reads on."""
        ds = self.dataset
        layout = current_layout()
        reader = ds._reader(epoch, rank=layout.rank, world_size=layout.world_size, batch_size=self._batch,
                            start=start)
        pool = ds._decode_pool(self._decode_threads)
        pin = self.pin_memory and torch.cuda.is_available()
        pending, ended = collections.deque(), False
        try:
            while True:
                # Batches in flight: the pool works on the oldest first, so a few keep it busy.
                while not ended and len(pending) <= self._prefetch:
                    items = reader.next()
                    ended = items is None
                    if not ended and not (self._drop_partial and len(items) < self._batch):
                        pending.append(BatchDecoding(ds, items, reader.ids, epoch, pool))
                if not pending:
                    return
                batch = pending.popleft().collate()
                yield pin_memory(batch) if pin and batch is not None else batch
        finally:  # stopped early (a break, an error): the queued samples are not decoded
            for decoding in pending:
                decoding.shares.cancel()

    def state_dict(self) -> dict:
        """Where the run stands, as small plain (JSON-serializable) data."""
        ds = self.dataset
        epoch, consumed = self._next_epoch, self._resume_at
        if self._current is not None:
            cur_epoch, start, world = self._current
            done = ds._consumed_after(start, self._batches, self._batch, world)
            if done is not None:
                epoch, consumed = cur_epoch, done
        return {"version": STATE_VERSION, "epoch": epoch, "consumed": consumed, **ds._identity()}

    def load_state_dict(self, state: dict) -> None:
        """Continues from ``state`` at the next ``iter(loader)``, on any layout."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')!r} is not {STATE_VERSION}: "
                             "it was saved by another chute version")
        mine = self.dataset._identity()
        # The content must match (a copy elsewhere, e.g. local -> s3://, is fine).
        if _diff(_content(state.get("dataset")), _content(mine["dataset"])):
            raise ValueError(f"the loader state was saved for the dataset {_describe(state.get('dataset'))}, but this "
                             f"loader reads {_describe(mine['dataset'])}: resume with the same dataset")
        diff = _diff(state.get("order"), mine["order"])
        if diff:
            raise ValueError(f"the loader state was saved with another sample order ({'; '.join(diff)}); "
                             "create the dataset with the saved values to resume")
        self._next_epoch, self._resume_at = int(state["epoch"]), state["consumed"]
        self._current = None


_END = object()


class _DropSkipped:
    """A collate function without the samples skipped for their missing objects (a batch of
    raw objects with allow_missing may hold fewer samples; an all-skipped one is None, which
    the loader counts and does not yield)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, samples):
        kept = [s for s in samples if s is not SKIPPED]
        return self.collate(kept) if kept else None


def _diff(saved, now, path="") -> list:
    """'key: saved X, now Y' for every difference between two JSON-like values."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for key in sorted(set(saved) | set(now), key=str):
            out += _diff(saved.get(key), now.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [d for i, (a, b) in enumerate(zip(saved, now)) for d in _diff(a, b, f"{path}[{i}]")]
    return [] if saved == now else [f"{path}: saved {saved!r}, now {now!r}"]


def _content(dataset):
    if isinstance(dataset, list):
        return [_content(d) for d in dataset]
    return {k: v for k, v in (dataset or {}).items() if k != "input_dir"}


def _describe(dataset) -> str:
    if isinstance(dataset, list):
        return " + ".join(_describe(d) for d in dataset)
    dataset = dataset or {}
    return f"{dataset.get('input_dir')} ({dataset.get('num_samples')} samples, fingerprint {dataset.get('fingerprint')})"
