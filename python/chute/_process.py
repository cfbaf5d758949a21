"""What a process using chute sets up once: its heap's handling of freed memory, leaving
the node caches at exit, and where caches live by default."""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.util
import os
import sys

from chute import _core


_malloc_tuned_pid = None


def keep_freed_memory():
    """Stops glibc from handing freed memory straight back to the kernel in a process that
    reads batches. Each batch allocates and frees its big leaves (a 110 KB bytes object per
    sample, say); by default glibc returns the freed top of the heap once it exceeds 128 KB,
    so every batch faults in and zeroes fresh pages for its samples — as much work as
    copying them. The heap now keeps up to 64 MiB free for the next batches, and blocks up to
    4 MiB come from it rather than from mmap (process-wide; set once per process)."""
    global _malloc_tuned_pid
    if _malloc_tuned_pid == os.getpid() or not sys.platform.startswith("linux"):
        return
    _malloc_tuned_pid = os.getpid()
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc only
    if mallopt is not None:
        m_trim_threshold, m_mmap_threshold = -1, -3
        mallopt(m_mmap_threshold, 4 << 20)
        mallopt(m_trim_threshold, 64 << 20)


_clean_up_pid = None  # the process that registered its clean-up


def clean_up_at_exit():
    """Makes this process leave the node cache when it exits — also a multiprocessing child
    (a DataLoader worker), which ends with os._exit, past atexit, but runs
    multiprocessing's finalizers first. (Object-store clients are closed by the main
    process only: a forked child also holds copies of its parent's, which it must not
    touch.)"""
    global _clean_up_pid
    if _clean_up_pid != os.getpid():
        _clean_up_pid = os.getpid()
        multiprocessing.util.Finalize(None, _core.detach_caches, exitpriority=0)


def at_exit():
    """chute's atexit handler (it runs before pyarrow's S3 finalization, see __init__).

    Daemonic children — DataLoader workers of an iteration left unfinished — would be
    terminated by multiprocessing right after this; terminated first, they are no longer
    attached to the node cache when this process leaves it, so the last one out removes
    the shared-memory index instead of leaving it in /dev/shm."""
    if _clean_up_pid == os.getpid():
        children = [c for c in multiprocessing.active_children() if c.daemon]
        for child in children:
            child.terminate()
        for child in children:
            child.join(5)
    _core.shutdown_storage()


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "chute")
