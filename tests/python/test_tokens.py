"""Token datasets: blocks of consecutive tokens across documents and chunks."""

import numpy as np
import pytest
import torch

import chute
from chute import _core

INT_DTYPES = ["uint8", "uint16", "uint32", "int32", "int64", "int8", "int16", "uint64"]


def _documents(dtype, n_docs=60, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    high = min(int(info.max), 2**31 - 1)
    return [rng.integers(max(int(info.min), -(2**31)), high, rng.integers(0, 40), dtype=dtype) for _ in range(n_docs)]


def _identity(x):
    return x


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int32", "int64"])
@pytest.mark.parametrize("block_size", [1, 7, 33])
@pytest.mark.parametrize("compression", [None, "zstd"])
def test_blocks_equal_reference_slices(make_dataset, dtype, block_size, compression):
    docs = _documents(dtype)
    path = make_dataset(_identity, docs, chunk_size=4, compression=compression)  # chunk ends fall inside blocks
    stream = np.concatenate(docs)
    ds = chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size))
    n_blocks = len(stream) // block_size
    assert len(ds) == n_blocks and ds.blocks.token_dtype == dtype
    reference = stream[: n_blocks * block_size].reshape(n_blocks, block_size).astype(np.int64)
    got = np.stack([ds[i].numpy() for i in range(n_blocks)])
    assert got.dtype == np.int64 and np.array_equal(got, reference)
    assert np.array_equal(ds[-1].numpy(), reference[-1])
    same = chute.StreamingDataset(path, item_loader=chute.TokensLoader(block_size, dtype=dtype))
    assert np.array_equal(same.blocks.gather(np.arange(n_blocks, dtype=np.uint64), dtype), reference.astype(dtype))


@pytest.mark.parametrize("src", INT_DTYPES)
@pytest.mark.parametrize("dst", ["int64", "int32", "uint16"])
def test_simd_and_portable_kernels_give_identical_bytes(src, dst):
    rng = np.random.default_rng(1)
    info = np.iinfo(src)
    for n in (0, 1, 15, 16, 17, 1000, 4099):
        x = rng.integers(info.min, info.max, n, dtype=src, endpoint=True)
        simd = _core.convert_tokens(x, dst, simd=True)
        portable = _core.convert_tokens(x, dst, simd=False)
        assert simd.tobytes() == portable.tobytes()
        assert np.array_equal(portable, x.astype(dst))


def test_gather_simd_matches_portable(make_dataset):
    path = make_dataset(_identity, _documents("uint16", 200), chunk_size=7)
    blocks = chute.StreamingDataset(path, item_loader=chute.TokensLoader(2049 // 64)).blocks
    ids = np.random.default_rng(2).permutation(len(blocks)).astype(np.uint64)
    assert blocks.gather(ids, "int64", simd=True).tobytes() == blocks.gather(ids, "int64", simd=False).tobytes()


def test_batches_are_zero_copy_dlpack():
    arr = np.arange(10, dtype=np.uint16)
    out = _core.convert_tokens(arr, "int64")
    t = torch.from_dlpack(out)
    assert t.data_ptr() == out.ctypes.data and t.data_ptr() % 64 == 0


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_cover_every_block_once(make_dataset, workers):
    docs = _documents("uint32", 300)
    path = make_dataset(_identity, docs, chunk_size=16)
    stream = np.concatenate(docs).astype(np.int64)
    ds = chute.StreamingDataset(path, item_loader=chute.TokensLoader(16), shuffle=True, seed=4)
    loader = chute.StreamingDataLoader(ds, batch_size=8, num_workers=workers)
    batches = list(loader)
    assert len(batches) == len(loader)
    assert all(b.shape == (8, 16) and b.dtype == torch.int64 for b in batches[:-1])
    rows = torch.cat(batches).numpy()
    n = len(ds)
    block_of = {r.tobytes(): k for k, r in enumerate(stream[: n * 16].reshape(n, 16))}
    assert sorted(block_of[r.tobytes()] for r in rows) == list(range(n))


def test_resume_token_batches(make_dataset):
    path = make_dataset(_identity, _documents("uint16", 300), chunk_size=16)

    def loader(state=None):
        ds = chute.StreamingDataset(path, item_loader=chute.TokensLoader(8), shuffle=True)
        dl = chute.StreamingDataLoader(ds, batch_size=4)
        if state:
            dl.load_state_dict(state)
        return dl

    full = [b.tolist() for b in loader()]
    first = loader()
    head = []
    for b in first:
        head.append(b.tolist())
        if len(head) == 5:
            break
    rest = [b.tolist() for b in loader(first.state_dict())]
    assert head + rest == full


def test_not_a_token_dataset(make_dataset):
    path = make_dataset(lambda i: {"i": i}, range(5))
    with pytest.raises(ValueError, match="is not a token dataset.*1-D integer arrays"):
        chute.StreamingDataset(path, item_loader=chute.TokensLoader(4))
    with pytest.raises(ValueError, match="integer dtype"):
        chute.TokensLoader(4, dtype=torch.float32)


def test_token_loader_runs_threads_not_processes(make_dataset):
    path = make_dataset(_identity, _documents("uint16", 50), chunk_size=8)
    ds = chute.StreamingDataset(path, item_loader=chute.TokensLoader(8))
    with pytest.raises(ValueError, match="threads of this process: collate_fn not supported"):
        chute.StreamingDataLoader(ds, batch_size=4, num_workers=2, collate_fn=list)
    loader = chute.StreamingDataLoader(ds, batch_size=4, num_workers=2, pin_memory=True)
    assert loader.num_workers == 0 and sum(b.shape[0] for b in loader) == len(ds)


@pytest.mark.parametrize("workers", [0, 2])
def test_token_datasets_mix(make_dataset, workers):
    """CombinedStreamingDataset over token datasets: each dataset's Reader gathers its
    blocks; every block of both datasets comes out once per epoch, equal to its slice."""
    block = 33
    streams, datasets = [], []
    for k in range(2):
        docs = _documents("uint16", n_docs=80, seed=10 + k)
        path = make_dataset(_identity, docs, name=f"tokens{k}", chunk_size=7)
        streams.append(np.concatenate(docs).astype(np.int64))
        datasets.append(chute.StreamingDataset(path, shuffle=True, seed=k, item_loader=chute.TokensLoader(block)))
    loader = chute.StreamingDataLoader(chute.CombinedStreamingDataset(datasets, weights=[0.6, 0.4]), batch_size=8,
                                       num_workers=workers)
    rows = [tuple(row) for batch in loader for row in batch.tolist()]
    expected = [tuple(s[b * block:(b + 1) * block]) for s in streams for b in range(len(s) // block)]
    assert sorted(rows) == sorted(expected)
