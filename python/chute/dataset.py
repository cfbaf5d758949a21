"""StreamingDataset: a chute dataset as a torch IterableDataset with random access."""

from __future__ import annotations

import json
import operator
import os

import numpy as np
from torch.utils.data import IterableDataset

from chute import _core
from chute._distributed import current_layout
from chute._serialize import Decoder


class StreamingDataset(IterableDataset):
    """Streams the samples of a dataset written by :func:`chute.optimize`.

    Args:
        input_dir: the dataset directory (holding ``index.json``).
        shuffle: shuffle chunks, and items inside chunks, per epoch.
        seed: base of the shuffle; the order of an epoch depends on (seed, epoch) only.
        drop_last: with several ranks, drop the tail so every rank gets ``len(ds)``
            items; otherwise the first items are repeated to fill the last ranks.
        transform: called on each sample before it is yielded or returned.
        verify_checksums: check each chunk's checksum when it is first opened.

    ``len(ds)`` is the number of samples this rank yields per epoch; ``ds[i]`` (and
    negative indices and slices) index the whole dataset. Array leaves are read-only
    zero-copy views of the chunk (tensors share that memory too); copy before writing.
    """

    def __init__(self, input_dir, *, shuffle: bool = False, seed: int = 42, drop_last: bool = False,
                 transform=None, verify_checksums: bool = True):
        self.input_dir = os.fspath(input_dir)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.transform = transform
        self.verify_checksums = verify_checksums
        self.epoch = 0
        self._open()

    def _open(self):
        self._core = _core.Dataset.open(self.input_dir, verify_checksums=self.verify_checksums)
        self._decoder = Decoder(json.loads(self._core.schema_json))
        self._pid = os.getpid()

    @property
    def core(self) -> _core.Dataset:
        """The C++ dataset, reopened in a process that was forked after it was made."""
        if self._pid != os.getpid():
            self._open()
        return self._core

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_core", "_decoder", "_pid"):
            state.pop(key)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def set_epoch(self, epoch: int) -> None:
        """Selects the shuffle of epoch ``epoch`` for the next iteration."""
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Samples in the whole dataset."""
        return len(self.core)

    def __len__(self) -> int:
        layout = current_layout()
        return _rank_count(self.num_samples, layout.world_size, self.drop_last)

    def _decode(self, leaves):
        sample = self._decoder.decode(leaves)
        return self.transform(sample) if self.transform is not None else sample

    def __getitem__(self, index):
        n = self.num_samples
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(n))]
        i = operator.index(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {self.input_dir} ({n} samples)")
        return self._decode(self.core.get(i))

    def __iter__(self):
        layout = current_layout()
        core = self.core
        n = len(core)
        if n == 0:
            return
        per_rank = _rank_count(n, layout.world_size, self.drop_last)
        rank_start = layout.rank * per_rank
        # Workers of a rank take contiguous runs of its positions, so each reads few chunks.
        lo = rank_start + per_rank * layout.worker // layout.num_workers
        hi = rank_start + per_rank * (layout.worker + 1) // layout.num_workers
        order = _EpochOrder(core.chunk_starts, self.shuffle, self.seed, self.epoch)
        for position in range(lo, hi):
            chunk, j = order.locate(position % n)
            yield self._decode(core.get_in_chunk(chunk, j))


def _rank_count(n: int, world_size: int, drop_last: bool) -> int:
    if drop_last:
        return n // world_size
    return -(-n // world_size)


class _EpochOrder:
    """Position in the epoch -> (chunk, item in chunk): chunks in a shuffled order, items
    shuffled inside each chunk. O(chunks) memory plus the permutation of the chunk
    being read."""

    def __init__(self, chunk_starts, shuffle: bool, seed: int, epoch: int):
        starts = np.asarray(chunk_starts, dtype=np.int64)
        sizes = np.diff(starts)
        self.shuffle = shuffle
        self.seed, self.epoch = seed, epoch
        if shuffle:
            self.chunks = np.random.default_rng([seed, epoch]).permutation(len(sizes))
        else:
            self.chunks = np.arange(len(sizes))
        self.sizes = sizes[self.chunks]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self._perm_chunk = -1
        self._perm = None

    def locate(self, position: int):
        k = int(np.searchsorted(self.starts, position, side="right")) - 1
        chunk = int(self.chunks[k])
        j = position - int(self.starts[k])
        if self.shuffle:
            if self._perm_chunk != chunk:
                self._perm = np.random.default_rng([self.seed, self.epoch, chunk]).permutation(int(self.sizes[k]))
                self._perm_chunk = chunk
            j = int(self._perm[j])
        return chunk, j
