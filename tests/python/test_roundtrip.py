"""Samples come back with the structure, types and values they were written with."""

import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.utils.data import DataLoader

import chute
from conftest import assert_same

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128", ">i4", "datetime64[ns]",
          "timedelta64[s]", "U3", "S4", [("x", "<i2"), ("y", "<f8")]]
TORCH_DTYPES = [torch.float32, torch.int64, torch.bfloat16, torch.uint8, torch.bool]

# A template fixes a dataset's structure and leaf types; samples are drawn from it.
leaf_templates = st.one_of(
    st.sampled_from(["none", "bool", "int", "float", "str", "bytes"]),
    st.tuples(st.just("numpy"), st.integers(0, len(DTYPES) - 1)),
    st.tuples(st.just("numpy_scalar"), st.sampled_from(["float32", "int64", "uint8"])),
    st.tuples(st.just("torch"), st.integers(0, len(TORCH_DTYPES) - 1)),
)
templates = st.recursive(
    leaf_templates,
    lambda children: st.one_of(
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(-3, 3)), children, min_size=1, max_size=4)
        .map(lambda d: ("dict", d)),
        st.lists(children, min_size=0, max_size=3).map(lambda xs: ("list", xs)),
        st.lists(children, min_size=0, max_size=3).map(lambda xs: ("tuple", xs)),
    ),
    max_leaves=8,
)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def sample_of(template):
    if isinstance(template, str):
        return {
            "none": st.none(), "bool": st.booleans(), "int": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(allow_nan=True), "str": st.text(max_size=20), "bytes": st.binary(max_size=40),
        }[template]
    kind, arg = template
    if kind == "numpy":
        return hnp.arrays(np.dtype(DTYPES[arg]), shapes)
    if kind == "numpy_scalar":
        return hnp.from_dtype(np.dtype(arg)).map(lambda v: np.dtype(arg).type(v))
    if kind == "torch":
        dtype = TORCH_DTYPES[arg]
        source = np.float32 if dtype in (torch.bfloat16, torch.float32) else \
            {torch.int64: np.int64, torch.uint8: np.uint8, torch.bool: np.bool_}[dtype]
        return hnp.arrays(source, shapes, elements=hnp.from_dtype(np.dtype(source), allow_nan=False)) \
            .map(lambda a: torch.from_numpy(a).to(dtype))
    if kind == "dict":
        return st.fixed_dictionaries({k: sample_of(v) for k, v in arg.items()})
    if kind == "list":
        return st.tuples(*[sample_of(c) for c in arg]).map(list)
    return st.tuples(*[sample_of(c) for c in arg])


@st.composite
def datasets(draw):
    template = draw(templates)
    return draw(st.lists(sample_of(template), min_size=1, max_size=12))


def _identity(x):
    return x


def _read_all(path, loader_workers):
    ds = chute.StreamingDataset(path)
    loader = DataLoader(ds, batch_size=None, num_workers=loader_workers, collate_fn=_identity)
    return ds, list(loader)


@settings(max_examples=int(os.environ.get("CHUTE_HYPOTHESIS_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(samples=datasets(), compression=st.sampled_from([None, "zstd", "zstd:9"]),
       optimize_workers=st.sampled_from([0, 2]), loader_workers=st.sampled_from([0, 2]),
       chunk_bytes=st.sampled_from([300, 64_000_000]))
def test_roundtrip_property(tmp_path_factory, samples, compression, optimize_workers, loader_workers,
                            chunk_bytes):
    out = str(tmp_path_factory.mktemp("rt"))
    # Inputs are indices (fn is inherited by the forked workers): the samples themselves
    # never pass through pickle on the way in.
    chute.optimize(samples.__getitem__, range(len(samples)), out, compression=compression,
                   num_workers=optimize_workers, chunk_bytes=chunk_bytes, progress=False, overwrite=True)
    ds, streamed = _read_all(out, loader_workers)
    assert len(ds) == len(samples)
    for i, expected in enumerate(samples):
        assert_same(ds[i], expected, f"ds[{i}]")
    assert len(streamed) == len(samples)
    # Unshuffled, DataLoader workers take items in turn, so the stream is in order.
    for i, got in enumerate(streamed):
        # Worker processes pickle samples to the main process (numpy's pickle makes byte
        # order native): compare with what that transport makes of the sample.
        expected = pickle.loads(pickle.dumps(samples[i])) if loader_workers else samples[i]
        assert_same(got, expected, f"streamed item {i}")


def _numbered(i):
    return {"i": i, "x": np.full((3, 5), i, dtype=np.float32), "t": torch.arange(i % 7, dtype=torch.int32),
            "s": f"item {i}", "raw": bytes([i % 256]) * (i % 50)}


@pytest.mark.parametrize("compression", [None, "zstd"])
@pytest.mark.parametrize("optimize_workers", [0, 2])
@pytest.mark.parametrize("loader_workers", [0, 2])
def test_every_item_once_per_epoch(make_dataset, compression, optimize_workers, loader_workers):
    path = make_dataset(_numbered, range(503), compression=compression, num_workers=optimize_workers,
                        chunk_bytes="8KB")
    ds = chute.StreamingDataset(path, shuffle=True, seed=7)
    loader = DataLoader(ds, batch_size=16, num_workers=loader_workers, collate_fn=list)
    for epoch in range(2):
        ds.set_epoch(epoch)
        seen = [sample["i"] for batch in loader for sample in batch]
        assert sorted(seen) == list(range(503))
        if epoch == 0:
            first = seen
    assert seen != first  # each epoch shuffles differently


def _large_leaves(i):
    return {"image": bytes([i % 251]) * (5000 + i), "tiny": b"t%d" % i, "label": i,
            "grid": np.full((40, 30), i, np.int64), "be": np.arange(2000, dtype=">u4") + i}


@pytest.mark.parametrize("collate_fn", [None, list])
def test_worker_batches_cross_through_shared_memory_unchanged(make_dataset, collate_fn):
    # Big bytes and array leaves travel from the workers in one shared-memory buffer; the
    # main process gets the same types and values as with num_workers=0.
    path = make_dataset(_large_leaves, range(150), chunk_bytes="256KB", num_parts=1)
    ds = chute.StreamingDataset(path, shuffle=True)
    kwargs = {"collate_fn": collate_fn} if collate_fn else {}
    kept = []  # every sample, checked after the epoch: buffers still viewed are not reused
    for batch in chute.StreamingDataLoader(ds, batch_size=16, num_workers=2, **kwargs):
        if collate_fn is None:
            assert isinstance(batch["grid"], torch.Tensor) and batch["grid"].shape[1:] == (40, 30)
            batch = [{"image": batch["image"][k], "tiny": batch["tiny"][k], "label": int(batch["label"][k]),
                      "grid": batch["grid"][k].numpy()}
                     for k in range(len(batch["label"]))]
        kept += batch
    for sample in kept:
        expected = _large_leaves(int(sample["label"]))
        assert_same(sample["image"], expected["image"])
        assert_same(sample["tiny"], expected["tiny"])
        assert_same(np.asarray(sample["grid"]), expected["grid"])
        if collate_fn is list:
            assert_same(sample["be"], expected["be"])
    assert sorted(int(s["label"]) for s in kept) == list(range(150))


def test_output_is_identical_for_any_num_workers(make_dataset, tmp_path):
    make_dataset(_numbered, range(200), "a", num_workers=0, chunk_bytes="4KB", compression="zstd")
    make_dataset(_numbered, range(200), "b", num_workers=2, chunk_bytes="4KB", compression="zstd")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) > 5
    for name in files:
        if name != "index.json":
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _yield_three(i):
    for k in range(3):
        yield {"input": i, "k": k}


def test_generator_fn_yields_several_samples_in_order(make_dataset):
    ds = chute.StreamingDataset(make_dataset(_yield_three, range(40), num_workers=2))
    assert [(s["input"], s["k"]) for s in ds] == [(i, k) for i in range(40) for k in range(3)]


def test_indexing(make_dataset):
    ds = chute.StreamingDataset(make_dataset(_numbered, range(30), chunk_size=4, num_parts=1))
    assert len(ds.core.chunks) == 8
    assert ds[-1]["i"] == 29 and ds[np.int64(3)]["i"] == 3
    assert [s["i"] for s in ds[5:20:4]] == [5, 9, 13, 17]
    assert [s["i"] for s in ds[::-7]] == [29, 22, 15, 8, 1]
    with pytest.raises(IndexError, match="out of range"):
        ds[30]
    with pytest.raises(IndexError):
        ds[-31]


def test_arrays_are_zero_copy_views_of_the_chunk(make_dataset):
    ds = chute.StreamingDataset(make_dataset(_numbered, range(10), num_parts=1))
    a, b = ds[2]["x"], ds[3]["x"]
    assert not a.flags.writeable and not a.flags.owndata
    assert a.ctypes.data % 64 == 0 and b.ctypes.data % 64 == 0
    # Both items live in the one mapping of chunk 0, next to each other.
    assert 0 < b.ctypes.data - a.ctypes.data < 4096
    t = ds[4]["t"]
    assert t.dtype == torch.int32 and t.tolist() == [0, 1, 2, 3]
    del ds
    assert float(a.sum()) == 2 * 15  # the view keeps the mapping alive


def test_transform_and_pickle(make_dataset):
    class Point:
        def __init__(self, x):
            self.x = x

    path = make_dataset(lambda i: {"p": complex(i, 1), "s": {i}}, range(5), allow_pickle=True)
    ds = chute.StreamingDataset(path, transform=lambda s: (s["p"], s["s"]))
    assert ds[3] == (complex(3, 1), {3})
    with pytest.raises(chute.OptimizeError, match=r"inputs\[0\].*Point.*allow_pickle=True"):
        make_dataset(lambda i: {"p": Point(i)}, range(3), "nopickle")


def test_pil_images(make_dataset, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i, fmt in enumerate(["JPEG", "PNG"]):
        f = tmp_path / f"img{i}.{fmt.lower()}"
        Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(f, format=fmt)
        files.append(f)

    def load(f):
        return {"img": Image.open(f), "generated": Image.new("LA", (5, 3), (10, 200))}

    ds = chute.StreamingDataset(make_dataset(load, files))
    for f, sample in zip(files, ds):
        img = sample["img"]
        # JPEG/PNG from a file keep their encoded bytes: identical file content.
        assert img.format in ("JPEG", "PNG")
        assert np.array_equal(np.asarray(img), np.asarray(Image.open(f)))
        assert sample["generated"].mode == "LA" and sample["generated"].size == (5, 3)
        assert sample["generated"].getpixel((4, 2)) == (10, 200)
