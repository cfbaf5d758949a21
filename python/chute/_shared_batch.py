"""Batches from DataLoader worker processes to the main process through shared memory.

A DataLoader worker pickles each batch into a pipe; for batches of bytes or numpy arrays
(undecoded images, say) that is four copies and thousands of small pipe writes per
batch, which caps a loader at a few hundred MB/s whatever the storage does. Torch sends
tensors through shared memory instead. `SharedBatch` does the same for the rest: when the
DataLoader's queue pickles it, the big bytes and array leaves of the batch are copied
into one shared-memory tensor (sent as a file descriptor by torch's own reducer) and the
rest of the batch is pickled as usual. It unpickles as the batch itself: bytes leaves as
bytes, arrays as views of the shared memory (zero-copy).
"""

from __future__ import annotations

from multiprocessing.reduction import ForkingPickler

import numpy as np
import torch

# Leaves smaller than this are pickled with the rest: a slot costs more than it saves.
_MIN_BYTES = 4096
_ALIGN = 64


class SharedBatch:
    """A collated batch on its way from a worker process (see the module docstring)."""

    __slots__ = ("batch",)

    def __init__(self, batch):
        self.batch = batch


class SharedCollate:
    """collate_fn for DataLoader workers: the user's collation, sent as a SharedBatch."""

    def __init__(self, collate_fn):
        self.collate_fn = collate_fn

    def __call__(self, samples):
        return SharedBatch(self.collate_fn(samples))


class _Slot:
    """Where a leaf went in the shared buffer: bytes (dtype None) or an array."""

    __slots__ = ("dtype", "offset", "shape", "size")

    def __init__(self, offset, size, dtype=None, shape=None):
        self.offset, self.size, self.dtype, self.shape = offset, size, dtype, shape


def _strip(obj, leaves: list, end: list):
    """`obj` with its big leaves replaced by _Slots; the leaves are appended to `leaves`
    and `end[0]` grows by their aligned sizes."""
    if isinstance(obj, bytes) and len(obj) >= _MIN_BYTES:
        slot = _Slot(end[0], len(obj))
    elif isinstance(obj, np.ndarray) and obj.nbytes >= _MIN_BYTES and not obj.dtype.hasobject:
        slot = _Slot(end[0], obj.nbytes, obj.dtype, obj.shape)
    elif type(obj) is dict:
        return {k: _strip(v, leaves, end) for k, v in obj.items()}
    elif type(obj) in (list, tuple):
        return type(obj)(_strip(v, leaves, end) for v in obj)
    else:
        return obj
    leaves.append((slot, obj))
    end[0] += -(-slot.size // _ALIGN) * _ALIGN
    return slot


def _restore(obj, buffer: np.ndarray):
    if isinstance(obj, _Slot):
        view = buffer[obj.offset: obj.offset + obj.size]
        return view.tobytes() if obj.dtype is None else view.view(obj.dtype).reshape(obj.shape)
    if type(obj) is dict:
        return {k: _restore(v, buffer) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_restore(v, buffer) for v in obj)
    return obj


def _rebuild(skeleton, shared: torch.Tensor):
    return _restore(skeleton, shared.numpy())


def _rebuild_plain(batch):
    return batch


def _reduce(shared: SharedBatch):
    leaves, end = [], [0]
    skeleton = _strip(shared.batch, leaves, end)
    if not leaves:
        return _rebuild_plain, (shared.batch,)
    tensor = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(end[0]))
    buffer = tensor.numpy()
    for slot, leaf in leaves:
        source = np.frombuffer(leaf, np.uint8) if slot.dtype is None else \
            np.ascontiguousarray(leaf).reshape(-1).view(np.uint8)
        buffer[slot.offset: slot.offset + slot.size] = source
    return _rebuild, (skeleton, tensor)


ForkingPickler.register(SharedBatch, _reduce)
