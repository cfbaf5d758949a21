"""The index of a StreamingRawDataset, built once per node.

Whatever the user gives — a prefix or directory of objects, CSV/TSV/JSON/JSONL/Parquet
index files, a wildcard of them, a text file of paths, local or in a bucket — becomes one
Parquet file, ``<cache_dir>/raw-index/<digest>/index.parquet``: a row per sample, its
download columns holding absolute object URLs, its row groups the blocks the C++ source
reads one at a time (cpp/src/format/raw.h). Every process and rank of the node reuses it;
it is rebuilt when the index files change (their sizes and times) or on request.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import io
import json
import os
import posixpath
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet as pq

from chute import _core

_VERSION = 2
_refreshed: set[str] = set()  # the settings digests this process rebuilt with refresh_index=True
_INDEX_KINDS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".json": "json",
                ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}
_ABSOLUTE = r"^([A-Za-z][A-Za-z0-9+.\-]*://|/)"  # a URL with a scheme, or an absolute path
KEY_COLUMN = "__key__"


class RawIndexError(ValueError):
    """A raw dataset's index cannot be used as given (the message says why and what to do)."""


def _split(src: str) -> tuple[str, str]:
    """(directory URL, last component) of a URL or local path."""
    if "://" in src:
        scheme, rest = src.split("://", 1)
        head, tail = posixpath.split(rest.rstrip("/"))
        return f"{scheme}://{head}", tail
    path = os.path.abspath(src)
    return os.path.dirname(path), os.path.basename(path)


def _kind(name: str) -> str | None:
    return _INDEX_KINDS.get(os.path.splitext(name)[1].lower())


def build(src: str, *, columns_to_download, index_col, filter, storage_options: dict, cache_dir: str,
          refresh: bool, block_rows: int, ranged=()) -> str:
    """The directory of the normalized index of `src` (built now unless the node has it).
    Download columns named in `ranged` hold absolute URLs but are not fetched by the engine
    (their objects are read by byte range; see chute._object_reader)."""
    src = os.fspath(src)
    base, last = _split(src)
    wildcard = any(c in last for c in "*?[")
    if wildcard or (_kind(last) and not src.endswith("/")):
        kind = "files"
        store = _core.Storage.open(base, storage_options if "://" in base else {})  # options are the objects' store's
        names = sorted(n for n in store.list("") if fnmatch.fnmatchcase(n, last)) if wildcard else [last]
        if wildcard and not names:
            raise FileNotFoundError(f"{src}: no index file matches {last!r} in {base}")
        for n in names:
            if not _kind(n):
                raise RawIndexError(f"{store.url(n)}: not an index file (use .csv, .tsv, .parquet, .json, .jsonl or .txt)")
        identity = [(n, store.size(n), _mtime(store.url(n))) for n in names]
    else:
        kind, store, names = "prefix", None, []
        identity = os.path.abspath(src) if "://" not in src else src.rstrip("/")
    settings = [_VERSION, kind, base, identity, columns_to_download, index_col, filter, block_rows,
                storage_options.get("endpoint_url")] + ([sorted(ranged)] if ranged else [])
    digest = hashlib.sha256(json.dumps(settings, default=str).encode()).hexdigest()[:20]
    root = os.path.join(cache_dir, "raw-index")
    os.makedirs(root, exist_ok=True)
    # <digest>.current names the latest index built for these settings, a directory
    # <digest>-<content hash> that never changes once there: a refresh makes a new one
    # under the processes still reading the old.
    current = os.path.join(root, digest + ".current")
    with open(os.path.join(root, digest + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per node; the others wait, then reuse its index
        built = _current(root, current)
        # A refresh asked by every rank of a node happens once: an index another process
        # built since this one started is fresh (unless this process refreshed it before).
        if built and (not refresh or (os.stat(current).st_mtime >= _process_start() and digest not in _refreshed)):
            return built
        if refresh:
            _refreshed.add(digest)
        if kind == "prefix":
            table, sizes, local = _listing(src, columns_to_download, storage_options)
            download, index_col = [c for c in table.column_names if c != KEY_COLUMN], index_col or KEY_COLUMN
            if filter:  # over the listing: __key__ and a URL column per extension
                table = _sql(table.append_column("__size__", pa.array(sizes, pa.int64())), filter, src)
                if "__size__" not in table.column_names or not set(download) <= set(table.column_names):
                    raise RawIndexError(f"filter={filter!r} drops columns of the listing: select * "
                                        f"(its columns: {[KEY_COLUMN, *download, '__size__']})")
                sizes = table["__size__"].to_pylist()
                table = table.drop_columns(["__size__"])
            block_bytes = [sum(sizes[i:i + block_rows]) for i in range(0, len(sizes), block_rows)]
        else:
            table = _read_index_files(store, names)
            table, download = _prepare(table, src, base, columns_to_download, index_col, filter, names)
            block_bytes, local = None, None
        ranged_columns = [c for c in download if c in ranged]
        download = [c for c in download if c not in ranged_columns]
        local = _all_local(table, download) if local is None else local or not download  # (or nothing to fetch)
        if table.num_rows == 0:
            raise RawIndexError(f"{src}: the index has no rows" + (f" left by filter={filter!r}" if filter else ""))
        return _write(table, os.path.join(root, digest), current,
                      {"download": download, "ranged": ranged_columns, "local": local, "index_col": index_col,
                       "block_bytes": block_bytes,
                       "source": src, "kind": kind, "digest": digest}, block_rows)


def _current(root: str, current: str) -> str | None:
    """The index directory `current` names, if it is there."""
    try:
        with open(current) as f:
            built = os.path.join(root, f.read().strip())
    except FileNotFoundError:
        return None
    return built if os.path.exists(os.path.join(built, "index.parquet")) else None


def _process_start() -> float:
    """When this process started (seconds since the epoch)."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _mtime(url: str) -> float | None:
    return os.stat(url).st_mtime if "://" not in url else None


def _listing(src, columns_to_download, storage_options):
    """A prefix or directory: objects grouped by key (name up to the first dot of its base
    name), one column per extension, sorted by key; the bytes of each row; whether local."""
    store = _core.Storage.open(src, storage_options)
    objects = {}
    for name, size in store.walk():
        head, base = posixpath.split(name)
        if not base or base.startswith("."):
            continue  # hidden files (.DS_Store, ._*) are not samples
        stem, dot, ext = base.partition(".")
        objects.setdefault(posixpath.join(head, stem), {})[ext if dot else ""] = (name, size)
    if not objects:
        raise FileNotFoundError(f"{src}: no objects there (a raw dataset over a prefix or directory lists them)")
    exts = sorted({e for fields in objects.values() for e in fields})
    if columns_to_download:
        missing = [c for c in columns_to_download if c not in exts]
        if missing:
            raise RawIndexError(f"{src}: no object has the extension(s) {missing} (found: {exts})")
        exts = list(columns_to_download)
    keys = sorted(k for k, fields in objects.items() if any(e in fields for e in exts))
    columns = {KEY_COLUMN: keys}
    for e in exts:
        columns[e or "data"] = [store.url(objects[k][e][0]) if e in objects[k] else None for k in keys]
    sizes = [sum(objects[k][e][1] for e in exts if e in objects[k]) for k in keys]
    return pa.table(columns), sizes, "://" not in src


def _read_index_files(store, names) -> pa.Table:
    tables = []
    for name in names:
        url = store.url(name)
        data = url if "://" not in url else io.BytesIO(store.read(name))
        try:
            tables.append(_read_one(data, _kind(name)))
        except (pa.ArrowInvalid, ValueError) as e:
            raise RawIndexError(f"{url}: cannot read it as a {_kind(name)} index: {e}") from None
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as e:
        raise RawIndexError(f"{store.url(names[0])} and the other index files have incompatible columns: {e}") from None


def _read_one(data, kind) -> pa.Table:
    if kind == "csv":
        return pyarrow.csv.read_csv(data)
    if kind == "tsv":
        return pyarrow.csv.read_csv(data, parse_options=pyarrow.csv.ParseOptions(delimiter="\t"))
    if kind == "parquet":
        return pq.read_table(data)
    if kind == "jsonl":
        return pyarrow.json.read_json(data)
    raw = data.read() if isinstance(data, io.BytesIO) else open(data, "rb").read()
    if kind == "txt":  # one path or URL per line
        lines = [line.strip() for line in raw.decode("utf-8").splitlines()]
        return pa.table({"path": pa.array([line for line in lines if line], pa.string())})
    if raw.lstrip()[:1] == b"[":  # a JSON array of row objects
        return pa.Table.from_pylist(json.loads(raw))
    return pyarrow.json.read_json(io.BytesIO(raw))  # JSON Lines under a .json name


def _prepare(table: pa.Table, src, base, columns_to_download, index_col, filter, names):
    """Checks the columns, applies the SQL filter and makes the URLs absolute."""
    if columns_to_download is None:
        if table.column_names == ["path"] and all(_kind(n) == "txt" for n in names):
            columns_to_download = ["path"]
        else:
            raise RawIndexError(f"{src}: say which columns hold the URLs or paths of the objects to fetch: "
                              f"columns_to_download=[...] (its columns: {table.column_names})")
    download = list(columns_to_download)
    for c in download + ([index_col] if index_col else []):
        if c not in table.column_names:
            raise RawIndexError(f"{src}: no column {c!r} (its columns: {table.column_names})")
    if filter:
        table = _sql(table, filter, src)
        for c in download:
            if c not in table.column_names:
                raise RawIndexError(f"filter={filter!r} drops download column {c!r}: select it")
    if index_col and pc.count_distinct(table[index_col]).as_py() != table.num_rows:
        raise RawIndexError(f"{src}: index_col={index_col!r} has repeated values; it must identify each row")
    for c in download:
        column = table[c]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise RawIndexError(f"{src}: download column {c!r} holds {column.type}, not URLs or paths (strings)")
        column = column.cast(pa.string())
        relative = pc.invert(pc.match_substring_regex(column, _ABSOLUTE))
        joined = pc.binary_join_element_wise(base.rstrip("/"), column, "/")
        column = pc.if_else(relative, joined, column)
        if pc.any(pc.match_substring_regex(column, r"/\.\.?(/|$)")).as_py():  # "dir/../x", "./x"
            column = pa.array([_normalized(u) for u in column.to_pylist()], pa.string())
        table = table.set_column(table.column_names.index(c), c, column)
    return table, download


def _normalized(url: str | None) -> str | None:
    """`url` without "." and ".." components."""
    if url is None:
        return None
    scheme, sep, path = url.rpartition("://")
    return scheme + sep + posixpath.normpath(path)


def _sql(table: pa.Table, query: str, src) -> pa.Table:
    try:
        import duckdb
    except ImportError:
        raise ImportError("filter= runs SQL through DuckDB: pip install 'chute[sql]'") from None
    con = duckdb.connect()
    try:
        con.register("dataframe", table)
        return con.sql(query).to_arrow_table()
    except duckdb.Error as e:
        raise RawIndexError(f"filter={query!r} on the index of {src} (a table named dataframe) failed: {e}") from None
    finally:
        con.close()


def _all_local(table: pa.Table, download) -> bool:
    for c in download:
        remote = pc.match_substring_regex(table[c], r"^[A-Za-z][A-Za-z0-9+.\-]*://")
        local_scheme = pc.starts_with(table[c], "file://")
        if pc.any(pc.and_(remote, pc.invert(local_scheme))).as_py():
            return False
    return True


def _write(table: pa.Table, prefix: str, current: str, settings: dict, block_rows: int) -> str:
    """Writes the index into `prefix`-<content hash>/ (through a temporary directory) and
    names it in `current`; returns the directory."""
    table = table.replace_schema_metadata({"chute.raw": json.dumps(settings)})
    temp = f"{prefix}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    os.makedirs(temp)
    path = os.path.join(temp, "index.parquet")
    pq.write_table(table, path, row_group_size=max(1, block_rows))
    content = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            content.update(piece)
    out = f"{prefix}-{content.hexdigest()[:16]}"
    if os.path.exists(out):
        shutil.rmtree(temp)  # the same index again
    else:
        os.rename(temp, out)
    with open(current + ".tmp", "w") as f:
        f.write(os.path.basename(out))
    os.replace(current + ".tmp", current)
    return out
