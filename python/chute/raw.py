"""StreamingRawDataset: raw objects (images, audio, text files...) streamed where they are,
listed by a prefix, a directory or an index file — no conversion."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time

import pyarrow.parquet as pq

from chute import _raw_index
from chute._object_reader import ObjectReader
from chute._transform_base import as_transform
from chute._units import parse_size, storage_options_to_strings
from chute._process import default_cache_dir
from chute._missing import MissingObject
from chute.dataset import _DEFAULTS, StreamingDataset

# Requests in flight per process: small objects are bound by time to first byte, not
# bandwidth (at 20 ms per request, 64 in flight fetch ~3,000 objects/s).
DEFAULT_CONCURRENCY = 64
# Rows per block (the unit of order locality, caching and prefetch).
DEFAULT_BLOCK_ROWS = 256


class StreamingRawDataset(StreamingDataset):
    """Streams samples whose data are separate objects, fetched by chute's C++ engine with
    many requests in flight into the node cache (one download per node), with the order,
    resume and DDP guarantees of :class:`StreamingDataset`.

    Args:
        src: where the samples are listed:
            a prefix or directory of objects (``"s3://bucket/images/"``, ``"/data/images"``):
            objects are grouped by key (the name up to the first dot of its base name) and
            each extension becomes a field (``0001.jpg`` + ``0001.json`` ->
            ``{"__key__": "0001", "jpg": ..., "json": ...}``); or an index file (``.csv``,
            ``.tsv``, ``.parquet``, ``.json``, ``.jsonl``, or ``.txt`` with one path or
            URL per line), or a wildcard of them (``"s3://bucket/index/*.csv"``), local or
            remote: a row per sample.
        columns_to_download: the index columns that hold the URLs or paths of objects to
            fetch (any ``s3://``, ``gs://``, ``az://`` URL or local path; relative ones are
            relative to the index file); a sample holds each object's bytes in that field.
            Required for index files (a ``.txt`` index has one, ``path``); for a prefix,
            the extensions to keep (default all).
        index_col: a column identifying each row, named in errors (default: the row
            number; for a prefix, ``__key__``).
        filter: SQL over the index, run by DuckDB before the order is computed, e.g.
            ``"SELECT * FROM dataframe WHERE aes_score > 4"`` (``pip install 'chute[sql]'``);
            over a prefix the table has ``__key__``, a URL column per extension and
            ``__size__`` (the sample's bytes).
        allow_missing: a sample with a missing object is skipped (the same samples on every
            layout; see :attr:`skipped`); otherwise reading it raises an error naming the
            row, the column and the URL.
        block_rows: rows per block: blocks are the unit of locality, caching and prefetch.
        refresh_index: list the prefix (or read the index files) again instead of reusing
            the node's index.
        max_concurrency: requests in flight per process (default 64). Small objects are
            bound by time to first byte: more in flight reads them faster (on the raw
            objects bench, 128 gave 3,100 objects/s against 2,600), at the price of up to
            8 MiB of memory per request for large objects.
        storage_options: the stores' options (:class:`StreamingDataset`'s); for an index
            naming objects in several kinds of stores, options of one kind go in a dict
            under its scheme: ``{"s3": {"endpoint_url": ...}, "https": {"ca_file": ...},
            "timeout": 30}``.
        as_paths: each downloaded field is the path of a local file holding the object
            instead of its bytes: local objects' own paths; fetched objects are written once
            per node under ``cache_dir/raw-objects/`` (named by content, with the
            extension for prefixes), at most ``max_cache_size`` of them (default half the
            free disk), least recently handed out removed first, none within 10 minutes of
            being handed out unless they take twice ``max_cache_size``.

    A download column that the transform's :class:`chute.transforms.DecodeVideo` reads
    first is not fetched whole: the decoder is given a seekable reader of the object that
    fetches only the byte ranges FFmpeg reads (an MP4's index and the packets of the frames
    it decodes), bypassing the node cache; ``DecodeVideo(..., ranged=False)`` fetches it
    whole into the cache instead.

    The other arguments are :class:`StreamingDataset`'s. The index is built once per node
    in ``cache_dir`` and reused by every process, rank and run until the index files change
    (a prefix is listed again only with ``refresh_index=True``); processes read it in blocks,
    never whole. Objects that are all local files are read in place.
    """

    _allow_missing = False

    def __init__(self, src, *, columns_to_download=None, index_col=None, filter=None, allow_missing: bool = False,
                 transform=None, shuffle: bool = False, seed: int = _DEFAULTS["seed"], drop_last: bool = False,
                 cache_dir=None, max_cache_size=None, storage_options=None,
                 max_concurrency: int = DEFAULT_CONCURRENCY, block_rows: int = DEFAULT_BLOCK_ROWS,
                 refresh_index: bool = False, as_paths: bool = False, partitions: int = _DEFAULTS["partitions"],
                 shuffle_window=1, prefetch_bytes=_DEFAULTS["prefetch_bytes"]):
        if isinstance(columns_to_download, str):
            columns_to_download = [columns_to_download]
        if not isinstance(block_rows, int) or block_rows < 1:
            raise ValueError(f"block_rows={block_rows!r} must be a positive int")
        self.src = os.fspath(src)
        self._allow_missing = allow_missing
        self._object_storage_options = _flat_options(storage_options)
        self._scheme_options = {}  # scheme -> its objects' store options (_options_of)
        cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
        preset = as_transform(transform)
        self._index_args = dict(columns_to_download=columns_to_download, index_col=index_col, filter=filter,
                                storage_options=_options_for(self._object_storage_options, self.src),
                                cache_dir=cache_dir, block_rows=block_rows,
                                ranged=preset.ranged_fields() if preset is not None else ())
        index_dir = _raw_index.build(self.src, refresh=refresh_index, **self._index_args)
        settings = json.loads(pq.read_metadata(os.path.join(index_dir, "index.parquet")).metadata[b"chute.raw"])
        self._ranged = settings.get("ranged", [])  # URL columns the transform reads by byte range
        self._index_col = settings["index_col"]
        if as_paths:
            self._object_files = _ObjectFiles(settings, cache_dir, max_cache_size)
        super().__init__(index_dir, shuffle=shuffle, seed=seed, drop_last=drop_last, transform=transform,
                         partitions=partitions, shuffle_window=shuffle_window,
                         max_concurrency=max_concurrency, cache_dir=cache_dir, max_cache_size=max_cache_size,
                         prefetch_bytes=prefetch_bytes, format="raw")

    def __setstate__(self, state):
        # On another node (a Ray worker of optimize), the index is built there first.
        if not os.path.exists(os.path.join(state["input_dir"], "index.parquet")):
            state["input_dir"] = _raw_index.build(state["src"], refresh=False, **state["_index_args"])
        super().__setstate__(state)

    @property
    def allow_missing(self) -> bool:
        return self._allow_missing

    @property
    def skipped(self) -> list[int]:
        """Rows (positions in the index, after the filter) skipped for missing objects by
        the processes of this node since the index was built, sorted."""
        try:
            with open(self._skipped_path()) as f:
                return sorted({int(line) for line in f if line.strip()})
        except FileNotFoundError:
            return []

    def _skipped_path(self) -> str:
        return os.path.join(self.input_dir, "skipped")

    def _note_skipped(self, row: int) -> None:
        # One short O_APPEND write per skip: atomic between the node's processes.
        fd = os.open(self._skipped_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{row}\n".encode())
        finally:
            os.close(fd)

    def _identity(self) -> dict:
        identity = super()._identity()
        identity["dataset"]["input_dir"] = self.src  # not the index's place in this node's cache
        return identity

    def _objects(self, sample: dict, item) -> dict:
        """Downloaded objects as paths with as_paths; URLs of ranged columns as
        ObjectReaders (MissingObject for a missing one)."""
        if self._object_files is not None:
            sample = self._object_files.paths(sample)
        for field in self._ranged:
            url = sample.get(field)
            if url is None:
                continue
            try:
                sample[field] = ObjectReader(url, self._options_of(url))
            except FileNotFoundError as e:
                if "NoSuchBucket" in str(e) or "NO_SUCH_BUCKET" in str(e):  # a mistake, as the engine says
                    raise OSError(f"{self._row(sample, item)}, column {field!r}: {e} (the bucket does not exist)") \
                        from None
                raise MissingObject(f"{self._row(sample, item)}, column {field!r}: {url} does not exist "
                                    "(iterating with allow_missing=True skips such samples)") from None
            except (OSError, ValueError) as e:
                raise type(e)(f"{self._row(sample, item)}, column {field!r}: {url}: {e}") from None
        return sample

    def _options_of(self, url: str) -> dict:
        """The store options for object `url`, worked out once per scheme."""
        scheme = url.split("://", 1)[0] if "://" in url else "file"
        options = self._scheme_options.get(scheme)
        if options is None:
            options = self._scheme_options[scheme] = _options_for(self._object_storage_options, url)
        return options

    def _row(self, sample: dict, item) -> str:
        """The sample as errors name it (as the engine does): its row, index_col value and index."""
        label = f"row {item}"
        if self._index_col and self._index_col in sample:
            label += f" ({self._index_col}={sample[self._index_col]})"
        return f"{label} of {self.src}"

    def _missing(self, index: int):
        raise FileNotFoundError(f"{self.src}: sample {index} has a missing object (iterating with allow_missing=True "
                                "skips it)")


def _flat_options(options) -> dict:
    """storage_options as strings, a scheme's own dict flattened to "<scheme>.<option>"
    (the engine gives each store the options without a scheme and those of its own)."""
    flat = dict(options or {})
    for scheme, own in list(flat.items()):
        if isinstance(own, dict):
            del flat[scheme]
            flat.update({f"{scheme}.{k}": v for k, v in own.items()})
    return storage_options_to_strings(flat)


def _options_for(flat: dict, url: str) -> dict:
    """The options of the store of `url` (an index file or prefix) from _flat_options'."""
    scheme = url.split("://", 1)[0] + "." if "://" in url else "file."
    return {**{k: v for k, v in flat.items() if "." not in k},
            **{k[len(scheme):]: v for k, v in flat.items() if k.startswith(scheme)}}


class _ObjectFiles:
    """Objects as files for as_paths=True. Local objects come from the engine as their
    paths already; fetched ones (bytes) are written once per node as
    <cache_dir>/raw-objects/<content hash>[.<extension>] (a temporary name, then renamed),
    trimmed least recently handed out first (a file's mtime is when it was last handed
    out) while over `limit` bytes, sparing the files handed out in the last KEEP_S seconds
    while they take less than twice the limit (a path stays usable for a while)."""

    KEEP_S = 600

    def __init__(self, settings: dict, cache_dir, max_cache_size):
        self.fields = settings["download"]
        # A prefix's fields are extensions: files keep them (decoders that look at names).
        self.extension = settings.get("kind") == "prefix"
        self.root = os.path.join(cache_dir, "raw-objects")
        os.makedirs(self.root, exist_ok=True)
        self.limit = (parse_size(max_cache_size, "max_cache_size") if max_cache_size is not None
                      else (shutil.disk_usage(self.root).free + sum(size for _, size, _ in self._files())) // 2)
        self._written = 0

    def paths(self, sample: dict) -> dict:
        for field in self.fields:
            data = sample.get(field)
            if isinstance(data, (bytes, bytearray, memoryview)):
                sample[field] = self._file(data, field)
        return sample

    def _file(self, data, field: str) -> str:
        name = hashlib.blake2b(data, digest_size=16).hexdigest() + (f".{field}" if self.extension else "")
        path = os.path.join(self.root, name)
        try:
            os.utime(path)  # handed out again
        except FileNotFoundError:
            temp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"  # decode threads write too
            with open(temp, "wb") as f:
                f.write(data)
            os.replace(temp, path)
            self._written += len(data)
            if self._written > self.limit // 16:  # look at the whole directory now and then
                self._written = 0
                self._trim()
        return path

    def _files(self) -> list:
        """(mtime, size, path) of each file there."""
        files = []
        for entry in os.scandir(self.root):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, entry.path))
        return files

    def _trim(self) -> None:
        files = self._files()
        total = sum(size for _, size, _ in files)
        horizon = time.time() - self.KEEP_S
        for mtime, size, path in sorted(files):
            recent = mtime > horizon
            if total <= self.limit or (recent and total <= 2 * self.limit):
                break
            if recent and path.endswith(".tmp"):
                continue  # being written
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            total -= size
