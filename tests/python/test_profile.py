"""StreamingDataLoader(profile_batches=N): a Chrome trace of the first batches with the
engine's and Python's spans of every process; loader.stats(): what was read and waited for."""

import json
import uuid

import numpy as np
import pytest

import chute
from object_store import create_s3_bucket, s3_options

ENGINE = {"download", "fetch", "wait_chunk", "checksum", "decode", "read_batch", "gather_tokens"}
PYTHON = {"collate", "handoff", "wait_for_batch"}


def _sample(i):
    return {"i": i, "x": np.full(2000, i % 251, dtype=np.uint8)}


def _load(path):
    with open(path) as f:
        trace = json.load(f)  # valid JSON, in the Chrome trace event format
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    names = {(e["pid"], e["args"]["name"]) for e in trace["traceEvents"] if e["name"] == "process_name"}
    return spans, names


def _nested(spans, outer, inner):
    """Some `inner` span lies within an `outer` span of the same thread."""
    for o in (s for s in spans if s["name"] == outer):
        for i in (s for s in spans if s["name"] == inner and s["pid"] == o["pid"] and s["tid"] == o["tid"]):
            if o["ts"] <= i["ts"] and i["ts"] + i["dur"] <= o["ts"] + o["dur"]:
                return True
    return False


def test_trace_in_process(make_dataset, tmp_path):
    ds = chute.StreamingDataset(make_dataset(_sample, range(600), chunk_size=50, compression="zstd",
                                             block_bytes="16KB", num_parts=1), shuffle=True)
    loader = chute.StreamingDataLoader(ds, batch_size=16, profile_batches=5, profile_dir=tmp_path / "profile")
    assert sum(len(b["i"]) for b in loader) == 600
    spans, processes = _load(loader.profile_path)
    assert {s["name"] for s in spans} <= ENGINE | PYTHON
    assert sum(s["name"] == "wait_for_batch" for s in spans) == 5 and sum(s["name"] == "collate" for s in spans) == 5
    assert _nested(spans, "wait_for_batch", "read_batch") and _nested(spans, "read_batch", "decode")
    assert _nested(spans, "wait_for_batch", "collate")
    assert [name for _, name in processes] == ["chute main"]
    assert all(s["dur"] >= 0 and s["ts"] > 0 for s in spans)
    stats = loader.stats()
    assert stats["batches"] == 38 and stats["workers"] == 0 and stats["loop_wait_s"] > 0
    assert stats["bytes_fetched"] == 0  # local chunks are mapped, not fetched


def test_trace_with_workers_spans_every_process(make_dataset, tmp_path):
    ds = chute.StreamingDataset(make_dataset(_sample, range(600), chunk_size=50, num_parts=1))
    loader = chute.StreamingDataLoader(ds, batch_size=16, num_workers=2, profile_batches=6,
                                       profile_dir=tmp_path / "profile")
    assert sum(len(b["i"]) for b in loader) == 600
    spans, processes = _load(loader.profile_path)
    assert sorted(name for _, name in processes) == ["chute main", "chute worker 0", "chute worker 1"]
    by_process = {name: {s["name"] for s in spans if s["pid"] == pid} for pid, name in processes}
    assert by_process["chute main"] >= {"wait_for_batch", "handoff"}
    for worker in ("chute worker 0", "chute worker 1"):
        assert by_process[worker] >= {"read_batch", "collate", "handoff"}
    assert sum(s["name"] == "collate" for s in spans) == 6  # the workers' shares of the first 6 batches
    assert not [p for p in (tmp_path / "profile").iterdir() if p.name != "chute-trace.json"]
    # A second epoch is not profiled again (and its workers write nothing).
    assert sum(len(b["i"]) for b in loader) == 600
    assert sorted(p.name for p in (tmp_path / "profile").iterdir()) == ["chute-trace.json"]


def test_stats_count_downloads_and_cache_hits(s3_server, tmp_path):
    bucket = f"p-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    options = s3_options(s3_server.endpoint)
    url = chute.optimize(_sample, range(400), f"s3://{bucket}/ds", chunk_size=50, num_parts=1, num_workers=0,
                         progress=False, storage_options=options)
    ds = chute.StreamingDataset(url, storage_options=options, cache_dir=str(tmp_path / "cache"))
    chunk_bytes = sum(c[2] for c in ds.core.chunks)
    loader = chute.StreamingDataLoader(ds, batch_size=20, num_workers=2, profile_batches=4,
                                       profile_dir=tmp_path / "profile")
    assert sum(len(b["i"]) for b in loader) == 400
    first = loader.stats()
    assert first["workers"] == 2 and first["batches"] == 20
    assert first["chunks_downloaded"] == 8  # each chunk once on the node, by whichever worker came first
    # + index.json and the ranges of each worker's first batch, read directly: no chunk twice
    assert chunk_bytes <= first["bytes_fetched"] < 1.5 * chunk_bytes
    assert first["chunk_cache_hits"] + first["chunk_cache_misses"] >= 8
    spans, _ = _load(loader.profile_path)
    assert {"download", "fetch", "checksum"} <= {s["name"] for s in spans}
    assert sum(len(b["i"]) for b in loader) == 400  # epoch 2: from the node cache
    second = loader.stats()
    assert second["chunks_downloaded"] == 8 and second["bytes_fetched"] == first["bytes_fetched"]
    assert second["chunk_cache_hits"] >= first["chunk_cache_hits"] + 8 and second["batches"] == 40


def test_profile_batches_is_checked(make_dataset):
    ds = chute.StreamingDataset(make_dataset(_sample, range(10)))
    with pytest.raises(ValueError, match="profile_batches"):
        chute.StreamingDataLoader(ds, batch_size=2, profile_batches=0)


def test_trace_of_a_mix_with_workers(make_dataset, tmp_path):
    a = chute.StreamingDataset(make_dataset(_sample, range(300), "a", chunk_size=50))
    b = chute.StreamingDataset(make_dataset(_sample, range(300, 500), "b", chunk_size=50))
    mix = chute.CombinedStreamingDataset([a, b], weights=[0.6, 0.4], seed=3)
    loader = chute.StreamingDataLoader(mix, batch_size=10, num_workers=2, profile_batches=4,
                                       profile_dir=tmp_path / "profile")
    for _ in loader:
        pass
    spans, processes = _load(loader.profile_path)
    assert sorted(name for _, name in processes) == ["chute main", "chute worker 0", "chute worker 1"]
    assert sum(s["name"] == "collate" for s in spans) == 4
