"""Objects read by byte range as seekable files: a decoder given one (FFmpeg, for a video
field of a raw dataset) fetches only the parts it reads — an MP4's index and the packets
of the frames it decodes — instead of the whole object."""

from __future__ import annotations

import collections
import io
import os

from chute import _core

BLOCK = 1 << 20  # bytes per ranged read: the first holds an MP4's index when it is at the front
KEPT_BLOCKS = 8  # blocks an open reader keeps (a decoder goes back a little when it seeks)

_stores: dict = {}  # (process, root URL, options) -> that process's Storage of that bucket / host


class ObjectReader(io.RawIOBase):
    """Object `url` (a URL or a local path) read in BLOCK-byte ranged reads (the storage's
    retries and timeouts), the last KEPT_BLOCKS kept. Opening it reads the first block and
    the size in one request (FileNotFoundError when there is no such object). Not
    thread-safe: one reader per decode."""

    def __init__(self, url: str, storage_options: dict):
        super().__init__()
        self.url = url
        self._store, self._name = _store(url, storage_options)
        first, self.size = self._store.read_prefix(self._name, BLOCK)
        # A server that ignores byte ranges sent it all: read from that.
        self._whole = first if len(first) >= self.size > BLOCK else None
        self._blocks = collections.OrderedDict({0: first})
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"{self.url}: seek to {base + offset}, before the start")
        self._pos = base + offset
        return self._pos

    def readinto(self, out) -> int:
        out = memoryview(out).cast("B")
        done = 0
        while done < len(out) and self._pos < self.size:
            if self._whole is not None:
                data, at = self._whole, self._pos
            else:
                block, at = divmod(self._pos, BLOCK)
                data = self._block(block)
            n = min(len(out) - done, len(data) - at)
            if n <= 0:
                raise OSError(f"{self.url}: {len(data)} bytes where {self.size} were announced (a short read)")
            out[done:done + n] = data[at:at + n]
            done += n
            self._pos += n
        return done

    def _block(self, k: int) -> bytes:
        data = self._blocks.get(k)
        if data is not None:
            self._blocks.move_to_end(k)
            return data
        data = bytearray(min(BLOCK, self.size - k * BLOCK))
        self._store.read_into(self._name, k * BLOCK, data)
        self._blocks[k] = data
        if len(self._blocks) > KEPT_BLOCKS:
            self._blocks.popitem(last=False)
        return data


def _store(url: str, storage_options: dict):
    """(Storage of the bucket or host of `url` — the root directory for a local path —,
    the object's name in it), the Storage shared by the process's readers of that place."""
    if "://" not in url or url.startswith("file://"):
        root, name, storage_options = "/", os.path.abspath(url.removeprefix("file://")).lstrip("/"), {}
    else:
        scheme, rest = url.split("://", 1)
        authority, _, name = rest.partition("/")
        root = f"{scheme}://{authority}"
    key = (os.getpid(), root, tuple(sorted(storage_options.items())))  # (a forked child has its own)
    store = _stores.get(key)
    if store is None:
        store = _stores.setdefault(key, _core.Storage.open(root, storage_options))  # (atomic: decode threads)
    return store, name
