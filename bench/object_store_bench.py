"""chute_bench_read against local S3 endpoints, for several ranged-GET concurrencies.

    python bench/object_store_bench.py [--dataset DIR] [--concurrency 1 4 16 64]
                                       [--part-size 8388608] [--server moto nginx]

The dataset (default: the 1 GB one bench/read_vs_cat.py makes) is uploaded to a moto
server (pure Python: slow) and/or served by nginx (Debian package) from a folder laid
out as <root>/<bucket>/<prefix>/..., which answers the path-style GET/HEAD/Range subset
chute's S3 client uses. Both listen on 127.0.0.1 and are stopped afterwards.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import chute

BUCKET, PREFIX = "bench", "ds"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def start_moto(dataset, log):
    import boto3

    port = _free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    _wait(endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for f in sorted(glob.glob(os.path.join(dataset, "*"))):
        s3.upload_file(f, BUCKET, f"{PREFIX}/{os.path.basename(f)}")
    return proc, endpoint


def start_nginx(dataset, workdir):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise RuntimeError("nginx not found: apt-get install nginx")
    port = _free_port()
    os.chmod(workdir, 0o755)  # nginx's workers run as an unprivileged user
    root = os.path.join(workdir, "root")
    os.makedirs(os.path.join(root, BUCKET), exist_ok=True)
    os.symlink(os.path.abspath(dataset), os.path.join(root, BUCKET, PREFIX))
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path {workdir}/tmp;
  proxy_temp_path {workdir}/tmp;
  fastcgi_temp_path {workdir}/tmp;
  uwsgi_temp_path {workdir}/tmp;
  scgi_temp_path {workdir}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}
}}
""")
    os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
    proc = subprocess.Popen([nginx, "-c", conf, "-p", workdir], stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    _wait(endpoint)
    return proc, endpoint


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="/tmp/chute-bench-1gb")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--part-size", type=int, default=8 << 20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--server", nargs="+", default=["moto", "nginx"])
    args = p.parse_args()
    if not os.path.exists(os.path.join(args.dataset, "index.json")):
        raise SystemExit(f"{args.dataset} has no dataset: run bench/read_vs_cat.py first")
    exe = os.path.join(os.path.dirname(chute.__file__), "bin", "chute_bench_read")
    size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(args.dataset, "*")))
    with tempfile.TemporaryDirectory() as workdir:
        for server in args.server:
            with open(os.path.join(workdir, f"{server}.log"), "w") as log:
                proc, endpoint = start_moto(args.dataset, log) if server == "moto" else start_nginx(args.dataset, workdir)
            env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                       AWS_REGION="us-east-1")
            try:
                for c in args.concurrency:
                    out = subprocess.run([exe, f"s3://{BUCKET}/{PREFIX}", str(args.threads), "--concurrency", str(c),
                                          "--part-size", str(args.part_size)],
                                         env=env, capture_output=True, text=True)
                    if out.returncode:
                        raise SystemExit(f"chute_bench_read failed: {out.stderr}")
                    out = out.stdout
                    fields = dict(kv.split("=", 1) for kv in out.split())
                    print(f"{server}: {size / 1e9:.2f} GB, part {args.part_size >> 20} MiB, concurrency {c:3d}: "
                          f"{float(fields['GB_per_s']) * 1000:,.0f} MB/s ({float(fields['seconds']):.1f} s)", flush=True)
            finally:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
