"""The `chute` tools: inspect, verify, cache ls|clear, bench — output and exit codes."""

import json
import os
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import chute
from object_store import create_s3_bucket, s3_options


def _options(endpoint):
    return s3_options(endpoint, timeout=20)


def _sample(i):
    return {"i": i, "x": np.arange(2000, dtype=np.int64) * i}


def _tokens(i):
    return np.arange(i, i + 100 + i % 7, dtype=np.uint16)


def chute_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "chute", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _flip_byte(path, offset):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0xFF
    open(path, "wb").write(data)


@pytest.fixture
def dataset(tmp_path):
    return chute.optimize(_sample, range(200), str(tmp_path / "ds"), chunk_size=20, num_parts=1, compression="zstd",
                          progress=False, num_workers=0)


def test_inspect(dataset, tmp_path):
    out = chute_cli("inspect", dataset)
    assert out.returncode == 0, out.stderr
    assert "chute dataset" in out.stdout and "samples      200" in out.stdout and "chunks       10" in out.stdout
    assert "zstd:3" in out.stdout and '"name": "x"' in out.stdout and "tokens" not in out.stdout
    info = json.loads(chute_cli("inspect", dataset, "--json").stdout)
    assert info["samples"] == 200 and info["chunks"] == 10 and info["tokens"] is None
    assert info["bytes"] == sum(os.path.getsize(os.path.join(dataset, f"chunk-00000-{c:06d}.bin")) for c in range(10))
    tokens = chute.optimize(_tokens, range(30), str(tmp_path / "tokens"), progress=False, num_workers=0)
    info = json.loads(chute_cli("inspect", tokens, "--json").stdout)
    assert info["tokens"] == sum(len(_tokens(i)) for i in range(30))
    missing = chute_cli("inspect", tmp_path / "nothing")
    assert missing.returncode == 1 and "no such dataset directory" in missing.stderr


def test_verify_names_each_damaged_chunk(dataset):
    good = chute_cli("verify", dataset)
    assert good.returncode == 0 and "10 chunks" in good.stdout and "verified" in good.stdout, good.stderr
    _flip_byte(os.path.join(dataset, "chunk-00000-000003.bin"), -5)
    os.remove(os.path.join(dataset, "chunk-00000-000007.bin"))
    bad = chute_cli("verify", dataset, "--workers", 3)
    assert bad.returncode == 1
    assert "chunk-00000-000003.bin" in bad.stderr and "checksum mismatch" in bad.stderr
    assert "chunk-00000-000007.bin" in bad.stderr and "missing" in bad.stderr
    assert "2 of 10 chunks" in bad.stderr
    assert chute_cli("verify").returncode == 2  # usage


def _remote_dataset(s3_server, n):
    """(bucket, url, -o flags) of a dataset of n samples in a new moto bucket."""
    bucket = f"c-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    options = _options(s3_server.endpoint)
    url = chute.optimize(_sample, range(n), f"s3://{bucket}/ds", chunk_size=20, num_parts=1, progress=False, num_workers=0,
                         storage_options=options)
    return bucket, url, [a for k, v in options.items() for a in ("-o", f"{k}={v}")]


def test_verify_reads_the_stored_objects(s3_server, tmp_path):
    import boto3

    bucket, url, flags = _remote_dataset(s3_server, 60)
    assert chute_cli("verify", url, *flags).returncode == 0
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    key = "ds/chunk-00000-000001.bin"
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[-100] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    bad = chute_cli("verify", url, *flags)
    assert bad.returncode == 1 and f"s3://{bucket}/ds/chunk-00000-000001.bin" in bad.stderr, bad.stderr
    assert chute_cli("inspect", url, "-o", "nonsense").returncode == 1


HOLD = textwrap.dedent("""
    import json, sys
    import chute
    ds = chute.StreamingDataset(sys.argv[1], storage_options=json.loads(sys.argv[2]), cache_dir=sys.argv[3])
    it = iter(ds)
    next(it)
    print("holding", flush=True)
    sys.stdin.read()
""")


def test_cache_ls_and_clear(s3_server, tmp_path):
    bucket = f"k-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    options = _options(s3_server.endpoint)
    urls = [chute.optimize(_sample, range(40), f"s3://{bucket}/{name}", chunk_size=20, num_parts=1, progress=False, num_workers=0,
                           storage_options=options) for name in ("a", "b")]
    cache = tmp_path / "cache"
    (cache / "not-a-cache").mkdir(parents=True)  # clearing never touches what is not chute's
    (cache / "not-a-cache" / "keep.txt").write_text("mine")
    for url in urls:
        assert len(list(chute.StreamingDataset(url, storage_options=options, cache_dir=str(cache)))) == 40
    listing = chute_cli("cache", "ls", "--cache-dir", cache)
    assert listing.returncode == 0
    lines = listing.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(urls) and all("2 chunks" in line for line in lines)

    holder = subprocess.Popen([sys.executable, "-c", HOLD, urls[0], json.dumps(options), str(cache)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        busy = chute_cli("cache", "clear", "--cache-dir", cache)
        assert busy.returncode == 1 and "in use by a running process" in busy.stderr
        assert f"removed {urls[1]}" in busy.stdout
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert chute_cli("cache", "clear", "--cache-dir", cache, "--dataset", urls[1]).returncode == 1  # gone already
    cleared = chute_cli("cache", "clear", "--cache-dir", cache, "--dataset", urls[0])
    assert cleared.returncode == 0 and f"removed {urls[0]}" in cleared.stdout
    assert chute_cli("cache", "ls", "--cache-dir", cache).stdout.strip().endswith("empty")
    assert (cache / "not-a-cache" / "keep.txt").read_text() == "mine"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"chute-{os.getuid()}-")]


def test_bench(dataset):
    out = chute_cli("bench", dataset, "--workers", 0, "--batch-size", 16, "--epochs", 2)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("200 samples") == 2 and "samples/s" in out.stdout


def test_inspect_and_verify_cache_nothing(s3_server, tmp_path):
    _, url, flags = _remote_dataset(s3_server, 40)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    for command in ("inspect", "verify"):
        out = subprocess.run([sys.executable, "-m", "chute", command, url, *flags], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0, out.stderr
    assert not (tmp_path / "xdg").exists()
