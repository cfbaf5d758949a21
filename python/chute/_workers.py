"""Jobs run in worker processes (optimize, map): one way to set them up and collect results."""

from __future__ import annotations

import multiprocessing
import sys


def run_jobs(init, init_args: tuple, process, jobs: list, num_workers: int, ordered: bool = True):
    """Yields process(job) for each job, after init(*init_args) in the process that runs it:
    this one when num_workers <= 0 (or there is one job), else forked workers; in job order
    (`ordered`) or as they finish."""
    if num_workers <= 0 or len(jobs) <= 1:
        init(*init_args)
        for job in jobs:
            yield process(job)
        return
    # fork passes functions without pickling (lambdas and closures work); spawn where fork is absent.
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(num_workers, initializer=init, initargs=init_args) as pool:
        yield from (pool.imap if ordered else pool.imap_unordered)(process, jobs, chunksize=1)
