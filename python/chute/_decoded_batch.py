"""Batches decoded by chute.transforms: a task per sample on a pool of threads (the
decoders release the GIL), the fixed-shape field written by each task straight into its
row of one [B, ...] tensor — in the training process (StreamingDataLoader's threads), or
in a DataLoader worker, where that tensor is shared memory the batch crosses in."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import torch
from torch.utils.data import default_collate

from chute._shared_batch import DecodedBatch, Reservation
from chute._missing import SKIPPED


class BatchDecoding:
    """One batch decoding on `pool`. `rows` is the tensor the fixed-shape field is decoded
    into (default: a new one)."""

    def __init__(self, ds, items, ids, epoch, pool, rows=None):
        fixed = ds._preset.fixed_output()
        self.field = fixed[0] if fixed else None
        if fixed and rows is None:
            rows = torch.from_numpy(np.empty((len(items), *fixed[1]), fixed[2]))
        self.tensor = rows
        out = rows.numpy() if fixed else [None] * len(items)
        self.futures = [pool.submit(ds._sample, leaves, i, epoch, out[k])
                        for k, (leaves, i) in enumerate(zip(items, ids))]

    def cancel(self):
        for f in self.futures:
            f.cancel()

    def collate(self):
        """The batch (None when every sample of it was skipped)."""
        try:
            samples = [f.result() for f in self.futures]
        except BaseException:
            self.cancel()
            concurrent.futures.wait(self.futures)  # none still writes into the rows
            raise
        kept = [k for k, s in enumerate(samples) if s is not SKIPPED]
        if not kept:
            return None  # counted, not yielded
        samples = [samples[k] for k in kept]
        if self.field is None:
            return default_collate(samples)
        tensor = self.tensor if len(kept) == len(self.futures) else self.tensor[kept]
        rest = default_collate([{f: v for f, v in s.items() if f != self.field} for s in samples])
        return {f: tensor if f == self.field else rest[f] for f in samples[0]}


def worker_batches(ds, reader, epoch: int, drop_partial: bool):
    """A DataLoader worker's batches (DecodedBatch items), each decoded on the worker's
    threads into the shared buffer it then crosses to the main process in."""
    pool = ds._decode_pool()
    fixed = ds._preset.fixed_output()
    while (items := reader.next()) is not None:
        if drop_partial and len(items) < ds._batch_size:
            continue
        reservation = Reservation((len(items), *fixed[1]), fixed[2]) if fixed else None
        try:
            batch = BatchDecoding(ds, items, reader.ids, epoch, pool,
                                  reservation.rows if reservation else None).collate()
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        yield DecodedBatch(batch, reservation)
