"""chute.lightning: Lightning's CheckpointIO on chute URLs (local paths, ``s3://``,
``gs://``). Needs ``lightning`` or ``pytorch_lightning``."""

from __future__ import annotations

try:
    from lightning.pytorch.plugins.io import CheckpointIO as _CheckpointIO
except ImportError:
    try:
        from pytorch_lightning.plugins.io import CheckpointIO as _CheckpointIO
    except ImportError as exc:
        raise ImportError("chute.lightning needs Lightning: pip install 'chute[lightning]' (or install "
                          "lightning or pytorch_lightning)") from exc

from chute import checkpoint


class CheckpointIO(_CheckpointIO):
    """Saves, loads and removes Lightning checkpoints at chute URLs through
    chute.checkpoint's streams (an upload that runs while the checkpoint is serialized;
    the object appears whole or not at all). ``Trainer(plugins=[chute.lightning.CheckpointIO()])``;
    Lightning's ``AsyncCheckpointIO`` can wrap it."""

    def __init__(self, storage_options=None):
        super().__init__()
        self.storage_options = storage_options

    def save_checkpoint(self, checkpoint_dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("chute.lightning.CheckpointIO takes its storage_options when it is made, not per save")
        checkpoint.save(checkpoint_dict, path, storage_options=self.storage_options)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return checkpoint.load(path, map_location=map_location, storage_options=self.storage_options,
                               weights_only=weights_only)

    def remove_checkpoint(self, path) -> None:
        storage, name = checkpoint._locate(path, self.storage_options)
        if storage.exists(name):
            storage.delete(name)
