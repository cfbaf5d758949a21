"""chute.checkpoint.StorageWriter / StorageReader: torch.distributed.checkpoint on chute's
checkpoint streams (imported on first use)."""

from __future__ import annotations

import contextlib
import os

from torch.distributed.checkpoint.filesystem import FileSystemBase, FileSystemReader, FileSystemWriter

from chute._units import parse_size
from chute.checkpoint import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, CheckpointReader, CheckpointWriter, _open_dir


class _Files(FileSystemBase):
    """DCP's file-system interface over chute storage: paths are chute URLs."""

    def __init__(self, storage_options, part_size: int, concurrency: int):
        self.storage_options, self.part_size, self.concurrency = storage_options, part_size, concurrency
        self._storages: dict = {}

    def _at(self, path):
        parent, _, name = os.fspath(path).rpartition("/")
        if parent not in self._storages:
            self._storages[parent] = _open_dir(parent, self.storage_options)
        return self._storages[parent], name

    @contextlib.contextmanager
    def create_stream(self, path, mode: str):
        storage, name = self._at(path)
        if mode == "wb":
            stream = CheckpointWriter(storage, name)
        elif mode == "rb":
            stream = CheckpointReader(storage, name, self.part_size, self.concurrency)
        else:
            raise ValueError(f"{path}: mode {mode!r} is not 'rb' or 'wb'")
        with stream:
            yield stream

    def concat_path(self, path, suffix: str) -> str:
        return f"{os.fspath(path).rstrip('/')}/{suffix}"

    def init_path(self, path) -> str:
        return os.fspath(path).rstrip("/")

    def rename(self, path, new_path) -> None:  # only the small metadata file is renamed
        storage, name = self._at(path)
        target, new_name = self._at(new_path)
        target.write(new_name, storage.read(name))
        storage.delete(name)

    def mkdir(self, path) -> None:
        path = os.fspath(path)
        if "://" not in path or path.startswith("file://"):
            os.makedirs(path.removeprefix("file://"), exist_ok=True)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return True

    def exists(self, path) -> bool:
        storage, name = self._at(path)
        return storage.exists(name)

    def rm_file(self, path) -> None:
        storage, name = self._at(path)
        storage.delete(name)

    def ls(self, path) -> list[str]:
        return [self.concat_path(path, n) for n in _open_dir(self.init_path(path), self.storage_options).list("")]


class StorageWriter(FileSystemWriter):
    """A ``torch.distributed.checkpoint`` StorageWriter into the directory ``url`` (local,
    ``s3://``, ``gs://``): each rank streams its own files (one per rank by default,
    ``thread_count`` at once); the metadata file is written last."""

    def __init__(self, url, *, storage_options=None, thread_count: int = 1, single_file_per_rank: bool = True,
                 overwrite: bool = True, **kwargs):
        # sync_files: the streams are durable once closed (fsync or a completed upload).
        super().__init__(os.fspath(url), single_file_per_rank=single_file_per_rank, sync_files=False,
                         thread_count=thread_count, overwrite=overwrite, **kwargs)
        self.fs = _Files(storage_options, DEFAULT_PART_SIZE, DEFAULT_CONCURRENCY)
        self.path = self.fs.init_path(url)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return True


class StorageReader(FileSystemReader):
    """A ``torch.distributed.checkpoint`` StorageReader of the directory ``url``: each rank
    reads only the ranges of the files that hold what it loads (``part_size`` at a time,
    up to ``concurrency`` ahead within a long range)."""

    def __init__(self, url, *, storage_options=None, part_size="4MiB", concurrency: int = DEFAULT_CONCURRENCY):
        super().__init__(os.fspath(url))
        self.fs = _Files(storage_options, parse_size(part_size, "part_size"), concurrency)
        self.path = self.fs.init_path(url)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return True
