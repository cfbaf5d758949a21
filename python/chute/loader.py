"""StreamingDataLoader: a torch DataLoader over a StreamingDataset that can stop and
resume mid-epoch — also on a different number of ranks or workers."""

from __future__ import annotations

from torch.utils.data import DataLoader

from chute._distributed import current_layout
from chute.dataset import StreamingDataset, rank_count

STATE_VERSION = 1


class StreamingDataLoader(DataLoader):
    """A ``torch.utils.data.DataLoader`` for a :class:`StreamingDataset`.

    Each ``iter(loader)`` reads the next epoch (the first is ``dataset.epoch``), unless
    :meth:`load_state_dict` was called: then it continues the saved epoch where it
    stopped. Global batch k (batch k of every rank) is the same set of samples for any
    number of ranks and workers with the same global batch size.

    All ``DataLoader`` keyword arguments are accepted (``collate_fn``, ``pin_memory``,
    ``persistent_workers``, ...); ``shuffle``, ``sampler`` and ``batch_sampler`` are the
    dataset's business and not accepted.
    """

    def __init__(self, dataset: StreamingDataset, batch_size: int = 1, num_workers: int = 0, **kwargs):
        if not isinstance(dataset, StreamingDataset):
            raise TypeError(f"StreamingDataLoader needs a chute.StreamingDataset, not {type(dataset).__name__}")
        for key in ("shuffle", "sampler", "batch_sampler"):
            if kwargs.get(key) not in (None, False):
                raise ValueError(f"{key}= is not supported: shuffling and splitting are done by the dataset "
                                 "(StreamingDataset(shuffle=True, seed=...))")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive int")
        dataset._batch_size = batch_size
        self._batch = batch_size
        if dataset.item_loader is not None:
            # Token batches are built whole in C++ (one buffer, DLPack): no collation.
            if kwargs.get("collate_fn") is not None or kwargs.get("drop_last"):
                raise ValueError("with a TokensLoader, batches are built in C++: collate_fn and drop_last are not "
                                 "supported (use drop_last on the StreamingDataset)")
            dataset._yield_batches = True
            super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        else:
            super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, **kwargs)
        self._next_epoch = dataset.epoch
        self._resume_at = 0      # epoch position the next iteration starts at
        self._current = None     # (epoch, start, world_size, total positions) while iterating
        self._batches = 0

    def __len__(self) -> int:
        """Batches per rank and epoch."""
        if self.dataset.item_loader is not None:
            return -(-len(self.dataset) // self._batch)
        return super().__len__()

    def __iter__(self):
        ds: StreamingDataset = self.dataset
        epoch, start = self._next_epoch, self._resume_at
        world = current_layout().world_size
        total = start + rank_count(max(ds.num_samples - start, 0), world, ds.drop_last) * world
        ds._set_position(epoch, start)
        self._current = (epoch, start, world, total)
        self._batches = 0
        self._next_epoch, self._resume_at = epoch + 1, 0
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict:
        """Where the run stands, as small plain (JSON-serializable) data."""
        ds: StreamingDataset = self.dataset
        epoch, consumed = self._next_epoch, self._resume_at
        if self._current is not None:
            cur_epoch, start, world, total = self._current
            done = start + self._batches * self._batch * world
            if done < total:
                epoch, consumed = cur_epoch, done
        return {
            "version": STATE_VERSION,
            "epoch": epoch,
            "consumed": consumed,  # epoch positions read by all ranks together
            "order": {"shuffle": ds.shuffle, "seed": ds.seed, "partitions": ds.partitions,
                      "window_items": ds.window_items},
            "dataset": {"input_dir": ds.input_dir, "num_samples": ds.num_samples,
                        "fingerprint": ds.core.fingerprint},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continues from ``state`` at the next ``iter(loader)``, on any layout."""
        ds: StreamingDataset = self.dataset
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')!r} is not {STATE_VERSION}: "
                             "it was saved by another chute version")
        saved = state["dataset"]
        if saved["fingerprint"] != ds.core.fingerprint or saved["num_samples"] != ds.num_samples:
            raise ValueError(
                f"the loader state was saved for the dataset {saved['input_dir']} ({saved['num_samples']} samples, "
                f"fingerprint {saved['fingerprint']}), but this loader reads {ds.input_dir} ({ds.num_samples} samples, "
                f"fingerprint {ds.core.fingerprint}): resume with the same dataset")
        mine = {"shuffle": ds.shuffle, "seed": ds.seed, "partitions": ds.partitions, "window_items": ds.window_items}
        diff = {k: (state["order"][k], mine[k]) for k in mine if state["order"][k] != mine[k]}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"the loader state was saved with another sample order ({detail}); "
                             "create the StreamingDataset with the saved values to resume")
        self._next_epoch, self._resume_at = int(state["epoch"]), int(state["consumed"])
        self._current = None
