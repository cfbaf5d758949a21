"""Writes the peer-format test fixtures with the peer libraries themselves, and what those
libraries read back, so that tests compare chute's reading with theirs (the libraries are
not chute dependencies; run this in an environment that has them, e.g. the bench's):

    python tests/data/peers/make_fixtures.py [mds] [litdata]  # mosaicml-streaming 0.13.0, litdata 0.2.76

Writes tests/data/peers/mds/<variant>/ (MDSWriter output: uncompressed, zstd, gz; a token
dataset of one ndarray:int32:16 column, sample i = arange(100 i, 100 i + 16)) and
tests/data/peers/mds/<variant>.expected.pkl (the samples as Mosaic's StreamingDataset
returns them, PIL images as (mode, size, pixel bytes)). Rerunning writes the same data (the
gzip shards differ in their header's timestamp). Likewise tests/data/peers/litdata/<variant>/
(litdata.optimize output: a dict of JSON-like values, which 0.2.76 stores as an Arrow footer;
a pytree with arrays and tensors, uncompressed and in litdata's three zstd modes; a token
dataset) and <variant>.expected.pkl (litdata's StreamingDataset; token blocks of 16).
"""

import io
import os
import pickle
import shutil
import sys
import tempfile
import types
from decimal import Decimal

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = {"i": "int", "id": "int", "name": "str", "blob": "bytes", "label": "int32", "score": "float64",
           "small": "uint8", "meta": "json", "count": "str_int", "ratio": "str_float", "photo": "jpeg", "mask": "png",
           "arr": "ndarray", "tok": "ndarray:int32:16", "half": "ndarray:float16", "raw": "pil",
           "frames": "jpeg_array", "masks": "list[png]", "dec": "str_decimal"}
N = 30


def sample(i: int) -> dict:
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 255, (6 + i % 5, 5, 3), dtype=np.uint8)
    return {"i": i, "id": i * 1_000_003 - 5, "name": f"sample-{i}-é",
            "blob": bytes(rng.integers(0, 256, i % 7 * 20, np.uint8)),
            "label": np.int32(i % 10 - 3), "score": np.float64(i / 7), "small": np.uint8(i % 256),
            "meta": {"i": i, "tags": ["a", "b"][: i % 3], "nested": {"x": i / 2}}, "count": i * 37 - 100,
            "ratio": float(i) / 3 if i % 9 else float("inf"), "photo": Image.fromarray(pixels),
            "mask": Image.fromarray(pixels[..., 0]),
            "arr": rng.standard_normal((i % 3 + 1, 4)).astype([np.float32, np.int64, np.uint16][i % 3]),
            "tok": np.arange(i, i + 16, dtype=np.int32), "half": rng.standard_normal(i % 5 + 1).astype(np.float16),
            "raw": Image.fromarray(pixels[:3, :2]), "frames": [jpeg_bytes(pixels)] * (1 + i % 3),
            "masks": [Image.fromarray(pixels[..., 1])] * (1 + i % 2), "dec": Decimal(i) / 8}


def jpeg_bytes(pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def plain(value):
    """litdata hands out Arrow rows' bytes as memoryviews: bytes, to pickle them."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return bytes(value) if isinstance(value, memoryview) else value


def as_plain(value):
    if isinstance(value, Image.Image):
        return ("PIL", value.mode, value.size, value.tobytes())
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    return value


def litdata_row(i: int) -> dict:
    """JSON-like values only: litdata 0.2.76 writes these chunks as Arrow IPC footers."""
    rng = np.random.default_rng(i)
    return {"image": bytes(rng.integers(0, 256, 30 + i % 9, np.uint8)), "label": i * 7 - 20,
            "caption": f"caption {i} ü" * (i % 3), "score": i / 4, "flag": i % 3 == 0}


def litdata_tree(i: int):
    """A nested sample with arrays and tensors: stored as pytree items."""
    import torch

    rng = np.random.default_rng(i)
    return {"i": i, "name": f"n{i}", "x": rng.standard_normal((2, i % 3 + 1)).astype(np.float32),
            "ids": np.arange(i % 4 + 1, dtype=np.int64), "t": torch.arange(i % 5 + 1, dtype=torch.int16),
            "m": torch.full((2, 2), float(i), dtype=torch.float64), "raw": bytes([i % 256]) * (i % 6),
            "nested": {"a": float(i) / 3, "b": [i, str(i)]}}


def litdata_tokens(i: int):
    import torch

    return torch.arange(i * 1000, i * 1000 + 37 + i * 11, dtype=torch.int32)


def litdata_fixtures():
    import litdata
    import torch
    from litdata import StreamingDataset, TokensLoader, optimize

    print("litdata", litdata.__version__)
    variants = [("rows", litdata_row, {}), ("tree", litdata_tree, {}),
                ("tree-zstd-batch", litdata_tree, {"compression": "zstd", "compression_batch_size": 4}),
                ("tree-zstd-sample", litdata_tree, {"compression": "zstd", "compression_level": "sample"}),
                ("tree-zstd-chunk", litdata_tree, {"compression": "zstd:5", "compression_level": "chunk"}),
                ("tokens", litdata_tokens, {"item_loader": TokensLoader(), "chunk_size": 400})]
    for variant, fn, kwargs in variants:
        out = os.path.join(HERE, "litdata", variant)
        shutil.rmtree(out, ignore_errors=True)
        kwargs.setdefault("chunk_bytes", None if "chunk_size" in kwargs else 2000)
        optimize(fn=fn, inputs=list(range(25)), output_dir=out, num_workers=2, verbose=False, start_method="fork",
                 **kwargs)
        with tempfile.TemporaryDirectory() as copy:  # litdata decompresses chunks next to the originals
            local = shutil.copytree(out, os.path.join(copy, variant))
            if variant == "tokens":
                ds = StreamingDataset(local, item_loader=TokensLoader(block_size=16))
            else:
                ds = StreamingDataset(local)
            got = [ds[i] for i in range(len(ds))]
        got = [g.numpy() if isinstance(g, torch.Tensor) and variant == "tokens" else plain(g) for g in got]
        with open(os.path.join(HERE, "litdata", f"{variant}.expected.pkl"), "wb") as f:
            pickle.dump(got, f, protocol=4)
        print(variant, len(got), "samples,", sorted(os.listdir(out)))


def mds_fixtures():
    try:
        import torchvision  # noqa: F401
    except Exception:  # its registry build fails next to some CPU torch builds; vision is unused
        sys.modules["streaming.vision"] = types.ModuleType("streaming.vision")
    import streaming
    from streaming import MDSWriter, StreamingDataset

    print("mosaicml-streaming", streaming.__version__)
    for variant, compression in (("plain", None), ("zstd", "zstd:7"), ("gz", "gz")):
        out = os.path.join(HERE, "mds", variant)
        shutil.rmtree(out, ignore_errors=True)
        with MDSWriter(out=out, columns=COLUMNS, compression=compression, size_limit=16000) as writer:
            for i in range(N):
                writer.write(sample(i))
        with tempfile.TemporaryDirectory() as copy:  # Mosaic decompresses shards next to the originals
            local = shutil.copytree(out, os.path.join(copy, variant))
            ds = StreamingDataset(local=local, shuffle=False, batch_size=1)
            got = [{k: as_plain(v) for k, v in ds[i].items()} for i in range(len(ds))]
        with open(os.path.join(HERE, "mds", f"{variant}.expected.pkl"), "wb") as f:
            pickle.dump(got, f, protocol=4)
        print(variant, len(got), "samples,", len(os.listdir(out)) - 1, "shards")
    out = os.path.join(HERE, "mds", "tokens")  # a token dataset: one fixed ndarray column
    shutil.rmtree(out, ignore_errors=True)
    with MDSWriter(out=out, columns={"tokens": "ndarray:int32:16"}, size_limit=700) as writer:
        for i in range(40):
            writer.write({"tokens": np.arange(i * 100, i * 100 + 16, dtype=np.int32)})
    print("tokens", len(os.listdir(out)) - 1, "shards")


def webdataset_fixtures():
    """ShardWriter shards (ustar; a PAX long name and a GNU-style long path appear through
    long keys) and what webdataset's own reader yields, undecoded."""
    import webdataset as wds

    print("webdataset", wds.__version__ if hasattr(wds, "__version__") else "")
    out = os.path.join(HERE, "webdataset", "plain")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    with wds.ShardWriter(os.path.join(out, "shard-%06d.tar"), maxcount=7, mtime=1_700_000_000, verbose=0) as sink:
        for i in range(24):
            rng = np.random.default_rng(i)
            key = f"{i:06d}" if i % 10 != 9 else f"dir/{'long' * 30}-{i:06d}"  # > 100 bytes: a PAX path
            sample = {"__key__": key, "cls": i % 5, "txt": f"caption {i}", "bin": bytes(rng.integers(0, 256, i * 3, np.uint8))}
            if i % 4 == 0:
                sample["json"] = {"i": i}
            sink.write(sample)
    urls = sorted(os.path.join(out, f) for f in os.listdir(out))
    got = [{k: v for k, v in s.items() if k != "__url__"} for s in wds.WebDataset(urls, shardshuffle=False)]
    with open(os.path.join(HERE, "webdataset", "plain.expected.pkl"), "wb") as f:
        pickle.dump(got, f, protocol=4)
    print("webdataset", len(got), "samples,", len(urls), "shards")


def main():
    which = sys.argv[1:] or ["mds", "litdata", "webdataset"]
    if "mds" in which:
        mds_fixtures()
    if "litdata" in which:
        litdata_fixtures()
    if "webdataset" in which:
        webdataset_fixtures()


if __name__ == "__main__":
    main()
