"""optimize(resume=True): an interrupted conversion continues where each part's last chunk
landed and ends with the same dataset as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import chute

CONVERT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import chute
    out, calls, resume, workers = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    def samples(i):  # several samples per input, of varying sizes: chunks end inside inputs
        open(os.path.join(calls, str(i)), "a").close()
        time.sleep(0.01)
        for k in range(1 + i % 3):
            yield {"i": i, "k": k, "x": np.full(300 + 97 * ((i * 7 + k) % 11), i % 251, dtype=np.uint8)}
    chute.optimize(samples, range(150), out, chunk_bytes="6KB", compression="zstd", block_bytes="2KB",
                   num_workers=workers, resume=resume, progress=False, num_parts=4)
""")


def _convert(out, calls, resume, workers=2, **kwargs):
    os.makedirs(calls, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", CONVERT, str(out), str(calls), "1" if resume else "0",
                             str(workers)], **kwargs)


def _files(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}


def _records(out):
    return [name for name in os.listdir(out) if name.startswith(".chute-optimize-part-")] if out.exists() else []


PARTS = [(0, 37), (37, 75), (75, 112), (112, 150)]  # 150 inputs in 4 parts


@pytest.mark.parametrize("workers", [0, 2])
def test_a_killed_optimize_resumes_to_the_same_dataset(tmp_path, workers):
    reference = tmp_path / "reference"
    assert _convert(reference, tmp_path / "calls-ref", False, workers).wait(timeout=300) == 0

    out, calls = tmp_path / "out", tmp_path / "calls"
    run = _convert(out, calls, False, workers, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _records(out):
        time.sleep(0.01)
    while time.monotonic() < deadline and len(os.listdir(calls)) < 60:
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)  # the conversion and its workers, mid-run
    run.wait()
    assert not (out / "index.json").exists()
    left = {}  # part -> the first input a resumed run must run again
    for name in _records(out):
        record = json.loads((out / name).read_text())
        left[record["part"]] = record["next"][0]
    expected = [i for part, (start, end) in enumerate(PARTS) for i in range(left.get(part, start), end)]
    assert len(expected) < 150 - 10  # chunks landed before the kill are kept

    for name in os.listdir(calls):
        os.remove(calls / name)
    assert _convert(out, calls, True, workers).wait(timeout=300) == 0
    assert sorted(int(n) for n in os.listdir(calls)) == expected  # inputs in kept chunks are not run again
    assert _files(out) == _files(reference)  # the same chunks and index; the records are gone
    assert [s["i"] for s in chute.StreamingDataset(str(out))] == [i for i in range(150) for _ in range(1 + i % 3)]


def test_resume_of_a_finished_dataset_does_nothing_and_other_settings_are_refused(tmp_path):
    def sample(i):
        return {"i": i}

    out = chute.optimize(sample, range(50), str(tmp_path / "ds"), chunk_size=10, progress=False, num_workers=0)
    record = os.path.join(out, ".chute-optimize-part-00000.json")
    settings = {"chunk_bytes": 64_000_000, "chunk_items": 10, "compression": "", "block_bytes": 1 << 20,
                "num_inputs": 50, "num_parts": 50}
    with open(record, "w") as f:  # as if killed between writing index.json and removing the records
        json.dump({"part": 0, "settings": settings, "chunks": [], "next": [0, 0], "schema": None}, f)
    before = os.path.getmtime(os.path.join(out, "index.json"))
    assert chute.optimize(sample, range(50), out, chunk_size=10, progress=False, num_workers=0, resume=True) == out
    assert os.path.getmtime(os.path.join(out, "index.json")) == before and not os.path.exists(record)

    os.remove(os.path.join(out, "index.json"))  # interrupted with chunk_size=10, resumed with 20
    with open(record, "w") as f:
        json.dump({"part": 0, "settings": settings, "chunks": [], "next": [0, 0], "schema": None}, f)
    with pytest.raises(chute.OptimizeError, match="other settings"):
        chute.optimize(sample, range(50), out, chunk_size=20, progress=False, num_workers=0, resume=True)
