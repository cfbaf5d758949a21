import math
import os
from contextlib import contextmanager

import numpy as np
import pytest
import torch


def assert_same(actual, expected, path="sample"):
    """Deep equality that also checks types, dtypes and shapes (NaNs compare equal)."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: {type(actual)} is not a tensor"
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, path
        def as_bytes(t):
            return t.contiguous().reshape(-1).view(torch.uint8)

        if expected.numel():
            assert torch.equal(as_bytes(actual), as_bytes(expected)), path
        return
    if isinstance(expected, (np.ndarray, np.generic)):
        assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
        assert actual.dtype == expected.dtype and np.shape(actual) == np.shape(expected), path
        assert np.asarray(actual).tobytes() == np.asarray(expected).tobytes(), path
        return
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, dict):
        assert sorted(actual, key=str) == sorted(expected, key=str), path  # keys come back sorted
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), path
    else:
        assert actual == expected, path


@pytest.fixture
def make_dataset(tmp_path):
    """optimize(fn, inputs, <tmp>/name, **kw) with progress off; returns the directory."""
    import chute

    def make(fn, inputs, name="ds", **kwargs):
        kwargs.setdefault("progress", False)
        kwargs.setdefault("num_workers", 0)
        return chute.optimize(fn, inputs, str(tmp_path / name), **kwargs)

    return make


# CI explores the same examples every run (no flaky failures); locally hypothesis varies.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory):
    """Remote chunks are cached under $XDG_CACHE_HOME/chute: a private one for the tests
    (inherited by the processes they start)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))


@pytest.fixture(scope="session")
def s3_server():
    from object_store import start_moto

    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server():
    from object_store import start_gcs

    server = start_gcs()
    yield server
    server.stop()


@contextmanager
def rank_env(rank, world, local_world):
    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank % local_world),
                      LOCAL_WORLD_SIZE=str(local_world))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
