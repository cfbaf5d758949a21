"""chute.checkpoint: torch.save / torch.load through streaming writers and read-ahead
readers, on local disk, moto (S3) and the GCS emulator."""

import os
import threading
import time
import uuid

import numpy as np
import pytest
import torch

from chute import checkpoint
from object_store import create_gcs_bucket, create_s3_bucket, s3_options


@pytest.fixture(params=["local", "s3", "gs"])
def store(request, tmp_path):
    """(a URL prefix, storage_options, exists(url) -> bool)."""
    if request.param == "local":
        return str(tmp_path), None, os.path.exists
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = f"c-{uuid.uuid4().hex[:12]}"
        create_s3_bucket(server.endpoint, bucket)
        options = s3_options(server.endpoint)
    else:
        server = request.getfixturevalue("gcs_server")
        bucket = f"c-{uuid.uuid4().hex[:12]}"
        create_gcs_bucket(server.endpoint, bucket)
        options = {"endpoint_url": server.endpoint}
    scheme = request.param
    from chute import _core

    def exists(url):
        parent, _, name = url.rpartition("/")
        return _core.Storage.open(parent, options).exists(name)

    return f"{scheme}://{bucket}/ckpt", options, exists


def _state(big: int):
    g = torch.Generator().manual_seed(0)
    state = {f"w_{dtype}": torch.randn(37, 5, generator=g).to(dtype)
             for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64)}
    state.update({f"i_{dtype}": torch.randint(-100, 100, (1000,), generator=g).to(dtype)
                  for dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)})
    state["big"] = torch.randn(big, generator=g)  # several read-ahead parts below
    state["nested"] = {"step": 1234, "lr": 0.5, "names": ["a", "b"], "view": state["big"][10:20]}
    return state


def _same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    else:
        assert a == b


def test_save_load_round_trip(store):
    prefix, options, exists = store
    url = f"{prefix}/model.pt"
    # The GCS emulator cannot serve ranges of objects beyond a few MB (it times out).
    gcs = prefix.startswith("gs://")
    state = _state(500_000 if gcs else 3_000_000)
    checkpoint.save(state, url, storage_options=options)
    assert exists(url)
    _same(checkpoint.load(url, storage_options=options, weights_only=True), state)
    with checkpoint.open(url, "rb", storage_options=options, part_size="256KiB" if gcs else "1MiB",
                         concurrency=3) as f:
        _same(torch.load(f, weights_only=True), state)  # many parts, fetched three ahead
    checkpoint.save({"step": 2}, url, storage_options=options)  # replaces it
    assert checkpoint.load(url, storage_options=options) == {"step": 2}


def test_an_exception_inside_with_leaves_no_object(store):
    prefix, options, exists = store
    url = f"{prefix}/broken.pt"
    with pytest.raises(RuntimeError, match="stop"):
        with checkpoint.open(url, "wb", storage_options=options) as f:
            f.write(os.urandom(3 << 20))
            raise RuntimeError("stop")
    assert not exists(url)
    writer = checkpoint.open(url, "wb", storage_options=options)
    writer.write(b"half")
    del writer  # lost unclosed: nothing appears either
    assert not exists(url)
    checkpoint.save({"step": 1}, url, storage_options=options)
    with pytest.raises(RuntimeError, match="stop"):
        with checkpoint.open(url, "wb", storage_options=options) as f:
            f.write(os.urandom(1 << 20))
            raise RuntimeError("stop")
    assert checkpoint.load(url, storage_options=options) == {"step": 1}  # the earlier one stays
    if prefix.startswith("/"):
        assert os.listdir(prefix) == ["broken.pt"]  # no temporary file left


def test_errors_name_the_url(store):
    prefix, options, _ = store
    with pytest.raises(FileNotFoundError, match=f"{prefix}/missing.pt"):
        checkpoint.load(f"{prefix}/missing.pt", storage_options=options)
    for bad in ("s3://bucket-only/", "s3://b/dir/"):
        with pytest.raises(ValueError, match="not the URL of an object"):
            checkpoint.open(bad, "wb")


def test_a_large_object_goes_up_in_parts_with_bounded_memory(s3_server):
    import boto3

    bucket = f"c-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    url = f"s3://{bucket}/large.bin"
    data = np.random.default_rng(0).integers(0, 256, 300 << 20, dtype=np.uint8)
    peak, stop = [0], threading.Event()

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def sample_rss():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.01)

    before = rss()
    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    try:
        with checkpoint.open(url, "wb", storage_options=s3_options(s3_server.endpoint)) as f:
            f.write(data[:1000])
            f.write(data[1000:])  # one write of ~300 MiB, as torch.save hands over a big tensor
    finally:
        stop.set()
        sampler.join()
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    head = s3.head_object(Bucket=bucket, Key="large.bin")
    assert head["ContentLength"] == 300 << 20
    parts = int(head["ETag"].strip('"').rpartition("-")[2])  # a multipart upload's ETag ends in -<parts>
    assert parts >= 4
    assert peak[0] - before < 200 << 20  # not a copy of the whole object
    with checkpoint.open(url, "rb", storage_options=s3_options(s3_server.endpoint)) as f:
        f.seek(123 << 20)
        assert f.read(4 << 20) == data[123 << 20:127 << 20].tobytes()
        f.seek(-10, os.SEEK_END)
        assert f.read(100) == data[-10:].tobytes() and f.read(1) == b""
        with pytest.raises(ValueError, match="whence"):
            f.seek(0, 7)
    with pytest.raises(ValueError, match="closed checkpoint reader"):
        f.read(1)
