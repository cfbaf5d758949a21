"""One run of the Lightning DDP test: python lightning_ddp_run.py CONFIG_JSON. Lightning's
"ddp" strategy starts the second rank by running this script again."""

import json
import os
import sys

import lightning as L
import torch

import chute
import chute.lightning

config = json.loads(sys.argv[1])


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        with open(os.path.join(config["seen_dir"], f"{config['run']}-rank{self.global_rank}.txt"), "a") as f:
            f.write("".join(f"{i}\n" for i in batch["id"].tolist()))
        return torch.nn.functional.mse_loss(self.linear(batch["x"]).squeeze(-1), batch["y"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class StopMidEpoch(L.Callback):
    """Saves a checkpoint after batch `stop_after` and stops the run there (a preemption)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx + 1 == config["stop_after"]:
            trainer.save_checkpoint(config["ckpt"])
            trainer.should_stop = True


ds = chute.StreamingDataset(config["data"], shuffle=True, seed=7)
loader = chute.StreamingDataLoader(ds, batch_size=config["batch_size"], num_workers=config["num_workers"])
trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    plugins=[chute.lightning.CheckpointIO(config["storage_options"])],
                    callbacks=[StopMidEpoch()] if config["run"] == "first" else [])
trainer.fit(Model(), loader, ckpt_path=config.get("resume"))
