"""http:// and https:// objects: chute.Storage and StreamingRawDataset over
bench/s3_bench_server.py on 127.0.0.1, over TLS with a certificate made here."""

import datetime
import ipaddress

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import chute
from chute import _core
from test_object_store import _bench_server_module

N = 30
BIG = 2 * (8 << 20) + 12345  # past two 8 MiB parts: read as three ranges


def _payload(i: int) -> bytes:
    return (f"object {i} ".encode() * (40 + i))[: 200 + 11 * i]


def _big() -> bytes:
    return (np.arange(BIG // 4 + 1, dtype=np.uint32) * 2654435761).tobytes()[:BIG]  # every offset differs


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chute test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return str(d / "cert.pem"), str(d / "key.pem")


@pytest.fixture(scope="module")
def served(tmp_path_factory, certificate):
    """(https endpoint, http endpoint) serving files/obj/<i>.bin, files/big.bin and an
    index.csv of relative paths."""
    root = tmp_path_factory.mktemp("served")
    obj = root / "files" / "obj"
    obj.mkdir(parents=True)
    for i in range(N):
        (obj / f"{i:04d}.bin").write_bytes(_payload(i))
    (root / "files" / "big.bin").write_bytes(_big())
    rows = [f"{i},obj/{i:04d}.bin" for i in range(N)] + [f"{N},big.bin"]
    (root / "files" / "index.csv").write_text("id,url\n" + "\n".join(rows) + "\n")
    start = _bench_server_module().start
    servers = [start(str(root), first_byte_ms=0, mbps_per_connection=0, tls=certificate),
               start(str(root), first_byte_ms=0, mbps_per_connection=0)]
    yield tuple(endpoint for _, endpoint in servers)
    for server, _ in servers:
        server.shutdown()


def _expected(i):
    return _big() if i == N else _payload(i)


def test_https_index_file_with_relative_urls_and_a_large_object(served, certificate, tmp_path):
    https, _ = served
    options = {"ca_file": certificate[0]}
    ds = chute.StreamingRawDataset(f"{https}/files/index.csv", columns_to_download=["url"], index_col="id",
                                   storage_options=options, cache_dir=str(tmp_path / "cache"), shuffle=True)
    assert len(ds) == N + 1
    got = {s["id"]: s["url"] for s in ds}
    assert sorted(got) == list(range(N + 1))
    for i, data in got.items():
        assert data == _expected(i), i  # the large one assembled from its ranges in place
    # Random access: the large object read in ranges into memory.
    rows = {ds[k]["id"]: ds[k]["url"] for k in range(len(ds))}
    assert rows[N] == _big() and rows[3] == _payload(3)
    # The store itself: sizes by HEAD, ranged reads, no listing, no writes.
    store = _core.Storage.open(f"{https}/files", options)
    assert store.size("big.bin") == BIG
    assert store.read("big.bin") == _big()
    with pytest.raises(Exception, match="cannot be listed"):
        store.list("")
    with pytest.raises(Exception, match="read-only"):
        store.write("x.bin", b"x")


def test_http_text_file_of_urls(served, tmp_path):
    _, http = served
    paths = tmp_path / "paths.txt"
    paths.write_text("".join(f"{http}/files/obj/{i:04d}.bin\n" for i in range(N)))
    ds = chute.StreamingRawDataset(str(paths), cache_dir=str(tmp_path / "cache"))
    assert sorted(s["path"] for s in ds) == sorted(_payload(i) for i in range(N))
    with pytest.raises(Exception, match="cannot be listed"):
        chute.StreamingRawDataset(f"{http}/files/obj/", cache_dir=str(tmp_path / "cache"))


def test_https_errors_name_the_url_and_the_fix(served, certificate, tmp_path):
    https, _ = served
    index = tmp_path / "index.csv"
    index.write_text("url\n" + "".join(f"{https}/files/obj/{i:04d}.bin\n" for i in range(4)) +
                     f"{https}/files/obj/gone.bin\n")
    kwargs = dict(columns_to_download=["url"], cache_dir=str(tmp_path / "cache"))
    # A server certificate nobody said to trust.
    ds = chute.StreamingRawDataset(str(index), **kwargs)
    with pytest.raises(Exception, match=r"(?s)certificate not accepted.*ca_file"):
        ds[0]
    with pytest.raises(Exception, match=r"ca_file /nonexistent\.pem"):
        chute.StreamingRawDataset(str(index), storage_options={"ca_file": "/nonexistent.pem"}, **kwargs)[0]
    # A missing object: named with its row and URL; or skipped.
    options = {"ca_file": certificate[0]}
    ds = chute.StreamingRawDataset(str(index), storage_options=options, **kwargs)
    with pytest.raises(Exception, match=r"row 4 of .*column 'url'.*files/obj/gone\.bin.*no such object"):
        list(ds)
    ds = chute.StreamingRawDataset(str(index), storage_options=options, allow_missing=True, **kwargs)
    assert sorted(s["url"] for s in ds) == sorted(_payload(i) for i in range(4))
    assert ds.skipped == [4]


def test_an_index_mixing_stores_takes_options_per_scheme(served, certificate, s3_server, tmp_path):
    import boto3

    from object_store import create_s3_bucket, s3_options

    https, _ = served
    create_s3_bucket(s3_server.endpoint, "mixed")  # moto is shared by the session: a name of this test's
    boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").put_object(Bucket="mixed", Key="o.bin", Body=b"from s3")
    index = tmp_path / "index.csv"
    index.write_text(f"url\n{https}/files/obj/0003.bin\ns3://mixed/o.bin\n")
    ds = chute.StreamingRawDataset(str(index), columns_to_download=["url"], cache_dir=str(tmp_path / "cache"),
                                   storage_options={"https": {"ca_file": certificate[0]},
                                                    "s3": s3_options(s3_server.endpoint), "timeout": 30})
    assert sorted(s["url"] for s in ds) == sorted([_payload(3), b"from s3"])
    with pytest.raises(Exception, match=r"unknown storage option .* under its scheme, storage_options=\{\"s3\""):
        list(chute.StreamingRawDataset(str(index), columns_to_download=["url"], cache_dir=str(tmp_path / "c2"),
                                       storage_options={"ca_file": certificate[0], **s3_options(s3_server.endpoint)}))
