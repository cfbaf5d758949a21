"""S3-compatible HTTP server over a local directory, simulating an object store.

For bench/compare_peers.py: ROOT/<bucket>/<key> is served path-style at http://HOST:PORT/<bucket>/<key>
to boto3 (litdata, Mosaic Streaming), obstore, Arrow's S3FileSystem (AWS SDK C++: chute) and plain
HTTP (curl). Each request waits --first-byte-ms before it is answered; bodies are streamed (and
request bodies read) at no more than --mbps-per-connection MB/s (10^6 bytes; 0 = unlimited), per
connection, like a cloud object store.

    python bench/s3_bench_server.py ROOT [--host 127.0.0.1] [--port 0] [--first-byte-ms 20] [--mbps-per-connection 100]

prints "listening http://HOST:PORT" once it accepts connections. In-process, from a daemon thread:

    server, endpoint_url = start(root, first_byte_ms=20, mbps_per_connection=100)
    server.shutdown()  # server.requests and server.bytes_served count what was served

Supported: GET/HEAD object (Range: bytes=a-b, a-, -n; If-Match), HEAD bucket, ListObjectsV2,
ListObjects v1 and GetBucketLocation; with --writable (start(..., writable=True)) also
PutObject, DeleteObject and multipart uploads (create, upload part, complete, abort), whose
bodies may be HTTP chunked, aws-chunked or both (streaming checksums and signatures are
accepted unchecked); without it writes get 403 AccessDenied. An object appears when its
upload completes. An object of a multipart upload is served from its parts and lives as long
as the server (stopping removes it). Authentication (SigV4) is ignored. Keys with "." or ".."
segments are rejected; symlinks under ROOT are followed.
"""

import argparse
import bisect
import contextlib
import mimetypes
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

PIECE = 256 * 1024  # pacing granularity
XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
UNSAFE = re.compile(r"(^|/)\.\.?(/|$)|\0")  # "." or ".." path segments, NUL
UPLOADS = ".multipart-uploads"  # under ROOT; not a valid bucket name


class _Pace:
    """Holds a connection to `rate` bytes/s: wait(n) before moving each piece of n bytes, so
    that even a one-piece body takes size / rate; a slow peer banks no burst."""

    def __init__(self, rate):
        self.rate, self.deadline = rate, time.monotonic()

    def wait(self, n):
        if self.rate:
            self.deadline = max(self.deadline + n / self.rate, time.monotonic() - 0.05)
            time.sleep(max(0.0, self.deadline - time.monotonic()))


def _chunk_size(line):
    if not line:
        raise ConnectionAbortedError("the request body ended early")
    return int(line.split(b";")[0].strip() or b"0", 16)


def _framed(src):
    """The data of a framed body ("<hex size>[;extensions]\r\n<data>\r\n" ... "0\r\n
    <trailers>\r\n": HTTP chunked and aws-chunked alike) read from src (readline, read),
    in pieces of at most PIECE bytes."""
    while (size := _chunk_size(src.readline(4096))) > 0:
        while size:
            data = src.read(min(size, PIECE))
            if not data:
                raise ConnectionAbortedError("the request body ended early")
            size -= len(data)
            yield data
        src.readline(16)  # the CRLF after the data
    while src.readline(4096).strip():  # trailers, up to the empty line
        pass


class _Dechunked:
    """readline / read over the data of an HTTP chunked body (for an aws-chunked body sent
    with chunked transfer)."""

    def __init__(self, rfile):
        self.chunks, self.data, self.at = _framed(rfile), b"", 0

    def _more(self):
        if self.at == len(self.data):
            self.data, self.at = next(self.chunks, b""), 0
        return self.at < len(self.data)

    def read(self, n):
        if not self._more():
            return b""
        out = self.data[self.at:self.at + n]
        self.at += len(out)
        return out

    def finish(self):
        """Reads the rest of the chunked body, which must hold no more data."""
        if self._more() or next(self.chunks, None) is not None:
            raise ConnectionAbortedError("data after the end of an aws-chunked body")

    def readline(self, limit):
        line = b""
        while not line.endswith(b"\n") and len(line) < limit and self._more():
            end = self.data.find(b"\n", self.at, self.at + limit - len(line))
            end = min(len(self.data), self.at + limit - len(line)) if end < 0 else end + 1
            line += self.data[self.at:end]
            self.at = end
        return line


class _Body:
    """A request body read at the connection's pace: Content-Length bytes as they are,
    HTTP chunked, aws-chunked, or aws-chunked inside HTTP chunked (signatures and checksums
    are not checked)."""

    def __init__(self, handler):
        headers = handler.headers
        self.rfile, self.pace = handler.rfile, _Pace(handler.server.rate)
        self.length = int(headers.get("Content-Length") or 0)
        self.http_chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.aws_chunked = ("aws-chunked" in headers.get("Content-Encoding", "")
                            or headers.get("x-amz-content-sha256", "").startswith("STREAMING-"))

    def pieces(self):
        """The decoded body, in pieces of at most PIECE bytes."""
        if self.aws_chunked and self.http_chunked:
            outer = _Dechunked(self.rfile)
            yield from self._paced(_framed(outer))
            outer.finish()
        elif self.aws_chunked or self.http_chunked:
            yield from self._paced(_framed(self.rfile))
        else:
            for offset in range(0, self.length, PIECE):
                data = self.rfile.read(min(PIECE, self.length - offset))
                if len(data) != min(PIECE, self.length - offset):
                    raise ConnectionAbortedError("the request body ended early")
                self.pace.wait(len(data))
                yield data

    def _paced(self, pieces):
        for data in pieces:
            self.pace.wait(len(data))
            yield data


def _etag(st):
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'  # stable while the file is unchanged; not an MD5


def _iso(st):
    return datetime.fromtimestamp(st.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid delayed-ACK stalls
    rbufsize = PIECE  # framed request bodies are parsed line by line: few large recv()s

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
        if UNSAFE.search(bucket) or bucket == UPLOADS or not os.path.isdir(bdir):
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
        with contextlib.ExitStack() as files:
            try:
                f, parts = self.server.open_object(file, files)
            except FileNotFoundError:  # deleted meanwhile
                return self._error(404, "NoSuchKey", "The specified key does not exist.", path)
            self._object(f, key, path, parts)

    do_HEAD = do_GET

    def _target(self):
        """(bucket directory, key, query, path) of a write, or None once an error is sent."""
        self._begin()
        if not self.server.writable:
            self.close_connection = True  # the request body is never read
            return self._error(403, "AccessDenied", "This server is read-only (start it writable)", self.path,
                               [("Connection", "close")])
        if "x-amz-copy-source" in self.headers:
            self.close_connection = True
            return self._error(501, "NotImplemented", "CopyObject is not supported", self.path)
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = unquote(url.path)
        bucket, _, key = path.lstrip("/").partition("/")
        bdir = os.path.join(self.server.root, bucket)
        if UNSAFE.search(bucket) or bucket == UPLOADS or not bucket or not os.path.isdir(bdir):
            self.close_connection = True  # the body is not read
            return self._error(404, "NoSuchBucket", "The specified bucket does not exist", path)
        if key.endswith("/") and self.command == "PUT" and self.headers.get("Content-Length") == "0":
            return self._send(200, [("ETag", '"d41d8cd98f00b204e9800998ecf8427e"')])  # a "directory" marker: no-op
        if not key or key.endswith("/") or UNSAFE.search(key):
            self.close_connection = True
            return self._error(400, "InvalidArgument", "Key must be a file name without . or .. segments", path)
        return bdir, key, query, path

    def _upload_dir(self, query, path):
        upload = query.get("uploadId", "")
        folder = os.path.join(self.server.uploads, upload)
        if not re.fullmatch(r"[0-9a-f]{32}", upload) or not os.path.isdir(folder):
            self.close_connection = True
            self._error(404, "NoSuchUpload", "The specified upload does not exist", path)
            return None
        return folder

    def _receive(self, file, part=False):
        """The request body into a new file (written aside, then moved into place); its ETag."""
        with tempfile.NamedTemporaryFile(dir=self.server.uploads, delete=False) as f:
            try:
                for piece in _Body(self).pieces():
                    f.write(piece)
            except BaseException:
                os.remove(f.name)
                raise
        if part:
            os.replace(f.name, file)
        else:
            os.makedirs(os.path.dirname(file), exist_ok=True)
            self.server.replace(file, f.name)
        return _etag(os.stat(file))

    def do_PUT(self):
        if not (target := self._target()):
            return
        bdir, key, query, path = target
        if "partNumber" in query:
            if not (folder := self._upload_dir(query, path)):
                return
            etag = self._receive(os.path.join(folder, f"{int(query['partNumber']):05d}"), part=True)
        else:
            etag = self._receive(os.path.join(bdir, key))
        self._send(200, [("ETag", etag)])

    def do_POST(self):
        if not (target := self._target()):
            return
        bdir, key, query, path = target
        if "uploads" in query:
            upload = uuid.uuid4().hex
            os.mkdir(os.path.join(self.server.uploads, upload))
            return self._xml(f"<InitiateMultipartUploadResult {NS}><Bucket>{escape(os.path.basename(bdir))}</Bucket>"
                             f"<Key>{escape(key)}</Key><UploadId>{upload}</UploadId></InitiateMultipartUploadResult>")
        if not (folder := self._upload_dir(query, path)):
            return
        listed = b"".join(_Body(self).pieces()).decode()
        numbers = [int(n) for n in re.findall(r"<PartNumber>\s*(\d+)\s*</PartNumber>", listed)]
        parts = [os.path.join(folder, f"{n:05d}") for n in numbers]
        if not parts or numbers != sorted(set(numbers)) or not all(map(os.path.isfile, parts)):
            return self._error(400, "InvalidPart", "The parts listed are missing or out of order", path)
        # The object is its parts, served in order (copying them together would cost the
        # client a second upload's time); a sparse file of its size stands in for listings.
        file = os.path.join(bdir, key)
        os.makedirs(os.path.dirname(file), exist_ok=True)
        composed = folder + ".object"
        os.rename(folder, composed)
        with tempfile.NamedTemporaryFile(dir=self.server.uploads, delete=False) as out:
            out.truncate(sum(os.path.getsize(os.path.join(composed, f"{n:05d}")) for n in numbers))
        self.server.replace(file, out.name, [os.path.join(composed, f"{n:05d}") for n in numbers])
        self._xml(f"<CompleteMultipartUploadResult {NS}><Bucket>{escape(os.path.basename(bdir))}</Bucket>"
                  f"<Key>{escape(key)}</Key><ETag>{_etag(os.stat(file))}</ETag></CompleteMultipartUploadResult>")

    def do_DELETE(self):
        if not (target := self._target()):
            return
        bdir, key, query, path = target
        if "uploadId" in query:
            if not (folder := self._upload_dir(query, path)):
                return
            shutil.rmtree(folder)
        else:
            self.server.replace(os.path.join(bdir, key), None)
        self._send(204)

    def _object(self, f, key, path, parts):
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
        if self.command != "GET":
            return
        pace = _Pace(self.server.rate)
        if not parts:
            return self._stream(f, start, end + 1 - start, pace)
        for part in parts:  # a completed multipart upload: the range across its parts
            size = os.fstat(part.fileno()).st_size
            if start < size and end >= 0:
                self._stream(part, start, min(end + 1, size) - start, pace)
            start, end = max(start - size, 0), end - size

    def _stream(self, f, offset, count, pace):
        while count > 0:
            n = min(PIECE, count) if pace.rate else count
            pace.wait(n)
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
        keys, entries = self.server.keys(bdir)  # sorted: code point order == S3's UTF-8 byte order
        contents, prefixes, last, truncated = [], [], None, False
        for k in range(max(bisect.bisect_left(keys, prefix), bisect.bisect_right(keys, marker)), len(keys)):
            key = keys[k]
            if not key.startswith(prefix):
                break
            i = key.find(delim, len(prefix)) if delim else -1
            entry = key[: i + len(delim)] if i >= 0 else key
            # A continuation token is the last key or common prefix returned; skip past either.
            if entry == marker or entry == last:
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            (prefixes if i >= 0 else contents).append(entry)
            last = entry
        items = "".join(entries[k] for k in contents)
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

    def __init__(self, address, root, first_byte_ms=20, mbps_per_connection=100, writable=False, tls=None,
                 reuse_port=False):
        self.allow_reuse_port = reuse_port  # several processes serving one port (read-only)
        super().__init__(address, Handler)
        self.helpers = []  # the other processes serving the port (start(processes=...))
        if tls:  # (certificate file, key file): https; each handshake in its connection's thread
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.root = os.path.abspath(root)
        self.first_byte_s = first_byte_ms / 1e3
        self.rate = mbps_per_connection * 1e6  # bytes/s; 0 = unlimited
        self.writable = writable
        self.uploads = os.path.join(self.root, UPLOADS)  # beside the buckets: renames stay on one file system
        if writable:
            os.makedirs(self.uploads, exist_ok=True)
        self._composed = {}  # object file -> its parts, for objects of multipart uploads
        self._keys = {}  # bucket directory -> (its keys sorted, their listing entries), until a write
        self.requests = self.bytes_served = 0
        self._lock = threading.Lock()

    def keys(self, bdir):
        """The keys of the bucket at `bdir`, sorted, and the <Contents> entry of each; listed
        once, again after a write (a page of a listing is then a bisection and a join, not a
        walk of the bucket and a stat per key)."""
        with self._lock:
            listing = self._keys.get(bdir)
        if listing is None:
            entries = {}
            for d, _, files in os.walk(bdir, followlinks=True):
                rel = os.path.relpath(d, bdir).replace(os.sep, "/")
                for n in files:
                    k = n if rel == "." else f"{rel}/{n}"
                    st = os.stat(os.path.join(d, n))
                    entries[k] = (f"<Contents><Key>{escape(k)}</Key><LastModified>{_iso(st)}</LastModified>"
                                  f"<ETag>{_etag(st)}</ETag><Size>{st.st_size}</Size>"
                                  f"<StorageClass>STANDARD</StorageClass></Contents>")
            listing = sorted(entries), entries
            with self._lock:
                self._keys[bdir] = listing
        return listing

    def replace(self, file, new, parts=None):
        """Moves `new` to `file` (None: removes it), made of `parts` if given."""
        with self._lock:
            self._keys.clear()
            old = self._composed.pop(file, None)
            if new is None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(file)
            else:
                os.replace(new, file)
            if parts:
                self._composed[file] = parts
        if old:
            shutil.rmtree(os.path.dirname(old[0]), ignore_errors=True)

    def open_object(self, file, files):
        """(the open file, [its open parts] or None), opened together under the lock so
        that a concurrent replace cannot mix versions; `files` (an ExitStack) closes them."""
        with self._lock:
            parts = self._composed.get(file)
            return (files.enter_context(open(file, "rb")),
                    parts and [files.enter_context(open(part, "rb")) for part in parts])

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
        for proc in self.helpers:
            proc.terminate()
            proc.wait()
        if self.writable:  # objects of multipart uploads go with their parts
            for file in list(self._composed):
                self.replace(file, None)
            shutil.rmtree(self.uploads, ignore_errors=True)


def start(root, first_byte_ms=20, mbps_per_connection=100, host="127.0.0.1", port=0, writable=False, tls=None,
          processes=1):
    """Serve root in a daemon thread; return (server, endpoint_url). server.shutdown() stops it.
    tls=(certificate file, key file) serves https. processes > 1 (read-only) serves the port
    from that many processes (SO_REUSEPORT): one Python process answers ~1,500 small GETs/s;
    server.requests and server.bytes_served then count this process's share only."""
    if processes > 1 and (writable or tls):
        raise ValueError("several server processes serve read-only plain http only")
    server = Server((host, port), root, first_byte_ms, mbps_per_connection, writable, tls, reuse_port=processes > 1)
    port = server.server_address[1]
    for _ in range(processes - 1):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), root, "--host", host, "--port", str(port),
                                 "--first-byte-ms", str(first_byte_ms), "--mbps-per-connection",
                                 str(mbps_per_connection), "--reuse-port"], stdout=subprocess.PIPE, text=True)
        server.helpers.append(proc)
        if not proc.stdout.readline().startswith("listening"):
            server.shutdown()
            raise RuntimeError(f"a server process for port {port} did not start")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{'https' if tls else 'http'}://{host}:{port}"


def new_bench_dir(requested, prefix, in_memory=True) -> str:
    """The bench's working directory: `requested` (made here: it must be new, the bench
    removes it at the end) or a new temporary one, in /dev/shm when `in_memory` (the
    store's own disk is not what is measured)."""
    if requested:
        os.makedirs(requested)
        return requested
    return tempfile.mkdtemp(prefix=prefix, dir="/dev/shm" if in_memory and os.path.isdir("/dev/shm") else None)


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


def run_cases(script, cases, root, first_byte_ms, mbps_per_connection, python=sys.executable, writable=False,
              timeout=3600, processes=1):
    """Runs `python script <this process's arguments> --run CASE` for each case (a case may
    come several times), each in its own process, while `root` is served (the process
    reads it as s3://<bucket>/... through AWS_ENDPOINT_URL); returns {case: [the JSON of
    its last output line, per run]}. A case running longer than `timeout` seconds fails."""
    import json
    import subprocess

    server, endpoint = start(root, first_byte_ms, mbps_per_connection, writable=writable, processes=processes)
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_REGION="us-east-1")
    results = {}
    try:
        for case in cases:
            proc = subprocess.run([python, os.path.abspath(script), *sys.argv[1:], "--run", case], capture_output=True,
                                  text=True, env=env, timeout=timeout)
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
    p.add_argument("--writable", action="store_true", help="take uploads and deletes (they change ROOT)")
    p.add_argument("--reuse-port", action="store_true", help="share the port with other such processes (SO_REUSEPORT)")
    args = p.parse_args()
    if not os.path.isdir(args.root):
        p.error(f"not a directory: {args.root}")
    server = Server((args.host, args.port), args.root, args.first_byte_ms, args.mbps_per_connection, args.writable,
                    reuse_port=args.reuse_port)
    print(f"listening http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        server.shutdown()  # (serve_forever has returned) removes multipart objects with their parts


if __name__ == "__main__":
    main()
