"""Batches from DataLoader worker processes to the main process through shared memory.

A DataLoader worker pickles each batch into a pipe; for batches of bytes or numpy arrays
(undecoded images, say) that is four copies and thousands of small pipe writes per
batch, which caps a loader at a few hundred MB/s whatever the storage does. `SharedBatch`
sends the big bytes and array leaves of a batch through a shared-memory buffer instead,
and the rest of the batch through the pipe as usual; it unpickles as the batch itself
(bytes leaves as bytes, arrays as views of the shared memory: zero-copy).

Each worker keeps a few buffers and reuses them: fresh shared memory costs a page fault
and a zeroed page per 4 KiB on both sides, which is most of the cost of a copy. A
buffer's first bytes hold an in-use flag: the worker sets it when it sends the buffer,
the main process clears it once the batch no longer needs it (at once for bytes, when
the last array or tensor view is freed otherwise). A buffer crosses once as a file
descriptor (torch's reducer); after that only its number does. The worker never waits:
with no free buffer it makes another.

A worker that decodes a batch itself (chute.transforms with worker processes) takes a
buffer first (`Reservation`) and decodes the fixed-shape field's rows straight into it:
those bytes are not copied again on their way to the main process.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from multiprocessing.reduction import ForkingPickler

import numpy as np
import torch

from chute import _core, _profile

# Leaves smaller than this are pickled with the rest: a slot costs more than it saves.
_MIN_BYTES = 4096
_ALIGN = 64  # array payloads and the flag get their own cache lines
_POOL = 8    # reusable buffers per worker (prefetch_factor batches in flight, two decoding, one in use)
# Room a Reservation keeps after its rows for the batch's other leaves (address space only:
# shared memory takes pages when they are written); it grows to what a batch needed.
_room = 1 << 20


class SharedBatch:
    """A collated batch on its way from a worker process (see the module docstring), with
    the worker's engine counters for its loader's stats() and the Reservation its rows
    were decoded into, if any."""

    __slots__ = ("batch", "report", "reservation")

    def __init__(self, batch, report, reservation=None):
        self.batch, self.report, self.reservation = batch, report, reservation


class DecodedBatch:
    """A batch a worker's dataset collated itself, as the DataLoader's item (batch_size=None),
    with the Reservation holding its rows (or None)."""

    __slots__ = ("batch", "reservation")

    def __init__(self, batch, reservation):
        self.batch, self.reservation = batch, reservation


_loader_ids = itertools.count()


class SharedCollate:
    """collate_fn for DataLoader workers: the user's collation (None: the items are
    DecodedBatches, collated by the dataset), sent as a SharedBatch."""

    def __init__(self, collate_fn):
        self.collate_fn = collate_fn
        self.loader_id = (os.getpid(), next(_loader_ids))

    def __call__(self, samples):
        report = (self.loader_id, os.getpid(), _core.trace_counters())
        if self.collate_fn is None:
            return SharedBatch(samples.batch, report, samples.reservation)
        with _profile.span("collate"):
            batch = self.collate_fn(samples)
        return SharedBatch(batch, report)


class _Slot:
    """Where a leaf went in the shared buffer: bytes (dtype None), a numpy array (a numpy
    dtype) or a tensor (a torch dtype)."""

    __slots__ = ("dtype", "offset", "shape", "size")

    def __init__(self, offset, size, dtype=None, shape=None):
        self.offset, self.size, self.dtype, self.shape = offset, size, dtype, shape


def _is_plain_tensor(obj) -> bool:
    """A CPU tensor that a view of shared bytes can stand for (torch's reducer sends the rest)."""
    return (type(obj) is torch.Tensor and obj.device.type == "cpu" and obj.layout == torch.strided
            and not obj.requires_grad and not obj.is_quantized and not obj.is_nested and obj.nbytes >= _MIN_BYTES)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _strip(obj, leaves: list, end: list, rows=None, found=None):
    """`obj` with its big leaves replaced by _Slots; the leaves are appended to `leaves`
    and `end[0]` grows by their aligned sizes. The tensor `rows`, already at offset 0 of
    the buffer, becomes a slot there and `found` is set."""
    if rows is not None and obj is rows:
        found.append(True)
        return _Slot(0, obj.nbytes, obj.dtype, obj.shape)
    if isinstance(obj, bytes) and len(obj) >= _MIN_BYTES:
        slot = _Slot(end[0], len(obj))
    elif isinstance(obj, np.ndarray) and obj.nbytes >= _MIN_BYTES and not obj.dtype.hasobject:
        slot = _Slot(end[0], obj.nbytes, obj.dtype, obj.shape)
    elif _is_plain_tensor(obj):
        slot = _Slot(end[0], obj.nbytes, obj.dtype, obj.shape)
    elif type(obj) is dict:
        return {k: _strip(v, leaves, end, rows, found) for k, v in obj.items()}
    elif type(obj) in (list, tuple):
        return type(obj)(_strip(v, leaves, end, rows, found) for v in obj)
    else:
        return obj
    leaves.append((slot, obj))
    end[0] += _aligned(slot.size)
    return slot


def _restore(obj, buffer: np.ndarray, views: list):
    if isinstance(obj, _Slot):
        view = buffer[obj.offset: obj.offset + obj.size]
        if obj.dtype is None:
            return view.tobytes()
        views.append(True)
        if isinstance(obj.dtype, torch.dtype):
            return torch.from_numpy(view).view(obj.dtype).reshape(obj.shape)
        return view.view(obj.dtype).reshape(obj.shape)
    if type(obj) is dict:
        return {k: _restore(v, buffer, views) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_restore(v, buffer, views) for v in obj)
    return obj


# -- worker side ------------------------------------------------------------------------

_pool: list = []       # this worker's buffers: uint8 tensors over shared memory
_pool_pid = None       # the process the pool belongs to (a forked child starts afresh)
_pool_known: set = set()  # indices of the buffers the main process has (the rest cross as fds)
# Buffers are taken by the thread that pickles batches and by the decoding loop (Reservation).
_pool_lock = threading.Lock()


def _capacity(tensor) -> int:
    return tensor.numel() - _ALIGN


def _buffer_for(size: int):
    """(index, tensor) of a buffer of at least `size` payload bytes, marked in use; index
    -1 for a one-off buffer."""
    with _pool_lock:
        index, tensor = _free_buffer(size)
        tensor[0] = 1  # in use until the main process clears it
    return index, tensor


def _free_buffer(size: int):
    global _pool, _pool_pid, _pool_known
    if _pool_pid != os.getpid():
        _pool, _pool_pid, _pool_known = [], os.getpid(), set()
    free = [i for i, t in enumerate(_pool) if t[0] == 0]
    fits = [i for i in free if _capacity(_pool[i]) >= size]
    if fits:
        return fits[0], _pool[fits[0]]
    tensor = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(_ALIGN + _aligned(size)))
    if len(_pool) < _POOL:
        _pool.append(tensor)
        return len(_pool) - 1, tensor
    if free:  # replace a free buffer that is too small
        _pool[free[0]] = tensor
        _pool_known.discard(free[0])
        return free[0], tensor
    return -1, tensor  # all busy


class Reservation:
    """A buffer of this worker's pool taken for one batch: `rows`, a tensor of `shape` and
    numpy `dtype` at its start, is where the batch's fixed-shape field is decoded. It is
    sent with the batch (SharedBatch.reservation), or given back by release()."""

    def __init__(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.index, self.tensor = _buffer_for(nbytes + _room)
        self.rows = torch.from_numpy(self.tensor.numpy()[_ALIGN:_ALIGN + nbytes].view(dtype).reshape(shape))

    def release(self):
        self.tensor[0] = 0


def _reduce(shared: SharedBatch):
    with _profile.span("handoff"):
        return _reduce_batch(shared)


def _reduce_batch(shared: SharedBatch):
    global _room
    reserved = shared.reservation
    if reserved is not None:  # the rows are in place: the other leaves go after them
        rows_end = _aligned(reserved.rows.nbytes)
        leaves, end, found = [], [rows_end], []
        skeleton = _strip(shared.batch, leaves, end, reserved.rows, found)
        if found and end[0] <= _capacity(reserved.tensor):
            return _sent(skeleton, leaves, reserved.index, reserved.tensor, shared.report)
        if found:  # the rest does not fit: the next reservations keep room for it
            _room = max(_room, end[0] - rows_end)
    leaves, end = [], [0]
    skeleton = _strip(shared.batch, leaves, end)
    try:
        if not leaves:
            return _rebuild_plain, (shared.batch, shared.report)
        return _sent(skeleton, leaves, *_buffer_for(end[0]), shared.report)
    finally:
        if reserved is not None:  # (after its rows, if they are in the batch, were copied)
            reserved.release()


def _sent(skeleton, leaves, index, tensor, report):
    """The leaves copied into the buffer (marked in use), and how to rebuild the batch."""
    is_new = index < 0 or index not in _pool_known
    if index >= 0:
        _pool_known.add(index)
    buffer = tensor.numpy()
    for slot, leaf in leaves:
        if slot.dtype is None:
            source = np.frombuffer(leaf, np.uint8)
        elif isinstance(leaf, torch.Tensor):
            source = leaf.detach().resolve_conj().resolve_neg().contiguous().reshape(-1).view(torch.uint8).numpy()
        else:
            source = np.ascontiguousarray(leaf).reshape(-1).view(np.uint8)
        start = _ALIGN + slot.offset
        buffer[start: start + slot.size] = source
    return _rebuild, (skeleton, os.getpid(), index, tensor if is_new else None, report)


# -- main process side ------------------------------------------------------------------

_received: dict = {}   # (worker pid, buffer index) -> the buffer's tensor
# loader id -> {worker pid: the engine counters it sent last}
worker_counters: dict = {}


def _note(report) -> None:
    loader_id, pid, counters = report
    worker_counters.setdefault(loader_id, {})[pid] = counters


def _rebuild(skeleton, pid: int, index: int, tensor, report):
    with _profile.span("handoff"):
        _note(report)
        return _rebuild_batch(skeleton, pid, index, tensor)


def _rebuild_batch(skeleton, pid: int, index: int, tensor):
    if tensor is None:
        tensor = _received[(pid, index)]
    elif index >= 0:
        if not any(p == pid for p, _ in _received):  # a new worker
            forget_exited_workers()
        _received[(pid, index)] = tensor
    # A new array per batch: the array views made from it keep it (and no other) alive.
    buffer = tensor.numpy()
    views = []
    batch = _restore(skeleton, buffer[_ALIGN:], views)
    if views:
        weakref.finalize(buffer, _release, tensor)
    else:
        _release(tensor)
    return batch


def forget_exited_workers() -> None:
    """Unmaps the buffers of workers that have exited (their memory is then freed)."""
    for key in [k for k in _received if not _alive(k[0])]:
        del _received[key]


def _release(tensor):
    tensor[0] = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _rebuild_plain(batch, report):
    with _profile.span("handoff"):
        _note(report)
        return batch


ForkingPickler.register(SharedBatch, _reduce)
