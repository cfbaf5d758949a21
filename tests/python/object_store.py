"""Local object-store servers for the tests: moto (S3) and gcp-storage-emulator (GCS) on
127.0.0.1 free ports, and a TCP proxy that can be stopped and restarted to take a
server away from a client without losing its data."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, log, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server for {url} exited with {proc.returncode}: {log.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


def _executable(name: str) -> str:
    path = shutil.which(name) or os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        raise RuntimeError(f"{name} not found: pip install '.[test]'")
    return path


class Server:
    def __init__(self, argv, port):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        # The servers log every request: to a file, never to a pipe nobody drains (a full
        # pipe blocks the server).
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_http(self.endpoint, self.proc, self.log)
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_moto() -> Server:
    port = free_port()
    return Server([_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)], port)


def start_gcs() -> Server:
    port = free_port()
    return Server([_executable("gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port),
                   "--in-memory"], port)


def s3_options(endpoint: str, **extra) -> dict:
    """storage_options for a test S3 server (moto, the bench server)."""
    return {"endpoint_url": endpoint, "access_key_id": "testing", "secret_access_key": "testing",
            "region": "us-east-1", **extra}


def create_s3_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)


def create_gcs_bucket(endpoint: str, bucket: str) -> None:
    req = urllib.request.Request(f"{endpoint}/storage/v1/b?project=test", method="POST",
                                 data=json.dumps({"name": bucket}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target port; stop() refuses and cuts connections.
    Counts the bytes the server sends (`bytes_served`); `delay` seconds are waited
    before forwarding each piece of a response (a slow store)."""

    def __init__(self, target_port: int, delay: float = 0.0):
        self.target_port = target_port
        self.delay = delay
        self.bytes_served = 0
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._listener = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self):
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b, down in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, down), daemon=True).start()

    def _pipe(self, src, dst, down):
        try:
            while data := src.recv(1 << 16):
                if down:
                    with self._lock:
                        self.bytes_served += len(data)
                    if self.delay:
                        time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
