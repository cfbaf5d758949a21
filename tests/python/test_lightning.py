"""chute.lightning.CheckpointIO and StreamingDataLoader in real Lightning Trainers (CPU):
one process fits, saves to moto, resumes and removes; two DDP processes stop mid-epoch and a
new Trainer finishes the epoch from the checkpoint, every sample once."""

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch

import chute
from object_store import create_s3_bucket, s3_options


def _sample(i):
    return {"x": np.full(4, i % 7, np.float32), "y": np.float32(i % 2)}


def test_trainer_saves_resumes_and_removes_through_chute(s3_server, make_dataset):
    import lightning as L
    from lightning.pytorch.plugins.io import AsyncCheckpointIO

    import chute.lightning

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            return torch.nn.functional.mse_loss(self.linear(batch["x"]).squeeze(-1), batch["y"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    bucket = f"l-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    options = s3_options(s3_server.endpoint)
    ds = chute.StreamingDataset(make_dataset(_sample, range(64)))

    def trainer(epochs, io):
        return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, plugins=[io])

    # The first saves through Lightning's AsyncCheckpointIO around chute's.
    first, model = trainer(1, AsyncCheckpointIO(chute.lightning.CheckpointIO(options))), Model()
    first.fit(model, chute.StreamingDataLoader(ds, batch_size=8))
    url = f"s3://{bucket}/run/last.ckpt"
    first.save_checkpoint(url)
    first.strategy.checkpoint_io.teardown()  # waits for the save's thread
    second, resumed = trainer(2, chute.lightning.CheckpointIO(options)), Model()
    second.fit(resumed, chute.StreamingDataLoader(ds, batch_size=8), ckpt_path=url)
    assert second.global_step == 2 * first.global_step == 16  # restored at the end of epoch 1, then one more
    second.strategy.checkpoint_io.remove_checkpoint(url)
    assert not chute._core.Storage.open(f"s3://{bucket}/run", options).exists("last.ckpt")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ddp_trainer_resumes_mid_epoch_with_every_sample_once(num_workers, s3_server, make_dataset, tmp_path):
    bucket = f"l-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    n, batch_size, stop_after = 90, 4, 5  # 2 ranks x 12 batches (the last ones short); stop after batch 5
    data = make_dataset(lambda i: {"id": i, **_sample(i)}, range(n))
    config = {"data": data, "batch_size": batch_size, "num_workers": num_workers, "stop_after": stop_after,
              "ckpt": f"s3://{bucket}/run/mid.ckpt", "storage_options": s3_options(s3_server.endpoint),
              "seen_dir": str(tmp_path)}
    script = os.path.join(os.path.dirname(__file__), "lightning_ddp_run.py")
    for run in ("first", "resumed"):
        config["run"] = run
        if run == "resumed":
            config["resume"] = config["ckpt"]
        # A session of its own: on a timeout the rank Lightning started goes too.
        run = subprocess.Popen([sys.executable, script, json.dumps(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
        try:
            _, err = run.communicate(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
        assert run.returncode == 0, err[-4000:]

    def seen(run, rank):
        with open(tmp_path / f"{run}-rank{rank}.txt") as f:
            return [int(line) for line in f]

    first = [seen("first", r) for r in range(2)]
    resumed = [seen("resumed", r) for r in range(2)]
    assert [len(ids) for ids in first] == [stop_after * batch_size] * 2  # both ranks stopped after batch 5
    everything = sum(first, []) + sum(resumed, [])
    assert sorted(everything) == list(range(n))  # the epoch, each sample exactly once
    ckpt = chute.checkpoint.load(config["ckpt"], storage_options=config["storage_options"], weights_only=False)
    (state,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert state["consumed"] == 2 * stop_after * batch_size  # the loader's state went into the checkpoint


def test_without_lightning_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch.plugins.io", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning.plugins.io", None)
    monkeypatch.delitem(sys.modules, "chute.lightning", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'chute\[lightning\]'"):
        importlib.import_module("chute.lightning")
