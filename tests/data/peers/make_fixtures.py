"""Writes the peer-format test fixtures with the peer libraries themselves, and what those
libraries read back, so that tests compare chute's reading with theirs (the libraries are
not chute dependencies; run this in an environment that has them, e.g. the bench's):

    python tests/data/peers/make_fixtures.py   # mosaicml-streaming 0.13.0

Writes tests/data/peers/mds/<variant>/ (MDSWriter output: uncompressed, zstd, gz) and
tests/data/peers/mds/<variant>.expected.pkl (the samples as Mosaic's StreamingDataset
returns them, PIL images as (mode, size, pixel bytes)). Rerunning writes the same data (the
gzip shards differ in their header's timestamp).
"""

import io
import os
import pickle
import shutil
import sys
import tempfile
import types

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = {"i": "int", "id": "int", "name": "str", "blob": "bytes", "label": "int32", "score": "float64",
           "small": "uint8", "meta": "json", "count": "str_int", "ratio": "str_float", "photo": "jpeg", "mask": "png",
           "arr": "ndarray", "tok": "ndarray:int32:16", "half": "ndarray:float16"}
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
            "tok": np.arange(i, i + 16, dtype=np.int32), "half": rng.standard_normal(i % 5 + 1).astype(np.float16)}


def as_plain(value):
    if isinstance(value, Image.Image):
        return ("PIL", value.mode, value.size, value.tobytes())
    return value


def main():
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
        with MDSWriter(out=out, columns=COLUMNS, compression=compression, size_limit=4000) as writer:
            for i in range(N):
                writer.write(sample(i))
        with tempfile.TemporaryDirectory() as copy:  # Mosaic decompresses shards next to the originals
            local = shutil.copytree(out, os.path.join(copy, variant))
            ds = StreamingDataset(local=local, shuffle=False, batch_size=1)
            got = [{k: as_plain(v) for k, v in ds[i].items()} for i in range(len(ds))]
        with open(os.path.join(HERE, "mds", f"{variant}.expected.pkl"), "wb") as f:
            pickle.dump(got, f, protocol=4)
        print(variant, len(got), "samples,", len(os.listdir(out)) - 1, "shards")


if __name__ == "__main__":
    main()
