"""Batches decoded by chute.transforms on a pool of threads (the decoders release the
GIL), the fixed-shape field written by each sample's decode straight into its row of one
[B, ...] tensor — in the training process (StreamingDataLoader's threads), or in a
DataLoader worker, where that tensor is shared memory the batch crosses in."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import torch
from torch.utils.data import default_collate

from chute._shared_batch import DecodedBatch, Reservation
from chute._missing import SKIPPED


class Shares:
    """fn(k) for every k < n on `pool`: a task per pool thread, each taking the next k in
    turn. (A task per sample cost 15-20% more CPU per decoded image, measured: the waiting
    thread woke for each.)"""

    def __init__(self, pool, fn, n: int):
        self.results = [None] * n
        self._left = iter(range(n))  # shared by the tasks: next() on it is atomic under the GIL
        self._stopped = False
        self._failed = []  # (k, the error fn(k) raised)
        self.futures = []
        try:
            for _ in range(min(pool._max_workers, n)):
                self.futures.append(pool.submit(self._run, fn))
        except BaseException:
            self.abandon()
            raise

    def _run(self, fn):
        for k in self._left:
            if self._stopped:
                return
            try:
                self.results[k] = fn(k)
            except BaseException as e:
                self._failed.append((k, e))
                self._stopped = True  # the other tasks stop at their next sample
                return

    def cancel(self):
        self._stopped = True
        for f in self.futures:
            f.cancel()

    def abandon(self):
        """Cancels, then waits for the running tasks: then none writes any more."""
        self.cancel()
        concurrent.futures.wait(self.futures)

    def wait(self) -> list:
        """fn's results, in order; once every task stopped, the error of the lowest-numbered
        sample that failed."""
        try:
            for f in self.futures:
                f.result()
        except BaseException:
            self.abandon()
            raise
        if self._failed:
            raise min(self._failed, key=lambda failure: failure[0])[1]
        return self.results


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
        self.shares = Shares(pool, lambda k: ds._sample(items[k], ids[k], epoch, out[k]), len(items))

    def collate(self):
        """The batch (None when every sample of it was skipped)."""
        samples = self.shares.wait()
        kept = [k for k, s in enumerate(samples) if s is not SKIPPED]
        if not kept:
            return None  # counted, not yielded
        samples = [samples[k] for k in kept]
        if self.field is None:
            return default_collate(samples)
        tensor = self.tensor if len(kept) == len(self.shares.results) else self.tensor[kept]
        rest = default_collate([{f: v for f, v in s.items() if f != self.field} for s in samples])
        return {f: tensor if f == self.field else rest[f] for f in samples[0]}


def worker_batches(ds, reader, epoch: int, drop_partial: bool):
    """A DataLoader worker's batches (DecodedBatch items), each decoded on the worker's
    threads into the shared buffer it then crosses to the main process in. The next batch
    is read and queued before this one is collated, so the decode threads never wait for
    the reader or for the batch to be sent."""
    pool = ds._decode_pool()
    fixed = ds._preset.fixed_output()

    def start():
        """The next batch, decoding, and its reservation; None at the end."""
        while (items := reader.next()) is not None:
            if drop_partial and len(items) < ds._batch_size:
                continue
            reservation = Reservation((len(items), *fixed[1]), fixed[2]) if fixed else None
            try:
                rows = reservation.rows if reservation is not None else None
                return BatchDecoding(ds, items, reader.ids, epoch, pool, rows), reservation
            except BaseException:
                if reservation is not None:
                    reservation.release()
                raise
        return None

    current, ahead = start(), None
    try:
        while current is not None:
            ahead = start()
            decoding, reservation = current
            current = None
            try:
                batch = decoding.collate()
            except BaseException:
                if reservation is not None:
                    reservation.release()
                raise
            yield DecodedBatch(batch, reservation)
            current, ahead = ahead, None
    finally:  # an error or an early stop: what is still decoding lets go of its buffer
        for left in (current, ahead):
            if left is not None:
                left[0].shares.abandon()
                if left[1] is not None:
                    left[1].release()
