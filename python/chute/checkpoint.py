"""Checkpoints to and from any chute URL (a local path, ``s3://``, ``gs://``, ``az://``):
file objects for ``torch.save`` / ``torch.load``, and shortcuts.

A writer streams: its bytes go out as they come (a multipart upload to an object store,
parts sent in the background while the caller keeps serializing, with a bounded amount
in flight), and the object appears whole when the writer is closed. An exception inside
``with chute.checkpoint.open(url, "wb")`` aborts it: no object, no partial one. A reader
fetches ranges of ``part_size`` bytes, up to ``concurrency`` ahead of the position it is
read at, in parallel.

``StorageWriter`` / ``StorageReader`` put ``torch.distributed.checkpoint`` on the same
streams: each rank writes its own files, and a load reads the parts of the files that
hold what its rank needs.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

from chute import _core
from chute._units import parse_size, storage_options_to_strings

DEFAULT_PART_SIZE = 8 << 20  # with 16 in flight: stores limit each connection, so more requests go faster
DEFAULT_CONCURRENCY = 16
# Writes smaller than this are gathered before they cross into C++.
_GATHER_BYTES = 1 << 20


def open(url, mode: str = "rb", *, storage_options=None, part_size=DEFAULT_PART_SIZE,
         concurrency: int = DEFAULT_CONCURRENCY):
    """A file object on the object at ``url``: ``"wb"`` (a CheckpointWriter) or ``"rb"``
    (a CheckpointReader; ``part_size`` and ``concurrency`` set its read-ahead)."""
    storage, name = _locate(url, storage_options)
    if mode == "wb":
        return CheckpointWriter(storage, name)
    if mode == "rb":
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        return CheckpointReader(storage, name, parse_size(part_size, "part_size"), concurrency)
    raise ValueError(f"mode must be 'rb' or 'wb', not {mode!r}")


def save(obj, url, *, storage_options=None) -> None:
    """``torch.save(obj)`` into the object at ``url``, which appears only once complete."""
    import torch

    with open(url, "wb", storage_options=storage_options) as f:
        torch.save(obj, f)


def load(url, map_location=None, *, storage_options=None, **torch_load_kwargs):
    """``torch.load`` of the object at ``url`` (``weights_only`` and the other keyword
    arguments of torch.load pass through)."""
    import torch

    with open(url, "rb", storage_options=storage_options) as f:
        return torch.load(f, map_location=map_location, **torch_load_kwargs)


def _locate(url, storage_options):
    """(the storage of the directory holding the object at `url`, its name there)."""
    url = os.fspath(url)
    parent, sep, name = url.rpartition("/")
    if not name or (sep and parent.endswith(":/")):
        raise ValueError(f"{url}: not the URL of an object (s3://bucket/path/model.pt, /path/model.pt)")
    return _open_dir((parent or "/") if sep else ".", storage_options), name


def _open_dir(url: str, storage_options):
    return _core.Storage.open(url, storage_options_to_strings(storage_options))


class CheckpointWriter(io.RawIOBase):
    """Writes one object (see the module docstring). Closing it makes the object appear;
    abort(), an exception inside its ``with`` block, or losing it unclosed leaves none."""

    def __init__(self, storage, name: str):
        super().__init__()
        self.url = storage.url(name)
        self._writer = storage.open_writer(name)
        self._gathered = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.closed:
            raise ValueError(f"{self.url}: write to a closed checkpoint writer")
        view = memoryview(data).cast("B")
        if len(view) < _GATHER_BYTES:
            self._gathered += view
            if len(self._gathered) >= _GATHER_BYTES:
                self._send_gathered()
        else:
            self._send_gathered()
            self._writer.write(view)
        self._position += len(view)
        return len(view)

    def tell(self) -> int:
        return self._position

    def _send_gathered(self) -> None:
        if self._gathered:
            self._writer.write(self._gathered)
            self._gathered = bytearray()

    def close(self) -> None:
        """The object appears, whole."""
        if self.closed:
            return
        try:
            self._send_gathered()
            self._writer.close()
        except BaseException:
            self._writer.abort()
            raise
        finally:
            super().close()

    def abort(self) -> None:
        """Nothing appears."""
        if not self.closed:
            try:
                self._writer.abort()
            finally:
                super().close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        try:
            self.abort()
        except Exception as abort_error:  # the block's exception is the one to see
            exc.add_note(f"{self.url}: aborting the upload failed too: {abort_error}")

    def __del__(self):
        if hasattr(self, "_writer"):
            self.abort()  # never publish a checkpoint nobody closed


class CheckpointReader(io.RawIOBase):
    """Reads one object by ranges of ``part_size`` bytes, up to ``concurrency`` of them
    fetched ahead in parallel while it is read in order (at most that many held)."""

    def __init__(self, storage, name: str, part_size: int, concurrency: int):
        super().__init__()
        self.url = storage.url(name)
        self._storage, self._name = storage, name
        self._size = storage.size(name)
        self._part_size, self._ahead = part_size, concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="chute-checkpoint")
        self._parts: dict = {}  # part index -> future of its bytes
        self._position = 0
        # Parts requested ahead: 1 after a seek (a load of a few tensors' ranges reads no
        # more than the parts holding them), doubling while reads go on in order.
        self._window, self._last_part = 1, None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence {whence}")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"{self.url}: negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.url}: I/O on a closed checkpoint reader")

    def readinto(self, out) -> int:
        self._check_open()
        out = memoryview(out).cast("B")
        done = 0
        while done < len(out) and self._position < self._size:
            index, start = divmod(self._position, self._part_size)
            part = self._part(index)
            n = min(len(out) - done, len(part) - start)
            out[done:done + n] = memoryview(part)[start:start + n]  # one copy (a bytearray slice is another)
            done += n
            self._position += n
        return done

    def _part(self, index: int):
        """Part `index`, with the following ones requested (and those behind dropped)."""
        if index != self._last_part:
            in_order = self._last_part is not None and index == self._last_part + 1
            self._window = min(2 * self._window, self._ahead) if in_order else 1
            self._last_part = index
        for old in [k for k in self._parts if k < index or k >= index + self._ahead]:
            self._parts.pop(old).cancel()
        last = -(-self._size // self._part_size)
        for k in range(index, min(index + self._window, last)):
            if k not in self._parts:
                self._parts[k] = self._pool.submit(self._fetch, k)
        return self._parts[index].result()

    def _fetch(self, index: int) -> bytearray:
        offset = index * self._part_size
        out = bytearray(min(self._part_size, self._size - offset))
        self._storage.read_into(self._name, offset, out)  # the GIL is released meanwhile
        return out

    def close(self) -> None:
        if not self.closed:
            for future in self._parts.values():
                future.cancel()
            self._pool.shutdown(wait=True)
            self._parts.clear()
        super().close()


def __getattr__(name: str):
    # torch.distributed.checkpoint is imported on first use only.
    if name in ("StorageWriter", "StorageReader"):
        from chute import _dcp

        return getattr(_dcp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
