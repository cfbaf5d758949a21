"""Samples <-> leaves: flattening pytrees and converting leaf types.

A sample is any nesting of dict (str or int keys; read back in sorted key order) / list /
tuple whose leaves are None, bool, int, float,
str, bytes, numpy arrays and scalars, torch tensors, PIL images, or (with
``allow_pickle=True``) anything picklable. It is flattened into a *tree* (its nesting,
stored once in index.json) and a list of *core leaves* that ``chute._core`` stores:
None, bool, int, float, str, bytes or a C-contiguous array. The schema records, per
leaf, how to turn the core leaf back into what was written.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys

import numpy as np

LEAF = "*"
# numpy dtype kinds that DLPack (and so chute._core) carries directly.
_DLPACK_KINDS = frozenset("biufc")
_RAW_IMAGE_MAGIC = b"CHUTERAW\0"


class SampleError(TypeError):
    """A sample cannot be stored (unsupported leaf, or a structure that changed)."""


# ---- trees ---------------------------------------------------------------------------

def flatten(sample, leaves: list, path: str = ""):
    """Appends the leaves of ``sample`` to ``leaves`` (with their paths); returns the tree."""
    if isinstance(sample, dict):
        for key in sample:
            if type(key) not in (str, int):
                raise SampleError(f"dict key {key!r} at '{path or '<root>'}' is not a str or int")
        # Keys in sorted order (as JAX pytrees do), so insertion order cannot make two
        # samples differ; int keys before str keys.
        keys = sorted(sample, key=lambda k: (type(k) is str, k))
        return {"dict": [[key, flatten(sample[key], leaves, f"{path}.{key}" if path else str(key))]
                         for key in keys]}
    if type(sample) in (list, tuple):
        kind = "list" if type(sample) is list else "tuple"
        return {kind: [flatten(v, leaves, f"{path}.{i}" if path else str(i)) for i, v in enumerate(sample)]}
    leaves.append((path, sample))
    return LEAF


def unflatten(tree, leaves_iter):
    if tree == LEAF:
        return next(leaves_iter)
    (kind, children), = tree.items()
    if kind == "dict":
        return {key: unflatten(child, leaves_iter) for key, child in children}
    values = [unflatten(child, leaves_iter) for child in children]
    return values if kind == "list" else tuple(values)


# ---- leaves: encoding ----------------------------------------------------------------

def _c_contiguous(arr: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns 0-d arrays into 1-d ones.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _raw_bytes_view(arr: np.ndarray) -> np.ndarray:
    """A uint8 view with one trailing axis of itemsize bytes (for dtypes DLPack lacks)."""
    arr = _c_contiguous(arr)
    return arr.reshape(-1).view(np.uint8).reshape(arr.shape + (arr.dtype.itemsize,))


def _encode_array(arr: np.ndarray, type_name: str, path: str, allow_pickle: bool):
    if arr.dtype.hasobject:
        if not allow_pickle:
            raise SampleError(f"leaf '{path}' is an array of Python objects; pass allow_pickle=True to pickle it")
        return {"type": "pickle"}, pickle.dumps(arr, protocol=5)
    if arr.dtype.kind in _DLPACK_KINDS and arr.dtype.isnative and arr.dtype.itemsize <= 16 \
            and arr.dtype != np.longdouble:
        return {"type": type_name, "dtype": arr.dtype.str}, _c_contiguous(arr)
    descr = np.lib.format.dtype_to_descr(arr.dtype)
    return {"type": type_name, "dtype": descr, "raw": True}, _raw_bytes_view(arr)


def _image_module():
    return sys.modules.get("PIL.Image")


def encode_leaf(value, path: str, allow_pickle: bool):
    """(schema entry, core leaf) for one leaf value."""
    if value is None:
        return {"type": "none"}, None
    if isinstance(value, bool):
        return {"type": "bool"}, value
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return {"type": "int"}, int(value)
        if allow_pickle:
            return {"type": "pickle"}, pickle.dumps(value, protocol=5)
        raise SampleError(f"int leaf '{path}' = {value} does not fit in 64 bits; "
                          "store it as a str, or pass allow_pickle=True")
    if isinstance(value, float):
        return {"type": "float"}, float(value)
    if isinstance(value, str):
        return {"type": "str"}, value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "bytes"}, bytes(value)
    if isinstance(value, np.ndarray):
        return _encode_array(value, "numpy", path, allow_pickle)
    if isinstance(value, np.generic):
        return _encode_array(np.asarray(value), "numpy_scalar", path, allow_pickle)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _encode_tensor(torch, value, path)
    image = _image_module()
    if image is not None and isinstance(value, image.Image):
        return {"type": "image"}, _encode_image(value)
    if allow_pickle:
        return {"type": "pickle"}, pickle.dumps(value, protocol=5)
    raise SampleError(f"leaf '{path or '<root>'}' has unsupported type {type(value).__qualname__}; "
                      "convert it to a supported type or pass allow_pickle=True to pickle it")


def _encode_tensor(torch, t, path: str):
    if t.layout != torch.strided:
        raise SampleError(f"tensor leaf '{path}' has layout {t.layout}; convert it with .to_dense()")
    t = t.detach().cpu().contiguous()
    dtype = str(t.dtype).removeprefix("torch.")
    try:
        arr = t.numpy()
    except TypeError:  # bfloat16, float8, ...: store the bytes, keep the dtype name
        shape = tuple(t.shape) + (t.element_size(),)
        if t.numel() == 0:  # empty tensors may have strides that .view() rejects
            raw = np.zeros(shape, np.uint8)
        else:
            raw = t.reshape(-1).view(torch.uint8).reshape(shape).numpy()
        return {"type": "torch", "dtype": dtype, "raw": True}, raw
    return {"type": "torch", "dtype": dtype}, arr


def _encode_image(img) -> bytes:
    """Encoded bytes of a JPEG/PNG image that came from a file; raw pixels otherwise."""
    filename = getattr(img, "filename", "")
    if img.format in ("JPEG", "PNG") and filename and os.path.isfile(filename):
        with open(filename, "rb") as f:
            return f.read()
    header = f"{img.mode}\0{img.width}\0{img.height}\0".encode()
    return _RAW_IMAGE_MAGIC + header + img.tobytes()


# ---- leaves: decoding ----------------------------------------------------------------

def _descr_from_json(descr):
    """Undo JSON's tuples -> lists on a numpy dtype descr."""
    if isinstance(descr, str):
        return descr
    fields = []
    for field in descr:
        entry = [field[0] if isinstance(field[0], str) else tuple(field[0]), _descr_from_json(field[1])]
        if len(field) > 2:
            entry.append(tuple(field[2]))
        fields.append(tuple(entry))
    return fields


def _decode_image(data: bytes):
    from PIL import Image

    if data.startswith(_RAW_IMAGE_MAGIC):
        mode, width, height, pixels = data[len(_RAW_IMAGE_MAGIC):].split(b"\0", 3)
        return Image.frombytes(mode.decode(), (int(width), int(height)), pixels)
    return Image.open(io.BytesIO(data))


def leaf_decoder(entry: dict):
    """A function core leaf -> value for one schema entry, or None for identity."""
    kind = entry["type"]
    raw_dtype = np.lib.format.descr_to_dtype(_descr_from_json(entry["dtype"])) if entry.get("raw") \
        and kind != "torch" else None

    def from_raw(arr):
        return arr.view(raw_dtype).reshape(arr.shape[:-1])

    if kind == "numpy":
        return from_raw if raw_dtype is not None else None
    if kind == "numpy_scalar":  # the schema's dtype gives the exact scalar type (int64, not longlong)
        if raw_dtype is not None:
            return lambda a: from_raw(a)[()]
        dtype = np.dtype(entry["dtype"])
        return lambda a: a.view(dtype)[()]
    if kind == "torch":
        import torch

        if entry.get("raw"):
            dtype = getattr(torch, entry["dtype"])
            def from_raw_tensor(a):
                if a.size == 0:
                    return torch.empty(a.shape[:-1], dtype=dtype)
                return _tensor_from_array(torch, a).view(dtype).reshape(a.shape[:-1])
            return from_raw_tensor
        return lambda a: _tensor_from_array(torch, a)
    if kind == "image":
        return _decode_image
    if kind == "pickle":
        return pickle.loads
    if kind == "json":  # other formats' JSON columns (MDS), kept as their text
        return json.loads
    if kind == "pil_raw":
        return _decode_pil_raw
    if kind == "image_list":  # u32 0 if reserved, u32 n, u32 len[n], the elements
        element = _decode_pil_raw if entry["element"] == "pil_raw" else _decode_image
        skip = 4 if entry["reserved"] else 0
        return lambda data: [element(e) for e in _length_prefixed(data, skip)]
    if kind == "decimal":
        import decimal

        return decimal.Decimal
    if kind == "litdata_json":
        return _decode_litdata_json
    return None


_WDS_DECODERS = {**dict.fromkeys(("cls", "cls2", "index", "inx", "id"), lambda b: int(bytes(b))),
                 **dict.fromkeys(("txt", "text", "transcript"), lambda b: bytes(b).decode()),
                 **dict.fromkeys(("json", "jsn"), lambda b: json.loads(bytes(b))),
                 "npy": lambda b: np.load(io.BytesIO(b), allow_pickle=False)}


def webdataset_sample(sample: dict, decode: bool) -> dict:
    """A WebDataset sample as WebDataset hands it out: without the fields it lacks, and with
    decode, its common extensions decoded like WebDataset's default decoder (by the last
    part of the extension; "x.json.gz" is gunzipped, then decoded as json)."""
    if not decode:
        return {k: v for k, v in sample.items() if v is not None}
    return {k: _webdataset_decode(k, v) for k, v in sample.items() if v is not None}


def _webdataset_decode(ext: str, value):
    if ext.startswith("__"):
        return value
    if ext.endswith(".gz") or ext == "gz":
        import gzip

        value, ext = gzip.decompress(value), ext[:-3]
    decoder = _WDS_DECODERS.get(ext.rsplit(".", 1)[-1])
    return decoder(value) if decoder else value


def _length_prefixed(data, at: int) -> list:
    """u32 n, u32 len[n], then n byte strings (from offset `at`)."""
    (n,) = struct.unpack_from("<I", data, at)
    lengths = struct.unpack_from(f"<{n}I", data, at + 4)
    out, at = [], at + 4 + 4 * n
    if at + sum(lengths) != len(data):
        raise ValueError(f"a list of {n} images does not match its {len(data)} bytes")
    for length in lengths:
        out.append(bytes(data[at:at + length]))
        at += length
    return out


def _decode_pil_raw(data: bytes):
    """litdata's / MDS's raw PIL image: u32 width, u32 height, u32 mode length, the mode,
    then PIL's raw pixels."""
    from PIL import Image

    width, height, mode_len = struct.unpack_from("<III", data)
    mode = bytes(data[12:12 + mode_len]).decode()
    return Image.frombytes(mode, (width, height), bytes(data[12 + mode_len:]))


def _decode_litdata_json(data: bytes):
    """litdata's compact binary JSON leaf (a tag byte, then the value), or JSON text."""
    if not data or data[0] > 0x20:
        return json.loads(bytes(data))
    value, _ = _litdata_value(memoryview(data), 0)
    return value


def _litdata_value(b, at):
    tag = b[at]
    at += 1

    def u32(at):
        return struct.unpack_from("<I", b, at)[0], at + 4

    def text(at):
        n, at = u32(at)
        return bytes(b[at:at + n]).decode(), at + n

    if tag in (0, 7):  # JSON text / a string
        s, at = text(at)
        return (json.loads(s) if tag == 0 else s), at
    if tag in (1, 2, 3, 4):  # lists of strings, i64, f64, bools
        n, at = u32(at)
        if tag == 1:
            out = []
            for _ in range(n):
                s, at = text(at)
                out.append(s)
            return out, at
        fmt, size = {2: ("<q", 8), 3: ("<d", 8), 4: ("<?", 1)}[tag]
        return [struct.unpack_from(fmt, b, at + k * size)[0] for k in range(n)], at + n * size
    if tag == 5:  # dict
        n, at = u32(at)
        out = {}
        for _ in range(n):
            key, at = text(at)
            out[key], at = _litdata_value(b, at)
        return out, at
    if tag == 6:  # records: rows of the same keys, each value a kind byte and its payload
        rows, at = u32(at)
        nkeys, at = u32(at)
        keys = []
        for _ in range(nkeys):
            key, at = text(at)
            keys.append(key)
        out = []
        for _ in range(rows):
            row = {}
            for key in keys:
                kind = b[at]
                at += 1
                if kind == 0x10:
                    row[key] = None
                elif kind == 0x11:
                    row[key], at = text(at)
                else:
                    fmt, size = {0x12: ("<q", 8), 0x13: ("<d", 8), 0x14: ("<?", 1)}[kind]
                    row[key] = struct.unpack_from(fmt, b, at)[0]
                    at += size
            out.append(row)
        return out, at
    if tag in (8, 9, 10):
        fmt, size = {8: ("<q", 8), 9: ("<d", 8), 10: ("<?", 1)}[tag]
        return struct.unpack_from(fmt, b, at)[0], at + size
    if tag == 11:
        return None, at
    raise ValueError(f"unknown litdata JSON tag {tag}")


def _tensor_from_array(torch, arr):
    # DLPack keeps the zero-copy view (torch ignores numpy's read-only flag there).
    return torch.from_dlpack(arr)


class Encoder:
    """Flattens samples and checks they all have the first sample's structure."""

    def __init__(self, allow_pickle: bool = False):
        self.allow_pickle = allow_pickle

    def encode(self, sample):
        """(tree, schema fields, core leaves) of one sample."""
        pairs: list = []
        tree = flatten(sample, pairs)
        fields, leaves = [], []
        for path, value in pairs:
            entry, leaf = encode_leaf(value, path, self.allow_pickle)
            fields.append({"name": path, **entry})
            leaves.append(leaf)
        return tree, fields, leaves


class Decoder:
    """Rebuilds samples from core leaves with the schema stored in index.json."""

    def __init__(self, schema: dict):
        self.tree = schema["tree"]
        self.decoders = [leaf_decoder(entry) for entry in schema["fields"]]
        self.identity = all(d is None for d in self.decoders)

    def decode(self, leaves: list):
        if not self.identity:
            leaves = [v if d is None or v is None else d(v) for d, v in zip(self.decoders, leaves)]
        if self.tree == LEAF:
            return leaves[0]
        return unflatten(self.tree, iter(leaves))
