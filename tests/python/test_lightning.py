"""chute.lightning.CheckpointIO in a real Lightning Trainer (CPU, one process): fit on a
StreamingDataLoader, save to moto, resume a new Trainer from it, remove it."""

import importlib
import sys
import uuid

import numpy as np
import pytest
import torch

import chute
from object_store import create_s3_bucket


def _sample(i):
    return {"x": np.full(4, i % 7, np.float32), "y": np.float32(i % 2)}


def test_trainer_saves_resumes_and_removes_through_chute(s3_server, make_dataset):
    import lightning as L

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
    options = {"endpoint_url": s3_server.endpoint, "access_key_id": "testing", "secret_access_key": "testing",
               "region": "us-east-1"}
    ds = chute.StreamingDataset(make_dataset(_sample, range(64)))

    def trainer(epochs):
        return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         plugins=[chute.lightning.CheckpointIO(options)])

    first, model = trainer(1), Model()
    first.fit(model, chute.StreamingDataLoader(ds, batch_size=8))
    url = f"s3://{bucket}/run/last.ckpt"
    first.save_checkpoint(url)
    second, resumed = trainer(2), Model()
    second.fit(resumed, chute.StreamingDataLoader(ds, batch_size=8), ckpt_path=url)
    assert second.global_step == 2 * first.global_step == 16  # restored at the end of epoch 1, then one more
    second.strategy.checkpoint_io.remove_checkpoint(url)
    assert not chute._core.Storage.open(f"s3://{bucket}/run", options).exists("last.ckpt")


def test_without_lightning_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch.plugins.io", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning.plugins.io", None)
    monkeypatch.delitem(sys.modules, "chute.lightning", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'chute\[lightning\]'"):
        importlib.import_module("chute.lightning")
