"""StreamingDataset: a chute dataset as a torch IterableDataset with random access."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import operator
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import IterableDataset

from chute import _core, _profile
from chute._decoded_batch import Shares, worker_batches
from chute._distributed import current_layout
from chute._missing import SKIPPED, MissingObject
from chute._process import clean_up_at_exit, default_cache_dir, keep_freed_memory
from chute._serialize import Decoder, webdataset_sample
from chute._units import parse_size, storage_options_to_strings
from chute.tokens import TokensLoader
from chute.transforms import TransformError, as_transform

_DEFAULTS = _core.DEFAULTS  # the C++ options' defaults (one definition)


class StreamingDataset(IterableDataset):
    """Streams the samples of a dataset written by :func:`chute.optimize`.

    Args:
        input_dir: the dataset: a local directory, or a URL such as ``s3://bucket/prefix``,
            ``gs://bucket/prefix`` or ``abfs://container@account.dfs.core.windows.net/prefix``.
        shuffle: shuffle per epoch (see docs/order.md); otherwise items come in order.
        seed: the order of an epoch depends on (dataset, seed, epoch, partitions,
            shuffle_window) only — not on the number of nodes, ranks or workers.
        drop_last: with several ranks, drop up to world_size - 1 samples of the epoch so
            every rank gets ``len(ds)`` samples; otherwise the first samples of the epoch
            are repeated to fill the last ranks.
        transform: called on each sample before it is yielded or returned. A list of
            steps — :mod:`chute.transforms` (decoders, field presets) and functions of a
            sample — runs on a pool of threads, several samples at a time, with randomness
            drawn from (seed, epoch, sample id). Made only of chute.transforms,
            :class:`StreamingDataLoader` needs no worker processes; with functions of
            yours, each worker process decodes its batches on its own threads (so
            those functions must be thread-safe).
        partitions: the epoch is read as this many interleaved streams; a layout whose
            world size divides it reads each chunk on one rank only (locality).
        shuffle_window: items are shuffled within windows of this many chunks (an int)
            or bytes (a string such as "512MB"); bigger mixes more and needs a bigger
            cache (each rank reads partitions / world_size windows at once).
        verify_checksums: check each chunk's checksum when it is first opened (remote
            chunks: when fully downloaded).
        storage_options: credentials, endpoint, region, timeouts for an object store
            (``endpoint_url``, ``region``, ``access_key_id``, ``secret_access_key``,
            ``session_token``, ``anonymous``, ``project_id``, ``timeout``,
            ``max_attempts``, ``connect_timeout``, ``request_timeout``); they override
            the environment (AWS_*, STORAGE_EMULATOR_HOST, Google ADC).
        part_size: bytes per ranged GET when reading remote chunks.
        max_concurrency: ranged GETs in flight per process for chunk downloads; the one
            knob of the reading threads (see docs/architecture.md, "Threads").
        cache_dir: where remote chunks are cached on this node (default
            ``$XDG_CACHE_HOME/chute`` or ``~/.cache/chute``); one directory per dataset
            URL and content, shared by every process of the node through a shared-memory
            index, so each chunk is downloaded once per node. Local datasets are read in
            place.
        max_cache_size: bytes the cache may hold (e.g. "50GB"); least recently used
            chunks nobody reads are evicted. Default: half the free disk space.
        prefetch_bytes: how far ahead (in chunk bytes) each reader has the chunks it will
            need next fetched into the cache in the background, in the epoch's order.
        item_loader: :class:`chute.TokensLoader` to read a token dataset as blocks of
            consecutive tokens (items are then blocks: ``len``, ``ds[i]``, order, resume).
        format: what wrote the dataset, read in place: ``"chute"``, ``"litdata"``
            (``litdata.optimize``), ``"mds"`` (Mosaic Streaming's ``MDSWriter``),
            ``"webdataset"`` (a directory of ``*.tar`` shards) or ``"parquet"`` (a directory
            of ``*.parquet`` files, or their ``data/`` subdirectory: a file is a chunk, its
            rows the samples); by default recognized from what is there.
        columns: Parquet datasets: read only these columns (only their byte ranges are
            fetched); default all.
        split: Parquet datasets whose files are named by split, as Hugging Face exports are
            (``data/train-00000-of-00004.parquet``, ``data/test-...``): the split to read;
            required when the files are of several.
        decode: WebDataset samples: decode ``cls``/``cls2``/``index``/``inx``/``id`` to
            int, ``txt``/``text``/``transcript`` to str, ``json``/``jsn`` to its value and
            ``npy`` to an array, as WebDataset's default decoder does; otherwise every
            field is bytes. Fields a sample lacks are absent, as in WebDataset.

    ``len(ds)`` is the number of samples this rank yields per epoch; ``ds[i]`` (and
    negative indices and slices) index the whole dataset. Array leaves are read-only
    zero-copy views of the chunk (tensors share that memory too); copy before writing.
    """

    # Raw datasets: skip samples whose objects are missing; the options of their stores.
    _allow_missing = False
    _object_files = None  # raw objects with as_paths=True (chute.raw)
    _object_storage_options: dict = {}

    def __init__(self, input_dir, *, shuffle: bool = False, seed: int = _DEFAULTS["seed"], drop_last: bool = False,
                 transform=None, partitions: int = _DEFAULTS["partitions"], shuffle_window=1,
                 verify_checksums: bool = True, storage_options=None, part_size=_DEFAULTS["part_size"],
                 max_concurrency: int = _DEFAULTS["concurrency"], item_loader=None, cache_dir=None,
                 max_cache_size=None, prefetch_bytes=_DEFAULTS["prefetch_bytes"], format=None, columns=None, split=None, decode=False):
        if partitions < 1:
            raise ValueError(f"partitions={partitions} must be at least 1")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency} must be at least 1")
        self.input_dir = os.fspath(input_dir)
        self.storage_options = storage_options_to_strings(storage_options)
        self.part_size = parse_size(part_size, "part_size")
        self.max_concurrency = max_concurrency
        self.cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
        self.max_cache_size = parse_size(max_cache_size, "max_cache_size") if max_cache_size is not None else 0
        self.prefetch_bytes = parse_size(prefetch_bytes, "prefetch_bytes")
        if item_loader is not None and not isinstance(item_loader, TokensLoader):
            raise TypeError(f"item_loader must be a chute.TokensLoader, not {type(item_loader).__name__}")
        self.item_loader = item_loader
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.transform = transform
        self._preset = as_transform(transform)  # a list of steps: decoded on threads
        self._pool = None  # (pid, the decode threads of that process)
        self.partitions = partitions
        self.shuffle_window = shuffle_window
        self.verify_checksums = verify_checksums
        self.format = format or ""
        self.columns = list(columns or [])
        self.split = split
        self.decode = decode
        # (epoch, first epoch position to read), shared with DataLoader workers (also
        # persistent ones) through inherited shared memory.
        self._position = multiprocessing.RawArray("q", 2)
        self._batch_size = 1  # set by StreamingDataLoader: workers take whole batches
        self._in_loader = False  # set by StreamingDataLoader: skipped samples are yielded as SKIPPED
        # Set by StreamingDataLoader for its workers to decode whole batches: whether to
        # drop a last partial one (None: samples are yielded).
        self._decode_batches = None
        self._open()
        self.window_items = self._window_items(shuffle_window)

    def _open(self, description: str = "", format: str | None = None):
        self._core = _core.Dataset.open(self.input_dir, format=format or self.format,
                                        verify_checksums=self.verify_checksums,
                                        storage_options=self.storage_options, part_size=self.part_size,
                                        concurrency=self.max_concurrency, cache_dir=self.cache_dir,
                                        max_cache_size=self.max_cache_size, description=description,
                                        columns=self.columns, split=self.split or "",
                                        allow_missing=self._allow_missing,
                                        as_paths=self._object_files is not None,
                                        object_storage_options=self._object_storage_options)
        if self._core.cache_path:
            clean_up_at_exit()
        self._decoder = Decoder(json.loads(self._core.schema_json))
        self._tar_samples = self._core.format == "webdataset"
        self._blocks = None
        if self.item_loader is not None:
            self._blocks = _core.TokenBlocks(self._core, self.item_loader.block_size)
        self._pid = os.getpid()

    def _window_items(self, shuffle_window) -> int:
        n, chunks = self.num_samples, len(self._core.chunks)
        if n == 0:
            return 1
        if isinstance(shuffle_window, str):
            total = sum(c[2] for c in self._core.chunks)
            items = parse_size(shuffle_window, "shuffle_window") * n // max(total, 1)
        elif isinstance(shuffle_window, int) and not isinstance(shuffle_window, bool) and shuffle_window > 0:
            items = shuffle_window * n // chunks
        else:
            raise ValueError(f"shuffle_window={shuffle_window!r}: use a number of chunks (int > 0) or a size "
                             "such as '512MB'")
        return max(1, items)

    @property
    def blocks(self):
        """The C++ token blocks (with a TokensLoader), else None."""
        self.core  # reopens after fork
        return self._blocks

    @property
    def core(self) -> _core.Dataset:
        """The C++ dataset. A remote one is reopened in a process forked after it was made
        (its clients, connections and threads belong to the parent; C++ releases nothing
        of an object inherited through fork); a local one is shared with forked workers,
        with the record of which chunks were verified."""
        if self._pid != os.getpid() and not self._core.is_local:
            self._open(self._core.description, self._core.format)  # the parent's copy: not read again
        return self._core

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_core", "_decoder", "_blocks", "_pid", "_tar_samples", "_pool"):
            state.pop(key)
        if multiprocessing.context.get_spawning_popen() is None:
            # Plain pickling (a copy for Ray, say), not a process being spawned with it:
            # the position as it is, not the shared memory.
            state["_position"] = list(self._position)
        return state

    def __setstate__(self, state):
        if isinstance(state["_position"], list):
            state["_position"] = multiprocessing.RawArray("q", state["_position"])
        self.__dict__.update(state)
        self._pool = None
        self._open()

    @property
    def epoch(self) -> int:
        return self._position[0]

    def set_epoch(self, epoch: int) -> None:
        """Reads epoch ``epoch`` from its start in the next iteration."""
        self._set_position(epoch, 0)

    def _set_position(self, epoch: int, start: int) -> None:
        self._position[0], self._position[1] = epoch, start

    # -- the protocol StreamingDataLoader drives (CombinedStreamingDataset has it too) --

    def _epoch_start(self):
        return 0

    def _consumed_after(self, start: int, batches: int, batch_size: int, world: int):
        """Epoch positions consumed after `batches` global batches from `start`, or None
        when that finishes the epoch."""
        total = start + _core.rank_sample_count(max(self.num_samples - start, 0), world, self.drop_last) * world
        done = start + batches * batch_size * world
        return done if done < total else None

    def _identity(self) -> dict:
        """What a saved loader state must match to resume on this dataset."""
        return {
            "order": {"shuffle": self.shuffle, "seed": self.seed, "partitions": self.partitions,
                      "window_items": self.window_items,
                      "block_size": self.item_loader.block_size if self.item_loader else None},
            "dataset": {"input_dir": self.input_dir, "num_samples": self.num_samples,
                        "fingerprint": self.core.fingerprint},
        }

    def _reader(self, epoch: int, **share) -> _core.Reader:
        """A C++ Reader (chute/reader.h) of this dataset's epoch ``epoch``: a share
        (rank, world_size, worker, num_workers, batch_size, start) or ``scheduled=True``."""
        token_args = {}
        if self.blocks is not None:
            token_args = {"blocks": self.blocks, "token_dtype": self.item_loader.dtype}
        return _core.Reader(dataset=self.core if self.blocks is None else None, shuffle=self.shuffle, seed=self.seed,
                            epoch=epoch, partitions=self.partitions, window_items=self.window_items,
                            drop_last=self.drop_last, prefetch_bytes=self.prefetch_bytes, **token_args, **share)

    def _samples(self, batch, ids=(), epoch: int = 0):
        """The samples of a Reader batch (`ids`: its global ids, read in `epoch`): decoded
        items — on the decode threads with chute.transforms — or the rows of a token batch."""
        if self.blocks is not None:
            return self._tokens(batch)
        entries = list(itertools.zip_longest(batch, ids[:len(batch)]))  # (leaves, id or None)
        if self._preset is not None and len(batch) > 1:
            return Shares(self._decode_pool(), lambda k: self._sample(*entries[k], epoch), len(entries)).wait()
        return (self._sample(leaves, i, epoch) for leaves, i in entries)

    def _sample(self, leaves, item, epoch, out=None):
        """A Reader batch entry as the sample (SKIPPED for a skipped item)."""
        if isinstance(leaves, int):
            return self._skip(leaves)
        try:
            return self._decode(leaves, item, epoch, out)
        except MissingObject:
            if self._allow_missing:
                return self._skip(item)
            raise

    def _decode_pool(self, threads: int | None = None) -> ThreadPoolExecutor:
        """This process's decode threads: `threads`, or this process's share of the cores
        (all of them, or 1 / num_workers in a DataLoader worker)."""
        if threads is None:
            info = torch.utils.data.get_worker_info()
            threads = max(1, (os.cpu_count() or 1) // (info.num_workers if info is not None else 1))
        pool = self._pool
        if pool is None or pool[0] != os.getpid() or pool[1]._max_workers != threads:
            if pool is not None and pool[0] == os.getpid():
                pool[1].shutdown(wait=False)
            # Each thread sets up PyTorch's per-thread state (its thread count) as it starts:
            # measured 10% less CPU per decoded image in DataLoader workers than without it,
            # though the resize alone runs as fast either way (the cause is not pinned down).
            pool = self._pool = (os.getpid(), ThreadPoolExecutor(threads, thread_name_prefix="chute-decode",
                                                                 initializer=torch.get_num_threads))
        return pool[1]

    def _skip(self, item: int):
        """SKIPPED for global item `item`, whose objects are missing (recorded)."""
        self._note_skipped(item)
        return SKIPPED

    def _note_skipped(self, item: int) -> None:
        pass  # only raw datasets skip items

    def epoch_order(self, epoch: int) -> _core.EpochOrder:
        """The order of epoch ``epoch`` (position -> global item or block id)."""
        if self.blocks is not None:
            sizes = self.blocks.blocks_per_chunk
        else:
            sizes = [c[1] for c in self.core.chunks]
        return _core.EpochOrder(sizes, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                                partitions=self.partitions, window_items=self.window_items)

    @property
    def num_samples(self) -> int:
        """Samples (blocks, with a TokensLoader) in the whole dataset."""
        return len(self.blocks) if self.blocks is not None else len(self.core)

    def __len__(self) -> int:
        return _core.rank_sample_count(self.num_samples, current_layout().world_size, self.drop_last)

    def _decode(self, leaves, item=None, epoch=None, out=None):
        """Item `item`'s sample, transformed (chute.transforms draw from a generator seeded
        by (seed, epoch, item) and may write their fixed-shape field into `out`)."""
        sample = self._decoder.decode(leaves)
        if self._tar_samples:
            sample = webdataset_sample(sample, self.decode)
        sample = self._objects(sample, item)
        if self._preset is not None:
            rng = np.random.default_rng([self.seed, epoch or 0, item or 0])
            try:
                return self._preset.apply(sample, rng, out)
            except TransformError as e:
                raise TransformError(f"{getattr(self, 'src', self.input_dir)} sample {item}: {e}") from None
            except Exception as e:  # a bug or a limit of a decoder: named with the sample
                raise TransformError(f"{getattr(self, 'src', self.input_dir)} sample {item}: "
                                     f"{type(e).__name__}: {e}") from e
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
        if self.blocks is not None:
            return self._tokens(self.blocks.gather(np.array([i], dtype=np.uint64), self.item_loader.dtype))[0]
        leaves = self.core.read(i)  # an uncached remote chunk is read only in part
        return self._missing(i) if leaves is None else self._decode(leaves, i, self.epoch)

    def _objects(self, sample: dict, item) -> dict:
        """The sample with its raw objects as the transform is given them (chute.raw; may
        raise MissingObject)."""
        return sample

    def _missing(self, index: int):
        raise FileNotFoundError(f"{self.input_dir}: sample {index} has a missing object")

    def _tokens(self, blocks):
        """A [n, block_size] token array from C++ as a tensor (no copy), transformed."""
        tensor = torch.from_dlpack(blocks)
        return self.transform(tensor) if self.transform is not None else tensor

    def _in_order(self, start: int, end: int):
        """Samples [start, end) in index order, read ahead by the engine (a dataset given to
        chute.optimize as its inputs); SKIPPED in place of one skipped for missing objects."""
        if self.blocks is not None:
            yield from (self[i] for i in range(start, end))
            return
        reader = _core.Reader(dataset=self.core, shuffle=False, seed=self.seed, epoch=0, partitions=self.partitions,
                              window_items=self.window_items, drop_last=False, prefetch_bytes=self.prefetch_bytes,
                              batch_size=64, start=start)
        left = end - start
        while left > 0 and (batch := reader.next()) is not None:
            yield from self._samples(batch[:left], reader.ids[:left])
            left -= min(left, len(batch))

    def __iter__(self):
        keep_freed_memory()
        layout = current_layout()
        reader = self._reader(self._position[0], rank=layout.rank, world_size=layout.world_size,
                              worker=layout.worker, num_workers=layout.num_workers, batch_size=self._batch_size,
                              start=self._position[1])
        yield from _profile.traced_samples(self, self._read(reader))

    def _read(self, reader):
        epoch = self._position[0]
        if self._decode_batches is not None:
            yield from worker_batches(self, reader, epoch, self._decode_batches)
            return
        while (batch := reader.next()) is not None:
            samples = self._samples(batch, reader.ids, epoch)
            yield from samples if self._in_loader else (s for s in samples if s is not SKIPPED)
