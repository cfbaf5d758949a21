"""CombinedStreamingDataset: several datasets mixed with fixed weights."""

from __future__ import annotations

import collections
import multiprocessing

import numpy as np
from torch.utils.data import IterableDataset

from chute import _profile
from chute._distributed import current_layout
from chute._missing import SKIPPED
from chute.dataset import StreamingDataset

BATCHING = ("stratified", "per_stream", "random")


class CombinedStreamingDataset(IterableDataset):
    """Mixes ``datasets`` into one stream of global batches.

    Args:
        datasets: StreamingDatasets (each keeps its own order: shuffle, seed, window).
        weights: the share of each dataset in every global batch (normalized); None:
            proportional to the datasets' sizes.
        seed: drives ``random`` and ``per_stream`` batching.
        iterate_over_all: True: when a dataset runs out, the others continue (with the
            weights renormalized) until all are exhausted; False: the epoch ends as soon
            as a dataset cannot supply its share of the next global batch.
        batching: ``"stratified"``: every global batch holds exactly the weights'
            proportions (largest-remainder rounding of weight x global batch size);
            ``"random"``: each global batch is a multinomial draw of the weights (exact in
            expectation); ``"per_stream"``: each global batch comes from one dataset, picked
            with the weights.

    The sequence of global batches is a pure function of the datasets, weights, seed,
    epoch and the global batch size (``batch_size`` x world size of a
    :class:`chute.StreamingDataLoader`) — not of how ranks and workers are laid out —
    and a loader state resumes it exactly, also on another layout.
    """

    def __init__(self, datasets, weights=None, seed: int = 42, iterate_over_all: bool = True,
                 batching: str = "stratified"):
        datasets = list(datasets)
        if not datasets or not all(isinstance(d, StreamingDataset) for d in datasets):
            raise TypeError("datasets must be a non-empty list of chute.StreamingDataset")
        if batching not in BATCHING:
            raise ValueError(f"batching={batching!r}: use one of {', '.join(BATCHING)}")
        sizes = np.array([d.num_samples for d in datasets], dtype=np.float64)
        if weights is None:
            w = sizes
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (len(datasets),) or (w < 0).any() or not np.isfinite(w).all():
                raise ValueError(f"weights={weights!r}: give one non-negative weight per dataset")
        if w.sum() <= 0:
            raise ValueError("the weights (or the dataset sizes) sum to zero: nothing to read")
        self.datasets = datasets
        self.weights = (w / w.sum()).tolist()
        self.seed = seed
        self.iterate_over_all = iterate_over_all
        self.batching = batching
        self._sizes = sizes.astype(np.int64)
        # (epoch, consumed per dataset), shared with DataLoader workers (see StreamingDataset).
        self._position = multiprocessing.RawArray("q", 1 + len(datasets))
        self._batch_size = 1
        self._in_loader = False  # set while a StreamingDataLoader iterates: skipped samples are yielded as SKIPPED

    # -- position ------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._position[0]

    def set_epoch(self, epoch: int) -> None:
        self._set_position(epoch, self._epoch_start())

    def _set_position(self, epoch: int, start) -> None:
        self._position[0] = epoch
        for d, p in enumerate(start):
            self._position[1 + d] = int(p)

    def _epoch_start(self):
        return [0] * len(self.datasets)

    # -- the plan: counts per dataset of each global batch ---------------------------

    def _counts(self, epoch: int, p, global_batch: int):
        """How many samples of each dataset the global batch starting at `p` takes, or
        None when the epoch is over."""
        remaining = self._sizes - p
        active = remaining > 0
        if not active.any() or (not self.iterate_over_all and not active.all()):
            return None
        w = np.where(active, self.weights, 0.0)
        if w.sum() <= 0:
            return None
        w /= w.sum()
        if self.batching == "stratified":
            ideal = w * global_batch
            counts = np.floor(ideal).astype(np.int64)
            extra = global_batch - int(counts.sum())
            order = np.lexsort((np.arange(len(w)), -(ideal - counts)))  # largest remainder, then index
            counts[order[:extra]] += 1
        else:
            rng = np.random.default_rng([self.seed, epoch, int(p.sum())])
            if self.batching == "random":
                counts = rng.multinomial(global_batch, w).astype(np.int64)
            else:
                counts = np.zeros(len(w), dtype=np.int64)
                counts[rng.choice(len(w), p=w)] = global_batch
        short = np.maximum(counts - remaining, 0)
        if short.any():
            if not self.iterate_over_all:
                return None
            counts -= short
            spill = int(short.sum())
            for d in np.argsort(-w, kind="stable"):  # give the rest to datasets with room
                take = min(spill, int(remaining[d] - counts[d])) if active[d] else 0
                counts[d] += take
                spill -= take
        return counts if counts.sum() > 0 else None

    def _plan(self, epoch: int, start, global_batch: int, world: int):
        """Yields (consumed before, counts) for each global batch from `start` on. A final
        batch smaller than the world size is dropped, so every rank gets every batch."""
        p = np.asarray(start, dtype=np.int64).copy()
        while (counts := self._counts(epoch, p, global_batch)) is not None and counts.sum() >= world:
            yield p.copy(), counts
            p += counts

    # -- what StreamingDataLoader drives ------------------------------------------------

    def _consumed_after(self, start, batches: int, batch_size: int, world: int):
        plan = self._plan(self.epoch, start, batch_size * world, world)
        p = None
        for k, (p, counts) in enumerate(plan):
            if k == batches:
                return p.tolist()
        return None

    def _identity(self) -> dict:
        parts = [d._identity() for d in self.datasets]
        return {
            "order": {"weights": self.weights, "seed": self.seed, "iterate_over_all": self.iterate_over_all,
                      "batching": self.batching, "datasets": [part["order"] for part in parts]},
            "dataset": [part["dataset"] for part in parts],
        }

    def __len__(self) -> int:
        """Samples this rank yields in an epoch (with the loader's batch size)."""
        layout = current_layout()
        R, r = layout.world_size, layout.rank
        plan = self._plan(self.epoch, self._epoch_start(), self._batch_size * R, R)
        return sum(len(range(r, int(counts.sum()), R)) for _, counts in plan)

    def __iter__(self):
        layout = current_layout()
        epoch = self._position[0]
        start = [self._position[1 + d] for d in range(len(self.datasets))]
        readers = [d._reader(epoch, scheduled=True) for d in self.datasets]
        plan = (entry for k, entry in enumerate(self._plan(epoch, start, self._batch_size * layout.world_size,
                                                               layout.world_size))
                if k % layout.num_workers == layout.worker)
        queued = collections.deque()  # per scheduled batch: the datasets it reads, in order

        def schedule_next() -> bool:
            entry = next(plan, None)
            if entry is None:
                return False
            queued.append(_schedule(readers, *entry, layout.rank, layout.world_size))
            return True

        yield from _profile.traced_samples(self, self._read(readers, queued, schedule_next, epoch))

    def _read(self, readers, queued, schedule_next, epoch):
        while queued or schedule_next():
            # Plan ahead while a reader the plan still feeds (those of the latest scheduled
            # batch; not exhausted or zero-weight ones) has less than its prefetch budget
            # planned.
            while (len(queued) < _MAX_SCHEDULED and any(readers[d].wants_more for d in queued[-1])
                   and schedule_next()):
                pass
            for d in queued.popleft():
                samples = self.datasets[d]._samples(readers[d].next(), readers[d].ids, epoch)
                yield from samples if self._in_loader else (s for s in samples if s is not SKIPPED)


# Global batches planned ahead at most: a dataset that gets few samples per batch would
# otherwise have much of the epoch planned before its budget is reached.
_MAX_SCHEDULED = 256


def _schedule(readers, p, counts, rank: int, world: int) -> list:
    """Schedules this rank's part of one global batch on the datasets' readers; returns
    the datasets it reads from, in order. The global batch is the concatenation of
    counts[d] epoch positions from p[d] of each dataset d, and rank r takes its entries
    r, r + world, ... — in dataset d, the positions p[d] + i with (offset_d + i) % world
    == r, offset_d being the entries of the datasets before d."""
    used, offset = [], 0
    for d, count in enumerate(int(c) for c in counts):
        first = (rank - offset) % world
        n = len(range(first, count, world))
        if n:
            readers[d].schedule(int(p[d]) + first, world, n)
            used.append(d)
        offset += count
    return used
