"""CombinedStreamingDataset: weighted mixing, layout independence, resumption."""

import json
from collections import Counter

import numpy as np
import pytest

import chute
from conftest import rank_env

WEIGHTS = [0.69, 0.31]


def _web(i):
    return {"src": 0, "i": i}


def _code(i):
    return {"src": 1, "i": i}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    web = chute.optimize(_web, range(3000), str(root / "web"), chunk_size=100, progress=False, num_workers=0)
    code = chute.optimize(_code, range(1200), str(root / "code"), chunk_size=100, progress=False, num_workers=0)
    return web, code


def _combined(sources, **kwargs):
    kwargs.setdefault("weights", WEIGHTS)
    return chute.CombinedStreamingDataset(
        [chute.StreamingDataset(p, shuffle=True, seed=s) for s, p in enumerate(sources)], seed=7, **kwargs)


def run(sources, world=1, workers=0, global_batch=64, epochs=1, stop_after=None, state=None, **kwargs):
    """Global batches (lists of (src, i)) per epoch, and the state of rank 0."""
    per_rank, states = [], []
    for rank in range(world):
        with rank_env(rank, world, world):
            loader = chute.StreamingDataLoader(_combined(sources, **kwargs), batch_size=global_batch // world,
                                               num_workers=workers)
            if state is not None:
                loader.load_state_dict(json.loads(json.dumps(state)))
            out = []
            for _ in range(epochs):
                batches = []
                for b in loader:
                    batches.append(list(zip(b["src"].tolist(), b["i"].tolist())))
                    if stop_after is not None and len(batches) == stop_after:
                        break
                out.append(batches)
            per_rank.append(out)
            states.append(loader.state_dict())
    epochs_out = []
    for e in range(epochs):
        counts = {len(r[e]) for r in per_rank}
        assert len(counts) == 1, f"ranks yielded different numbers of batches: {counts}"
        epochs_out.append([sorted(sum((r[e][k] for r in per_rank), [])) for k in range(counts.pop())])
    return epochs_out, states[0]


def test_stratified_batches_have_exact_proportions(sources):
    (batches,), _ = run(sources)
    full = [b for b in batches if len(b) == 64]
    # 64 x 0.69 = 44.16 -> 44, 64 x 0.31 = 19.84 -> 20 (largest remainder)
    per_batch = [Counter(src for src, _ in b) for b in full]
    exact = [c for c in per_batch if c[0] == 44 and c[1] == 20]
    assert len(exact) == 1200 // 20  # every batch until the code corpus runs out
    # iterate_over_all: the rest of the web corpus follows, and every sample is read once
    seen = Counter(s for b in batches for s in b)
    assert set(seen.values()) == {1} and len(seen) == 4200


def test_iterate_over_all_false_stops_at_the_first_exhausted_source(sources):
    (batches,), _ = run(sources, iterate_over_all=False)
    assert len(batches) == 1200 // 20
    assert all(Counter(src for src, _ in b) == Counter({0: 44, 1: 20}) for b in batches)


def test_random_and_per_stream_proportions(sources):
    (batches,), _ = run(sources, batching="random", iterate_over_all=False)
    share = np.mean([sum(src == 0 for src, _ in b) / len(b) for b in batches])
    assert abs(share - 0.69) < 0.02, share
    assert len({sum(src == 0 for src, _ in b) for b in batches}) > 3  # not stratified
    (batches,), _ = run(sources, batching="per_stream", iterate_over_all=False)
    assert all(len({src for src, _ in b}) == 1 for b in batches)
    share = np.mean([b[0][0] == 0 for b in batches])
    assert 0.5 < share < 0.85, share


def test_weights_default_to_dataset_sizes(sources):
    ds = chute.CombinedStreamingDataset([chute.StreamingDataset(p) for p in sources])
    assert ds.weights == pytest.approx([3000 / 4200, 1200 / 4200])
    with pytest.raises(ValueError, match="one non-negative weight per dataset"):
        chute.CombinedStreamingDataset([chute.StreamingDataset(p) for p in sources], weights=[1.0])
    with pytest.raises(ValueError, match="batching='mixed'"):
        chute.CombinedStreamingDataset([chute.StreamingDataset(p) for p in sources], batching="mixed")


@pytest.mark.parametrize("batching", ["stratified", "random", "per_stream"])
def test_global_batches_do_not_depend_on_the_layout(sources, batching):
    reference, _ = run(sources, batching=batching, epochs=2)
    for world, workers in [(2, 0), (2, 2), (4, 0)]:
        got, _ = run(sources, world=world, workers=workers, batching=batching, epochs=2)
        assert got == reference, (world, workers)


@pytest.mark.parametrize("batching", ["stratified", "random"])
def test_resume_with_weights_equals_the_uninterrupted_run(sources, batching):
    full, _ = run(sources, world=2, batching=batching, epochs=2)
    head, state = run(sources, world=2, batching=batching, stop_after=30)
    rest, _ = run(sources, world=2, batching=batching, state=state, epochs=2)
    assert head[0] + rest[0] == full[0]
    assert rest[1] == full[1]
    # in the second epoch
    _, state2 = run(sources, world=2, batching=batching, epochs=2, stop_after=10)
    assert state2["epoch"] == 1
    rest2, _ = run(sources, world=2, batching=batching, state=state2)
    assert full[1][:10] + rest2[0] == full[1]


def test_resume_on_another_layout_reads_exactly_the_rest(sources):
    head, state = run(sources, world=4, stop_after=25)
    rest, _ = run(sources, world=1, workers=2, state=state)
    seen = Counter(s for b in head[0] + rest[0] for s in b)
    assert set(seen.values()) == {1} and len(seen) == 4200
    with pytest.raises(ValueError, match="weights"):
        other = chute.StreamingDataLoader(_combined(sources, weights=[0.5, 0.5]), batch_size=8)
        other.load_state_dict(state)
