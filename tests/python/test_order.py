"""Order, distribution and resumption (layouts are simulated with the torchrun variables;
one test runs real processes with torch.distributed on gloo)."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import chute
from conftest import rank_env

GLOBAL_BATCH = 8


def _sample(i):
    return {"i": i}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # 40 chunks of 25 samples
    out = str(tmp_path_factory.mktemp("order") / "ds")
    return chute.optimize(_sample, range(1000), out, chunk_size=25, num_parts=1, progress=False, num_workers=0)


def _ids(batch):
    return batch["i"].tolist()


def run_layout(path, nodes, ranks_per_node, workers, *, epochs=1, stop_after=None, state=None,
               global_batch=GLOBAL_BATCH, dataset_class=chute.StreamingDataset, ids=None, **ds_kwargs):
    """Per rank: the list of batches (lists of ids: `ids(batch)`) of each epoch; and rank 0's
    state."""
    world = nodes * ranks_per_node
    per_rank, states = [], []
    ids = ids or _ids
    for rank in range(world):
        with rank_env(rank, world, ranks_per_node):
            ds = dataset_class(path, shuffle=True, seed=1, **ds_kwargs)
            loader = chute.StreamingDataLoader(ds, batch_size=global_batch // world, num_workers=workers)
            if state is not None:
                loader.load_state_dict(json.loads(json.dumps(state)))
            out = []
            for _ in range(epochs):
                epoch_batches = []
                for batch in loader:
                    epoch_batches.append(ids(batch))
                    if stop_after is not None and len(epoch_batches) == stop_after:
                        break
                out.append(epoch_batches)
            per_rank.append(out)
            states.append(loader.state_dict())
    return per_rank, states[0]


def global_batches(per_rank, epoch=0):
    counts = {len(r[epoch]) for r in per_rank}
    assert len(counts) == 1, f"ranks yielded different numbers of batches: {counts}"
    return [sorted(sum((r[epoch][k] for r in per_rank), [])) for k in range(counts.pop())]


LAYOUTS = [(1, 1, 0), (1, 2, 0), (1, 2, 2), (2, 2, 0)]


def test_global_batches_are_the_same_for_every_layout(dataset):
    reference = global_batches(run_layout(dataset, 1, 1, 0, epochs=2)[0])
    assert sorted(sum(reference, [])) == list(range(1000))
    for nodes, rpn, workers in LAYOUTS[1:]:
        per_rank, _ = run_layout(dataset, nodes, rpn, workers, epochs=2)
        for epoch in range(2):
            assert global_batches(per_rank, epoch) == global_batches(run_layout(dataset, 1, 1, 0, epochs=2)[0], epoch), \
                f"layout {nodes}x{rpn}x{workers} epoch {epoch}"


def test_each_epoch_has_its_own_order_and_it_is_reproducible(dataset):
    per_rank, _ = run_layout(dataset, 1, 1, 0, epochs=3)
    e0, e1, e2 = (sum(per_rank[0][e], []) for e in range(3))
    assert e0 != e1 != e2 and sorted(e0) == sorted(e1) == list(range(1000))
    assert run_layout(dataset, 1, 1, 0, epochs=1)[0][0][0] == per_rank[0][0]


def test_gloo_processes_match_the_single_process_order(dataset, tmp_path):
    script = r'''
import json, os, sys
import torch.distributed as dist
import chute
dist.init_process_group("gloo")
ds = chute.StreamingDataset(sys.argv[1], shuffle=True, seed=1)
loader = chute.StreamingDataLoader(ds, batch_size=int(sys.argv[2]), num_workers=1)
print(json.dumps([b["i"].tolist() for b in loader]))
dist.destroy_process_group()
'''
    from object_store import free_port

    port = str(free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, "-c", script, dataset, str(GLOBAL_BATCH // 2)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append([json.loads(out)])
    assert global_batches(outs) == global_batches(run_layout(dataset, 1, 1, 0)[0])


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_same_layout_equals_uninterrupted(dataset, workers):
    full, _ = run_layout(dataset, 1, 2, workers, epochs=2)
    first, state = run_layout(dataset, 1, 2, workers, stop_after=37)
    assert state["epoch"] == 0 and state["consumed"] == 37 * GLOBAL_BATCH
    rest, _ = run_layout(dataset, 1, 2, workers, state=state, epochs=2)
    for rank in range(2):
        assert first[rank][0] + rest[rank][0] == full[rank][0]
        assert rest[rank][1] == full[rank][1]  # the next epoch is unchanged, too


def test_resume_on_another_layout_yields_exactly_the_rest(dataset):
    first, state = run_layout(dataset, 2, 2, 0, stop_after=50)
    seen = Counter(i for rank in first for batch in rank[0] for i in batch)
    assert sum(seen.values()) == 50 * GLOBAL_BATCH
    for nodes, rpn, workers in [(1, 1, 0), (1, 2, 2), (1, 4, 0)]:
        rest, _ = run_layout(dataset, nodes, rpn, workers, state=state)
        remaining = Counter(i for rank in rest for batch in rank[0] for i in batch)
        assert not (seen & remaining), "a sample was repeated"
        assert seen + remaining == Counter(range(1000)), "a sample was lost"
        # the global batches continue exactly where the interrupted run stood
        full = global_batches(run_layout(dataset, 1, 1, 0)[0])
        assert global_batches(rest) == full[50:]


def test_resume_in_the_second_epoch(dataset):
    full, _ = run_layout(dataset, 1, 2, 0, epochs=2)
    partial, state = run_layout(dataset, 1, 2, 0, epochs=2, stop_after=20)
    assert state["epoch"] == 1 and state["consumed"] == 20 * GLOBAL_BATCH
    rest, _ = run_layout(dataset, 1, 2, 0, state=state)
    for rank in range(2):
        assert partial[rank][1] + rest[rank][0] == full[rank][1]


def test_state_after_a_full_epoch_points_at_the_next(dataset):
    _, state = run_layout(dataset, 1, 1, 0)
    assert (state["epoch"], state["consumed"]) == (1, 0)


def test_state_refuses_another_dataset(dataset, make_dataset):
    _, state = run_layout(dataset, 1, 1, 0, stop_after=3)
    other = chute.StreamingDataset(make_dataset(_sample, range(999)), shuffle=True, seed=1)
    with pytest.raises(ValueError, match="saved for the dataset .*1000 samples.*resume with the same dataset"):
        chute.StreamingDataLoader(other, batch_size=8).load_state_dict(state)
    changed = chute.StreamingDataLoader(chute.StreamingDataset(dataset, shuffle=True, seed=2), batch_size=8)
    with pytest.raises(ValueError, match="seed: saved 1, now 2"):
        changed.load_state_dict(state)


@pytest.mark.parametrize("n", [1, 7, 1001])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_rank_gets_the_same_number_of_batches(make_dataset, n, drop_last):
    path = make_dataset(_sample, range(n), chunk_size=10, num_parts=1)
    batches = []
    for rank in range(3):
        with rank_env(rank, 3, 3):
            ds = chute.StreamingDataset(path, shuffle=True, drop_last=drop_last)
            loader = chute.StreamingDataLoader(ds, batch_size=4, num_workers=0)
            got = [_ids(b) for b in loader]
            assert len(ds) == (n // 3 if drop_last else -(-n // 3))
            assert len(got) == len(loader)
            batches.append(got)
    assert len({len(b) for b in batches}) == 1
    ids = [i for rank in batches for b in rank for i in b]
    if drop_last:
        assert len(ids) == n - n % 3 and len(set(ids)) == len(ids)
    else:
        assert set(ids) == set(range(n)) and len(ids) == 3 * -(-n // 3)


def test_shuffle_mixes_across_chunks(dataset):
    ds = chute.StreamingDataset(dataset, shuffle=True, seed=3)
    loader = chute.StreamingDataLoader(ds, batch_size=64)
    distinct = [len({ds.core.chunk_of(i) for i in _ids(b)}) for b in loader]
    assert len(ds.core.chunks) == 40
    assert np.mean(distinct) >= 8, distinct
    # even one partition mixes within its window of chunks
    ds1 = chute.StreamingDataset(dataset, shuffle=True, seed=3, partitions=1, shuffle_window=8)
    distinct1 = [len({ds1.core.chunk_of(i) for i in _ids(b)}) for b in chute.StreamingDataLoader(ds1, batch_size=64)]
    assert np.mean(distinct1) >= 6, distinct1


def test_nodes_read_disjoint_chunks_when_the_layout_divides_the_partitions(dataset):
    per_rank, _ = run_layout(dataset, 2, 2, 0, partitions=4)
    ds = chute.StreamingDataset(dataset)
    node_chunks = [{ds.core.chunk_of(i) for r in (2 * n, 2 * n + 1) for b in per_rank[r][0] for i in b}
                   for n in range(2)]
    assert not node_chunks[0] & node_chunks[1]
    assert len(node_chunks[0] | node_chunks[1]) == 40


def test_order_is_cheap_for_huge_indexes():
    from chute import _core

    order = _core.EpochOrder([1000] * 100_000, seed=5, epoch=7, window_items=1000)
    assert len(order) == 100_000_000
    ids = order.fill(50_000_000, 1, 100_000)
    assert len(set(ids.tolist())) == 100_000 and int(ids.max()) < 100_000_000
    assert order.at(50_000_000) == ids[0]
