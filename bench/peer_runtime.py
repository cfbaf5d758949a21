"""What every library's run in compare_peers.py shares: timing its epochs, sampling its
memory, and the workarounds some peers need to import or to reach the bench store."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import types


def count_samples(batch):
    if isinstance(batch, dict):
        return len(batch["label"])
    return batch.shape[0] if hasattr(batch, "shape") else len(batch)


def read_epochs(make_loader, epochs=2):
    """(seconds to first batch, seconds, samples) per epoch; epoch 1 includes opening the
    dataset (reading its index, from S3 too)."""
    out = []
    t0 = time.perf_counter()
    loader = make_loader()
    for _ in range(epochs):
        first, n = None, 0
        for batch in loader:
            if first is None:
                first = time.perf_counter() - t0
            n += count_samples(batch)
        out.append((first, time.perf_counter() - t0, n))
        t0 = time.perf_counter()
    return out


def import_streaming():
    try:
        import torchvision  # noqa: F401
    except Exception:  # its registry build fails next to the CPU torch; vision is unused here
        sys.modules["streaming.vision"] = types.ModuleType("streaming.vision")


def litdata_over_http():
    # litdata fetches chunks with obstore, whose client refuses http:// endpoints unless
    # told otherwise (a real S3 endpoint is https).
    from litdata.streaming import downloader

    downloader._OBSTORE_CLIENT_OPTIONS = {**downloader._OBSTORE_CLIENT_OPTIONS, "allow_http": "true"}


class MemorySampler:
    """Peak memory of this process and its descendants, sampled every 20 ms from /proc:
    RSS (resident pages, file-backed ones too: mapped chunks, page cache of mmaps) and
    anonymous RSS (the process's own heap, stacks, private buffers)."""

    def __init__(self):
        self.peak_rss = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _tree(pid):
        # Children of each process's main thread, which forks the DataLoader workers (and
        # their subprocesses): listing every thread's children would cost this thread
        # (and the GIL it shares with the loader) more with every I/O thread of a library.
        pids = [pid]
        for p in pids:
            with contextlib.suppress(OSError), open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        return pids

    def _run(self):
        while not self._stop.wait(0.02):
            rss = anon = 0
            for pid in self._tree(os.getpid()):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1])
                        elif line.startswith("RssAnon:"):
                            anon += int(line.split()[1])
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak_rss / 1024, self.peak_anon / 1024
