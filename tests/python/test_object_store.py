"""Datasets in S3 (moto server) and GCS (gcp-storage-emulator) on 127.0.0.1."""

import io
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import types
import uuid

import numpy as np
import pytest
from torch.utils.data import DataLoader

import chute
from conftest import assert_same
from object_store import TcpProxy, create_gcs_bucket, create_s3_bucket, s3_options


def _sample(i):
    return {"i": i, "x": np.arange(i % 50, dtype=np.float32), "b": bytes([i % 256]) * 300}


@pytest.fixture(scope="module")
def s3_bucket(s3_server):
    name = f"b-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, name)
    return name


@pytest.fixture(scope="module")
def gcs_bucket(gcs_server):
    name = f"g-{uuid.uuid4().hex[:12]}"
    create_gcs_bucket(gcs_server.endpoint, name)
    return name


@pytest.fixture(scope="module")
def s3_dataset(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/ds"
    chute.optimize(_sample, range(400), url, chunk_size=10, compression="zstd", progress=False, num_workers=2,
                   storage_options=s3_options(s3_server.endpoint))
    return url


@pytest.mark.parametrize("store", ["s3", "gs"])
def test_optimize_to_the_store_and_stream_back(request, store, tmp_path):
    if store == "s3":
        server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
        options = s3_options(server.endpoint)
    else:
        server, bucket = request.getfixturevalue("gcs_server"), request.getfixturevalue("gcs_bucket")
        options = {"endpoint_url": server.endpoint}
    url = f"{store}://{bucket}/roundtrip"
    chute.optimize(_sample, range(120), url, chunk_bytes="4KB", progress=False, num_workers=0, storage_options=options)
    local = chute.optimize(_sample, range(120), str(tmp_path / "local"), chunk_bytes="4KB", progress=False,
                           num_workers=0)
    ds = chute.StreamingDataset(url, storage_options=options, part_size="4KiB")
    assert len(ds) == 120 and len(ds.core.chunks) > 10
    assert ds.core.fingerprint == chute.StreamingDataset(local).core.fingerprint  # identical bytes
    for i in (0, 77, 119, -1):
        assert_same(ds[i], _sample(i % 120))
    for i, sample in enumerate(ds):
        assert_same(sample, _sample(i))
    loader = DataLoader(chute.StreamingDataset(url, storage_options=options, shuffle=True), batch_size=None,
                        num_workers=2, collate_fn=lambda s: s)
    assert sorted(s["i"] for s in loader) == list(range(120))


def test_environment_configures_the_clients(s3_server, s3_dataset, gcs_server, gcs_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert chute.StreamingDataset(s3_dataset)[5]["i"] == 5
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    url = f"gs://{gcs_bucket}/env"
    chute.optimize(_sample, range(10), url, progress=False, num_workers=0)
    assert chute.StreamingDataset(url)[9]["i"] == 9


def test_missing_bucket_index_and_wrong_endpoint(s3_server, s3_bucket):
    opts = s3_options(s3_server.endpoint, timeout=5)
    with pytest.raises(FileNotFoundError, match=r"s3://no-such-bucket-x/ds/index.json.*not found"):
        chute.StreamingDataset("s3://no-such-bucket-x/ds", storage_options=opts)
    with pytest.raises(FileNotFoundError, match=rf"s3://{s3_bucket}/nothing-here/index.json does not exist"):
        chute.StreamingDataset(f"s3://{s3_bucket}/nothing-here", storage_options=opts)
    from object_store import free_port

    wrong = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OSError, match=rf"failed after .* attempt.*is the endpoint {wrong} reachable"):
        chute.StreamingDataset(f"s3://{s3_bucket}/ds", storage_options=s3_options(wrong, timeout=3))
    # status-code-like digits in a name are not read as "access denied" / "not found"
    with pytest.raises(OSError, match=rf"failed after .* attempt.*is the endpoint {wrong} reachable"):
        chute.StreamingDataset("s3://data-401-403-404/ds", storage_options=s3_options(wrong, timeout=2))
    with pytest.raises(ValueError, match="unknown storage option 'endpoint'.*endpoint_url"):
        chute.StreamingDataset(f"s3://{s3_bucket}/ds", storage_options={"endpoint": "x"})
    with pytest.raises(ValueError, match="unsupported URL scheme 'hdfs://'"):
        chute.StreamingDataset("hdfs://x/y")


def test_stopped_server_mid_epoch_raises_then_recovers(s3_server, s3_dataset):
    proxy = TcpProxy(s3_server.port).start()
    opts = s3_options(proxy.endpoint, timeout=3, max_attempts=100)
    ds = chute.StreamingDataset(s3_dataset, storage_options=opts, part_size="4KiB", max_concurrency=2)
    seen, error = [], []

    def read():
        try:
            for sample in ds:
                seen.append(sample["i"])
                if len(seen) == 25:
                    proxy.stop()
        except Exception as e:  # noqa: BLE001 -- the test inspects it
            error.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(120)  # liveness bound, far above timeout=3: the iterator must not hang
    assert not t.is_alive(), "iteration hung after the server went away"
    assert error and isinstance(error[0], OSError), error
    assert "s3://" in str(error[0]) and "timeout" in str(error[0])
    assert 25 <= len(seen) < 400

    proxy.start()
    try:
        assert sorted(s["i"] for s in chute.StreamingDataset(s3_dataset, storage_options=opts)) == list(range(400))
    finally:
        proxy.stop()


def test_forked_workers_and_prompt_exit(s3_server, s3_dataset):
    script = textwrap.dedent(f"""
        import sys, time
        import chute
        from torch.utils.data import DataLoader
        ds = chute.StreamingDataset({s3_dataset!r}, storage_options={s3_options(s3_server.endpoint)!r}, shuffle=True)
        assert len(ds) == 400 and ds[0]["i"] == 0     # the parent uses the dataset before forking
        for _ in range(2):
            loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda s: s)
            assert sorted(s["i"] for s in loader) == list(range(400))
        print("done", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    done_at = time.monotonic()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the process did not exit after its last epoch")
    assert line.strip() == "done", proc.stderr.read()
    assert proc.returncode == 0, proc.stderr.read()
    assert time.monotonic() - done_at < 30, "exit took too long"


def test_bench_read_accepts_urls(s3_server, s3_dataset):
    import shutil

    env = dict(os.environ, AWS_ENDPOINT_URL=s3_server.endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    out = subprocess.run([shutil.which("chute_bench_read"), s3_dataset, "2", "--concurrency", "4", "--part-size",
                          "65536"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fields = dict(kv.split("=", 1) for kv in out.stdout.split())
    assert int(fields["items"]) == 400


BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


def _bench_server_module():
    sys.path.insert(0, BENCH)
    try:
        import s3_bench_server
    finally:
        sys.path.remove(BENCH)
    return s3_bench_server


def test_bench_s3_server_serves_a_dataset(make_dataset, tmp_path):
    # bench/s3_bench_server.py (the simulated cloud store of compare_peers.py) is an S3
    # endpoint chute reads like any other: ranged GETs, HEADs, with its latency.
    start = _bench_server_module().start
    make_dataset(_sample, range(120), "bucket/ds", chunk_bytes="8KB")
    server, endpoint = start(str(tmp_path), first_byte_ms=5, mbps_per_connection=0)
    try:
        ds = chute.StreamingDataset("s3://bucket/ds", storage_options=s3_options(endpoint),
                                    cache_dir=str(tmp_path / "cache"), shuffle=True)
        got = sorted(ds, key=lambda s: s["i"])
        for i, sample in enumerate(got):
            assert_same(sample, _sample(i))
        assert_same(ds[77], _sample(77))
        assert server.requests > 0 and server.bytes_served > 0
    finally:
        server.shutdown()


def test_plain_http_s3_reads_are_signed_like_botocore_on_one_connection(make_dataset, tmp_path):
    """s3:// at a plain-http endpoint with static credentials is read by chute's own HTTP
    client (cpp/src/storage/s3_http.h), not the AWS SDK: every request carries the SigV4
    signature botocore computes for it (session token, another region, a key that needs
    URI encoding), and one reader's requests share one kept-alive connection."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    bench = _bench_server_module()
    seen = []  # (method, path, headers, client port) of each request

    class Recording(bench.Handler):
        def do_GET(self):
            seen.append((self.command, self.path, dict(self.headers), self.client_address[1]))
            super().do_GET()

        do_HEAD = do_GET

    make_dataset(_sample, range(60), "bucket/a dir+/ds", chunk_bytes="8KB")
    server = bench.Server(("127.0.0.1", 0), str(tmp_path), first_byte_ms=0, mbps_per_connection=0)
    server.RequestHandlerClass = Recording
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    key, secret, token, region = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok/en+==", "eu-west-3"
    try:
        ds = chute.StreamingDataset("s3://bucket/a dir+/ds", cache_dir=str(tmp_path / "cache"), storage_options={
            "endpoint_url": endpoint, "access_key_id": key, "secret_access_key": secret, "session_token": token,
            "region": region})
        for i in (0, 17, 59, 18):
            assert_same(ds[i], _sample(i))
        signed = len(seen)
        anonymous = chute.StreamingDataset("s3://bucket/a dir+/ds", cache_dir=str(tmp_path / "cache"),
                                           storage_options={"endpoint_url": endpoint, "anonymous": True})
        assert_same(anonymous[5], _sample(5))
    finally:
        server.shutdown()

    assert signed >= 5 and all(method == "GET" for method, *_ in seen)  # index.json, tables, items
    assert all(path.startswith("/bucket/a%20dir%2B/ds/") for _, path, *_ in seen)
    assert {port for *_, port in seen[:signed]} == {seen[0][3]}  # one kept-alive connection
    auth = S3SigV4Auth(Credentials(key, secret, token), "s3", region)
    for _, path, headers, _ in seen[:signed]:
        assert "User-Agent" not in headers  # not the AWS SDK
        request = AWSRequest(method="GET", url=endpoint + path,
                             headers={k: v for k, v in headers.items() if k != "Authorization"})
        request.context["timestamp"] = headers["x-amz-date"]
        canonical = auth.canonical_request(request)
        expected = (f"AWS4-HMAC-SHA256 Credential={key}/{headers['x-amz-date'][:8]}/{region}/s3/aws4_request, "
                    f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, "
                    f"Signature={auth.signature(auth.string_to_sign(request, canonical), request)}")
        assert headers["Authorization"] == expected, canonical
    assert all("Authorization" not in headers for _, _, headers, _ in seen[signed:])


def test_bench_s3_server_takes_uploads(tmp_path):
    """The bench server's writes: a chute checkpoint (a multipart upload from the AWS SDK,
    aws-chunked inside chunked transfer) and boto3's put and multipart upload; objects
    appear whole on completion, ranged reads cross part boundaries, deletes remove."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    bench = _bench_server_module()
    os.makedirs(tmp_path / "bkt")
    server, endpoint = bench.start(str(tmp_path), first_byte_ms=0, mbps_per_connection=0, writable=True)
    try:
        options = s3_options(endpoint)
        data = os.urandom(23 << 20)
        with chute.checkpoint.open("s3://bkt/ck/state.pt", "wb", storage_options=options) as f:
            f.write(data[:5]), f.write(data[5:])
        with chute.checkpoint.open("s3://bkt/ck/state.pt", "rb", storage_options=options, part_size="3MiB") as f:
            assert f.read() == data
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
        s3.put_object(Bucket="bkt", Key="small", Body=b"hello")
        assert s3.get_object(Bucket="bkt", Key="small")["Body"].read() == b"hello"
        s3.upload_fileobj(io.BytesIO(data), "bkt", "multi", Config=TransferConfig(multipart_threshold=5 << 20,
                                                                                  multipart_chunksize=5 << 20))
        ranged = s3.get_object(Bucket="bkt", Key="multi", Range=f"bytes={(5 << 20) - 7}-{(10 << 20) + 2}")
        assert ranged["Body"].read() == data[(5 << 20) - 7:(10 << 20) + 3]
        listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]}
        assert listed == {"ck/state.pt": len(data), "small": 5, "multi": len(data)}
        chute._core.Storage.open("s3://bkt/ck", options).delete("state.pt")  # Arrow also PUTs a "ck/" marker
        for key in ("small", "multi"):
            s3.delete_object(Bucket="bkt", Key=key)
        assert "Contents" not in s3.list_objects_v2(Bucket="bkt")
        with pytest.raises(Exception, match="AccessDenied"):  # read-only unless started writable
            readonly, readonly_endpoint = bench.start(str(tmp_path), first_byte_ms=0, mbps_per_connection=0)
            try:
                boto3.client("s3", endpoint_url=readonly_endpoint, aws_access_key_id="testing",
                             aws_secret_access_key="testing", region_name="us-east-1").put_object(
                                 Bucket="bkt", Key="x", Body=b"x")
            finally:
                readonly.shutdown()
    finally:
        server.shutdown()
    assert not os.path.exists(tmp_path / ".multipart-uploads")  # parts go with the server


@pytest.mark.parametrize("framing", ["length", "chunked", "aws", "aws-in-chunked", "cut"])
def test_bench_s3_server_reads_request_bodies_to_their_end(framing):
    """Each framing is decoded and read exactly to its end (the next request on the
    connection starts right after); a body cut short is an error, never a short object."""
    bench = _bench_server_module()
    payload = os.urandom(70_000)

    def framed(data, size):
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        return b"".join(b"%x;chunk-signature=ab\r\n%s\r\n" % (len(p), p) for p in pieces) + \
            b"0\r\nx-amz-checksum-crc64nvme:AAAA\r\n\r\n"

    headers = {}
    if framing in ("length", "cut"):
        body = payload
        headers["Content-Length"] = str(len(payload) + 10 * (framing == "cut"))
    elif framing == "chunked":
        body, headers["Transfer-Encoding"] = framed(payload, 30_000), "chunked"
    else:
        body, headers["Content-Encoding"] = framed(payload, 65_536), "aws-chunked"
        if framing == "aws-in-chunked":
            body, headers["Transfer-Encoding"] = framed(body, 40_000), "chunked"
        else:
            headers["Content-Length"] = str(len(body))
    after = b"" if framing == "cut" else b"GET /next HTTP/1.1\r\n"
    handler = types.SimpleNamespace(headers=headers, rfile=io.BufferedReader(io.BytesIO(body + after)),
                                    server=types.SimpleNamespace(rate=0))
    if framing == "cut":
        with pytest.raises(ConnectionAbortedError):
            b"".join(bench._Body(handler).pieces())
        return
    assert b"".join(bench._Body(handler).pieces()) == payload
    assert handler.rfile.read() == after


def test_checkpoint_bench_smoke(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(BENCH, "checkpoint_bench.py"), "--size-mb", "24",
                          "--tensors", "4", "--cases", "chute", "torch.save+boto3", "--dir", str(tmp_path / "store")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^chute +[\d.]+ +[\d.]+ +[\d.]+", out.stdout, re.M), out.stdout
    assert re.search(r"^chute load: [\d.]+x the fastest peer \(torch.save\+boto3\)", out.stdout, re.M), out.stdout


def test_compare_peers_bytes_from_s3_smoke(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(BENCH, "compare_peers.py"), "bytes", "--source", "s3",
                          "--libs", "chute", "chute-threads", "--samples", "300", "--sample-kb", "20",
                          "--batch", "16", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for lib in ("chute", "chute-threads"):
        assert re.search(rf"^{lib} +epoch 2: +[\d,]+ samples/s", out.stdout, re.M), out.stdout + out.stderr[-3000:]
    assert "S3 bench server:" in out.stdout


def test_raw_objects_bench_smoke(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(BENCH, "raw_objects_bench.py"), "--samples", "80",
                          "--sample-kb", "20", "--keys", "2500", "--cases", "chute", "boto3-map", "list-chute",
                          "list-boto3", "--dir", str(tmp_path / "store")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^chute +[\d.]+ +\d+ +\d+ +[\d.]+$", out.stdout, re.M), out.stdout
    assert re.search(r"^chute epoch 1: [\d.]+x the best peer \(boto3-map\)", out.stdout, re.M), out.stdout
    assert re.search(r"^listing 2500 keys: chute [\d.]+ s", out.stdout, re.M), out.stdout


def test_decode_bench_smoke(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(BENCH, "decode_bench.py"), "--samples", "96", "--batch", "16",
                          "--limit-seconds", "0.5", "--cases", "limit", "chute", "chute+PIL", "--dir",
                          str(tmp_path / "data")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^machine limit .*: \d+ images/s", out.stdout, re.M), out.stdout
    assert re.search(r"^chute preset: [\d.]+x the best PIL transform \(chute\+PIL\)", out.stdout, re.M), out.stdout
