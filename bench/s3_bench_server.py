"""Read-only S3-compatible HTTP server over a local directory, simulating an object store.

For bench/compare_peers.py: ROOT/<bucket>/<key> is served path-style at http://HOST:PORT/<bucket>/<key>
to boto3 (litdata, Mosaic Streaming), obstore, Arrow's S3FileSystem (AWS SDK C++: chute) and plain
HTTP (curl). Each request waits --first-byte-ms before it is answered, then the body is streamed at
no more than --mbps-per-connection MB/s (10^6 bytes; 0 = unlimited), per connection, like a cloud
object store.

    python bench/s3_bench_server.py ROOT [--host 127.0.0.1] [--port 0] [--first-byte-ms 20] [--mbps-per-connection 100]

prints "listening http://HOST:PORT" once it accepts connections. In-process, from a daemon thread:

    server, endpoint_url = start(root, first_byte_ms=20, mbps_per_connection=100)
    server.shutdown()  # server.requests and server.bytes_served count what was served

Supported: GET/HEAD object (Range: bytes=a-b, a-, -n; If-Match), HEAD bucket, ListObjectsV2,
ListObjects v1 and GetBucketLocation. Authentication (SigV4) is ignored; writes get
403 AccessDenied. Keys with "." or ".." segments are rejected; symlinks under ROOT are followed.
"""

import argparse
import contextlib
import mimetypes
import os
import re
import sys
import threading
import time
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

PIECE = 256 * 1024  # pacing granularity
XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
UNSAFE = re.compile(r"(^|/)\.\.?(/|$)|\0")  # "." or ".." path segments, NUL


def _etag(st):
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # stable while the file is unchanged; not an MD5


def _iso(st):
    return datetime.fromtimestamp(st.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid delayed-ACK stalls

    def log_message(self, *args):
        pass

    def _send(self, status, headers=(), body=b"", length=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
            self.server.count(len(body))

    def _xml(self, text):
        self._send(200, [("Content-Type", "application/xml")], (XML + text).encode())

    def _error(self, status, code, message, resource="", headers=()):
        body = b"" if self.command == "HEAD" else (
            f"{XML}<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"<Resource>{escape(resource)}</Resource><RequestId>0</RequestId></Error>").encode()
        self._send(status, [("Content-Type", "application/xml"), *headers], body)

    def _begin(self):
        self.server.count(request=True)
        time.sleep(self.server.first_byte_s)

    def do_GET(self):
        self._begin()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = unquote(url.path)
        bucket, _, key = path.lstrip("/").partition("/")
        if not bucket:
            return self._error(501, "NotImplemented", "ListBuckets is not supported", path)
        bdir = os.path.join(self.server.root, bucket)
        if UNSAFE.search(bucket) or not os.path.isdir(bdir):
            return self._error(404, "NoSuchBucket", "The specified bucket does not exist", path)
        if not key:
            if self.command == "HEAD":
                return self._send(200, [("x-amz-bucket-region", "us-east-1")])
            if "location" in query:  # us-east-1 is reported as an empty constraint
                return self._xml(f"<LocationConstraint {NS}></LocationConstraint>")
            return self._list(bucket, bdir, query)
        if UNSAFE.search(key):
            return self._error(400, "InvalidArgument", "Key must not contain . or .. segments", path)
        file = os.path.join(bdir, key)
        if not os.path.isfile(file):  # "dir/" and "dir" are not objects either
            return self._error(404, "NoSuchKey", "The specified key does not exist.", path)
        with open(file, "rb") as f:
            self._object(f, key, path)

    do_HEAD = do_GET

    def _readonly(self):
        self._begin()
        self.close_connection = True  # the request body is never read
        self._error(403, "AccessDenied", "This server is read-only", self.path, [("Connection", "close")])

    do_PUT = do_POST = do_DELETE = do_PATCH = _readonly

    def _object(self, f, key, path):
        st = os.fstat(f.fileno())
        size, etag = st.st_size, _etag(st)
        headers = [("ETag", etag), ("Last-Modified", formatdate(st.st_mtime, usegmt=True)), ("Accept-Ranges", "bytes"),
                   ("Content-Type", mimetypes.guess_type(key)[0] or "application/octet-stream")]
        if self.headers.get("If-Match", "*").strip() not in ("*", etag):
            return self._error(412, "PreconditionFailed", "If-Match did not match the ETag", path)
        start, end, status = 0, size - 1, 200
        # Anything but one well-formed byte range is ignored, as RFC 9110 allows.
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if m and (m[1] or m[2]) and not (m[1] and m[2] and int(m[2]) < int(m[1])):
            if m[1]:
                start, end = int(m[1]), min(int(m[2]), size - 1) if m[2] else size - 1
            else:
                start = max(size - int(m[2]), 0) if int(m[2]) else size  # bytes=-0 is unsatisfiable
            if start >= size:
                return self._error(416, "InvalidRange", "The requested range is not satisfiable", path,
                                   [("Content-Range", f"bytes */{size}")])
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        self._send(status, headers, length=end + 1 - start)
        if self.command == "GET":
            self._stream(f, start, end + 1 - start)

    def _stream(self, f, offset, count):
        rate, deadline = self.server.rate, time.monotonic()
        while count > 0:
            n = min(PIECE, count) if rate else count
            if rate:  # wait before each piece, so that even a one-piece body takes size / rate
                deadline = max(deadline + n / rate, time.monotonic() - 0.05)  # slow readers bank no burst
                time.sleep(max(0.0, deadline - time.monotonic()))
            n = self.connection.sendfile(f, offset, n)
            if n == 0:  # the file shrank: drop the connection, the client sees a short body
                raise ConnectionAbortedError(f"{f.name} shrank while being served")
            offset, count = offset + n, count - n
            self.server.count(n)

    def _list(self, bucket, bdir, q):
        v2 = q.get("list-type") == "2"
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = min(int(q.get("max-keys") or 1000), 1000)
        marker = (q.get("continuation-token") or q.get("start-after", "")) if v2 else q.get("marker", "")
        if UNSAFE.search(prefix.rpartition("/")[0]):
            return self._error(400, "InvalidArgument", "Prefix must not contain . or .. segments", bucket)
        keys = []
        for d, _, files in os.walk(os.path.join(bdir, prefix.rpartition("/")[0]), followlinks=True):
            rel = os.path.relpath(d, bdir).replace(os.sep, "/")
            keys += [k for k in ((n if rel == "." else f"{rel}/{n}") for n in files) if k.startswith(prefix)]
        contents, prefixes, last, truncated = [], [], None, False
        for key in sorted(keys):  # code point order == S3's UTF-8 byte order
            i = key.find(delim, len(prefix)) if delim else -1
            entry = key[: i + len(delim)] if i >= 0 else key
            # A continuation token is the last key or common prefix returned; skip past either.
            if key <= marker or entry == marker or entry == last:
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            (prefixes if i >= 0 else contents).append(entry)
            last = entry
        items = "".join(f"<Contents><Key>{escape(k)}</Key><LastModified>{_iso(st)}</LastModified>"
                        f"<ETag>{_etag(st)}</ETag><Size>{st.st_size}</Size>"
                        f"<StorageClass>STANDARD</StorageClass></Contents>"
                        for k, st in ((k, os.stat(os.path.join(bdir, k))) for k in contents))
        items += "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
        tags = {"Name": bucket, "Prefix": prefix, "Delimiter": delim or None, "MaxKeys": max_keys,
                "IsTruncated": str(truncated).lower()}
        if v2:
            tags.update(KeyCount=len(contents) + len(prefixes), StartAfter=q.get("start-after"),
                        ContinuationToken=q.get("continuation-token"))
        else:
            tags["Marker"] = marker
        tags["NextContinuationToken" if v2 else "NextMarker"] = last if truncated else None
        head = "".join(f"<{t}>{escape(str(v))}</{t}>" for t, v in tags.items() if v is not None)
        self._xml(f"<ListBucketResult {NS}>{head}{items}</ListBucketResult>")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once

    def __init__(self, address, root, first_byte_ms=20, mbps_per_connection=100):
        super().__init__(address, Handler)
        self.root = os.path.abspath(root)
        self.first_byte_s = first_byte_ms / 1e3
        self.rate = mbps_per_connection * 1e6  # bytes/s; 0 = unlimited
        self.requests = self.bytes_served = 0
        self._lock = threading.Lock()

    def count(self, nbytes=0, request=False):
        with self._lock:
            self.requests += request
            self.bytes_served += nbytes

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # clients hang up
            super().handle_error(request, client_address)

    def shutdown(self):
        super().shutdown()
        self.server_close()


def start(root, first_byte_ms=20, mbps_per_connection=100, host="127.0.0.1", port=0):
    """Serve root in a daemon thread; return (server, endpoint_url). server.shutdown() stops it."""
    server = Server((host, port), root, first_byte_ms, mbps_per_connection)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def case_arguments(parser, default_dir):
    """The arguments of a bench made of cases run by run_cases (samples of bytes read in
    batches by DataLoader workers, --python, and the hidden --run CASE)."""
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--sample-kb", type=int, default=110)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", default=default_dir)
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the cases (another chute)")
    parser.add_argument("--run", help=argparse.SUPPRESS)


def run_cases(script, cases, root, first_byte_ms, mbps_per_connection, python=sys.executable):
    """Runs `python script <this process's arguments> --run CASE` for each case (a case may
    come several times), each in its own process, while `root` is served (the process
    reads it as s3://<bucket>/... through AWS_ENDPOINT_URL); returns {case: [the JSON of
    its last output line, per run]}."""
    import json
    import subprocess

    server, endpoint = start(root, first_byte_ms, mbps_per_connection)
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1")
    results = {}
    try:
        for case in cases:
            proc = subprocess.run([python, os.path.abspath(script), *sys.argv[1:], "--run", case], capture_output=True,
                                  text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"{case}: failed\n{proc.stderr[-3000:]}")
            results.setdefault(case, []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        server.shutdown()
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--first-byte-ms", type=float, default=20)
    p.add_argument("--mbps-per-connection", type=float, default=100, help="MB/s (10^6 bytes); 0 = unlimited")
    args = p.parse_args()
    if not os.path.isdir(args.root):
        p.error(f"not a directory: {args.root}")
    server = Server((args.host, args.port), args.root, args.first_byte_ms, args.mbps_per_connection)
    print(f"listening http://{args.host}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
