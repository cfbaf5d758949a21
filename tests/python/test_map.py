"""chute.map: files written by fn for each input land in output_dir (local or a bucket),
failures name the input, and resume skips the inputs already done."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import chute
from object_store import create_s3_bucket, s3_options


def _write(i, staging):
    with open(os.path.join(staging, f"{i}.txt"), "w") as f:
        f.write(f"input {i}")
    os.makedirs(os.path.join(staging, "sub"))
    with open(os.path.join(staging, "sub", f"{i}.bin"), "wb") as f:
        f.write(bytes([i % 256]) * (1000 + i))


def _expected(n):
    return {f"{i}.txt" for i in range(n)} | {f"sub/{i}.bin" for i in range(n)}


def _files(root):
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
            if not os.path.relpath(d, root).startswith(".chute-map")}


@pytest.mark.parametrize("workers", [0, 2])
def test_map_to_a_local_directory(tmp_path, workers):
    out = chute.map(_write, range(25), tmp_path / "out", num_workers=workers, progress=False)
    assert _files(out) == _expected(25)
    assert open(os.path.join(out, "7.txt")).read() == "input 7"
    assert open(os.path.join(out, "sub", "24.bin"), "rb").read() == bytes([24]) * 1024


def _fails_on_3(i, staging):
    if i == 3:
        raise KeyError("no label")
    _write(i, staging)


def test_a_failure_names_the_input_and_resume_finishes(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(chute.MapError, match=r"inputs\[3\] = 3: KeyError: 'no label'"):
        chute.map(_fails_on_3, range(10), out, num_workers=0, progress=False)
    assert _files(out) == _expected(3)
    calls = tmp_path / "calls"
    calls.mkdir()

    def logged(i, staging):
        (calls / str(i)).touch()
        _write(i, staging)

    chute.map(logged, range(10), out, num_workers=0, resume=True, progress=False)
    assert _files(out) == _expected(10)
    assert sorted(int(n) for n in os.listdir(calls)) == list(range(3, 10))  # 0-2 were done


def _exits(i, staging):
    if i == 4:
        sys.exit(3)  # a SystemExit, not an Exception: the input must still be reported, not lost
    _write(i, staging)


def test_a_fresh_run_starts_the_record_afresh_and_an_exiting_fn_is_reported(tmp_path):
    out = tmp_path / "out"
    chute.map(_write, range(8), out, num_workers=0, progress=False)
    with pytest.raises(chute.MapError, match=r"inputs\[4\]"):
        chute.map(_exits, range(8), out, num_workers=2, progress=False)
    # (a worker stopped while writing its marker may leave a temporary file: the next run removes it)
    done = {int(n) for n in os.listdir(out / ".chute-map") if n.isdigit()}
    assert 4 not in done and done <= set(range(8)) and len(done) < 8  # not the first run's markers
    chute.map(_write, range(8), out, num_workers=0, resume=True, progress=False)
    assert sorted(int(n) for n in os.listdir(out / ".chute-map")) == list(range(8))


def test_map_to_a_bucket(s3_server):
    import boto3

    bucket = f"m-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    options = s3_options(s3_server.endpoint)
    chute.map(_write, range(12), f"s3://{bucket}/resized", num_workers=2, storage_options=options, progress=False)
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="resized/")["Contents"]}
    assert {k.removeprefix("resized/") for k in keys if "/.chute-map/" not in k} == _expected(12)
    assert s3.get_object(Bucket=bucket, Key="resized/sub/5.bin")["Body"].read() == bytes([5]) * 1005

    def unexpected(i, staging):
        raise AssertionError(f"input {i} was done")

    chute.map(unexpected, range(12), f"s3://{bucket}/resized", resume=True, storage_options=options, progress=False)


KILLED = textwrap.dedent("""
    import os, sys, time
    import chute
    out, calls = sys.argv[1], sys.argv[2]
    def slow(i, staging):
        open(os.path.join(calls, f"{i}-{os.getpid()}"), "w").close()
        time.sleep(0.05)
        with open(os.path.join(staging, f"{i}.txt"), "w") as f:
            f.write(str(i))
    chute.map(slow, range(80), out, num_workers=2, resume=True, progress=False)
""")


def test_a_killed_map_resumes_without_redoing_finished_inputs(tmp_path):
    out, calls = tmp_path / "out", tmp_path / "calls"
    calls.mkdir()
    run = subprocess.Popen([sys.executable, "-c", KILLED, str(out), str(calls)], start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(os.listdir(calls)) < 20:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # the map and its workers, mid-run
    run.wait()
    finished = {int(n) for n in os.listdir(out / ".chute-map")}
    assert 10 <= len(finished) < 80
    before = set(os.listdir(calls))
    subprocess.run([sys.executable, "-c", KILLED, str(out), str(calls)], check=True, timeout=120)
    again = {int(n.split("-")[0]) for n in set(os.listdir(calls)) - before}
    assert not again & finished  # finished inputs are not run again
    assert _files(out) == {f"{i}.txt" for i in range(80)}
    assert all(open(out / f"{i}.txt").read() == str(i) for i in range(80))
