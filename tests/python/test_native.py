"""The C++ library from native code: a downstream CMake project and the bench executable."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import chute

HERE = os.path.dirname(os.path.abspath(__file__))


def _sample(i):
    return {"i": i, "x": np.arange(10, dtype=np.int64) * i, "name": f"n{i}"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("native") / "ds")
    return chute.optimize(_sample, range(300), out, chunk_bytes="8KB", compression="zstd", progress=False,
                          num_workers=0)


def test_downstream_project_links_the_installed_library(dataset, tmp_path):
    cmake = shutil.which("cmake")
    assert cmake, "cmake is a test requirement (pip install .[test])"
    build = tmp_path / "build"
    configure = [cmake, "-S", os.path.join(HERE, "..", "cpp", "downstream"), "-B", str(build),
                 f"-DCMAKE_PREFIX_PATH={chute.cmake_prefix_path()}", "-DCMAKE_BUILD_TYPE=Release"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    out = subprocess.run([str(build / "downstream"), dataset], check=True, capture_output=True, text=True).stdout
    assert out.strip() == f"items=300 int_sum={sum(range(300))} array_sum={45 * sum(range(300))}"


def test_bench_read_smoke(dataset):
    exe = shutil.which("chute_bench_read")
    assert exe, "chute_bench_read is installed as a console script"
    out = subprocess.run([exe, dataset, "2"], check=True, capture_output=True, text=True).stdout
    fields = dict(kv.split("=") for kv in out.split())
    assert int(fields["items"]) == 300 and float(fields["items_per_s"]) > 0


def test_bench_read_reports_errors(tmp_path):
    proc = subprocess.run([shutil.which("chute_bench_read"), str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 1 and re.search(r"NotFound: .*missing: no such dataset directory", proc.stderr)


def test_bench_tokens_smoke():
    out = subprocess.run([shutil.which("chute_bench_tokens"), "100000", "uint16", "2"], check=True,
                         capture_output=True, text=True).stdout
    fields = dict(kv.split("=") for kv in out.split())
    assert float(fields["simd_GB_per_s"]) > 0 and float(fields["memcpy_GB_per_s"]) > 0


def test_demo_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "chute", "demo", "--dir", str(tmp_path), "--num-samples", "300",
                          "--sample-kb", "5"], check=True, capture_output=True, text=True, timeout=300).stdout
    assert "optimize: 300 samples" in out and out.count("samples/s") == 2


@pytest.fixture(scope="module")
def tsan_build(tmp_path_factory):
    """The C++ tests (tests/cpp) built with ThreadSanitizer (which the single-threaded ones
    do not need, but one build serves all)."""
    cmake = shutil.which("cmake")
    root = os.path.join(HERE, "..", "..")
    build = tmp_path_factory.mktemp("tsan") / "build"
    configure = [cmake, "-S", root, "-B", str(build), "-DCHUTE_BUILD_TESTS=ON", "-DCHUTE_BUILD_BENCH=OFF",
                 "-DCHUTE_SANITIZE=thread", "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DPython_EXECUTABLE={sys.executable}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "--parallel", str(min(os.cpu_count() or 1, 4)), "--target",
                    "test_shm_index", "test_io_queue", "test_sigv4", "test_parallel_list", "test_format",
                    "test_read"],
                   check=True, capture_output=True)
    return build


def _run_clean(args):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert "ThreadSanitizer" not in proc.stderr, proc.stderr[-4000:]
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    return proc.stdout


def test_shm_index_under_contention_with_thread_sanitizer(tsan_build, tmp_path):
    """tests/cpp/test_shm_index.cpp: processes x threads on one small cache, one killed."""
    out = _run_clean([str(tsan_build / "test_shm_index"), str(tmp_path / "cache")])
    assert "segment_removed=1" in out


def test_io_queue_and_pool_under_contention_with_thread_sanitizer(tsan_build):
    """tests/cpp/test_io_queue.cpp: the lock-free queue and the I/O pool built on it."""
    out = _run_clean([str(tsan_build / "test_io_queue")])
    assert out.strip().endswith("ok"), out


def test_format_units_under_thread_sanitizer(tsan_build, tmp_path):
    """tests/cpp/test_format.cpp: item codec, index.json, chunk files, parts and resume, bulk writes, trace spans."""
    out = _run_clean([str(tsan_build / "test_format"), str(tmp_path / "format")])
    assert out.strip().endswith("ok"), out


def test_read_units_under_thread_sanitizer(tsan_build, tmp_path):
    """tests/cpp/test_read.cpp: a Dataset over an in-memory object store with a node cache,
    Reader batches against EpochOrder, token batches."""
    out = _run_clean([str(tsan_build / "test_read"), str(tmp_path / "read")])
    assert out.strip().endswith("ok"), out


def test_parallel_listing_under_thread_sanitizer(tsan_build):
    """tests/cpp/test_parallel_list.cpp: every key listed once with many ranges in flight,
    key midpoints, a failing page."""
    out = _run_clean([str(tsan_build / "test_parallel_list")])
    assert out.strip().endswith("ok"), out


def test_sha256_and_hmac_match_hashlib(tsan_build):
    """tests/cpp/test_sigv4.cpp: the digests under chute's S3 request signing."""
    import hashlib
    import hmac

    lines = _run_clean([str(tsan_build / "test_sigv4")]).split("\n")
    checked = 0
    for line in filter(None, lines):
        kind, n, digest = line.split()
        n = int(n)
        data = bytes((i * 37 + n) & 0xFF for i in range(n))
        expected = hashlib.sha256(data).hexdigest() if kind == "sha256" else \
            hmac.new(data, b"chute", hashlib.sha256).hexdigest()
        assert digest == expected, (kind, n)
        checked += 1
    assert checked == 2 * 301
