"""Where the jobs of ``optimize`` and ``map`` run: processes on this machine, or a Ray cluster.

An executor runs ``init(*init_args)`` once in each worker, then ``process(job)`` for each
job there, and yields the results as they finish. A job whose worker dies is reported
(JobLost), never waited for.
"""

from __future__ import annotations

import gc
import multiprocessing
from multiprocessing import connection
import os
import sys
import time
import traceback


class JobLost(RuntimeError):
    """A worker died (killed, out of memory, a crash in native code) while running a job."""

    def __init__(self, job, reason: str):
        super().__init__(reason)
        self.job = job


class JobFailure:
    """An exception raised by a job, carried back from its worker with the traceback."""

    def __init__(self, exc: BaseException):
        self.text = "".join(traceback.format_exception(exc))
        try:  # the driver must be able to unpickle it too (a custom __init__ may not)
            import pickle

            pickle.loads(pickle.dumps(exc))
            self.exc = exc
        except Exception:
            self.exc = None

    def raise_as(self, error: type, what: str):
        """Raises `error` with the message `what`, the exception and the worker's traceback."""
        message = what
        if self.exc is not None:
            message += f": {type(self.exc).__name__}: {self.exc}"
        message += f"\n--- traceback in the worker ---\n{self.text}"
        raise error(message) from self.exc


class ProcessExecutor:
    """Forked worker processes on this machine (spawned where fork is absent); with
    ``num_workers=0``, this process."""

    # How often the wait for results also checks that the workers are alive (a worker's
    # exit wakes it at once, unless processes that fn forked hold its descriptors).
    LIVENESS_SECONDS = 1.0
    # How long stopped workers get to exit before they are killed.
    STOP_SECONDS = 5.0

    def __init__(self, num_workers: int | None = None):
        self.num_workers = (os.cpu_count() or 1) if num_workers is None else num_workers

    def run(self, init, init_args: tuple, process, jobs: list):
        if self.num_workers <= 0 or len(jobs) <= 1:
            init(*init_args)
            for job in jobs:
                yield process(job)
            return
        # fork passes functions without pickling (lambdas and closures work).
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        workers, conns = [], []
        try:
            for w in range(min(self.num_workers, len(jobs))):
                parent, child = ctx.Pipe()
                worker = ctx.Process(target=_process_worker, args=(init, init_args, process, jobs, child),
                                     name=f"chute-worker-{w}", daemon=True)
                worker.start()
                child.close()
                workers.append(worker)
                conns.append(parent)
            # Each worker is sent one job at a time, so the job of a worker that dies is known;
            # a worker's exit (its sentinel) wakes the wait as its result does.
            running = {}  # worker -> the job it runs
            todo = iter(range(len(jobs)))
            for w, conn in enumerate(conns):
                running[w] = next(todo)
                _send(conn, running[w])
            while running:
                connection.wait([conns[w] for w in running] + [workers[w].sentinel for w in running],
                                timeout=self.LIVENESS_SECONDS)
                for w in list(running):
                    if conns[w].poll():  # a result, or the end of the pipe of a worker that died
                        try:
                            result = conns[w].recv()
                        except EOFError:
                            raise JobLost(jobs[running[w]], _died(workers[w])) from None
                        if isinstance(result, _SetupFailed):
                            raise JobLost(jobs[running[w]], f"its worker failed to start:\n{result.text}")
                        k = next(todo, None)
                        _send(conns[w], k)
                        if k is None:
                            del running[w]
                        else:
                            running[w] = k
                        yield result
                    elif workers[w].exitcode is not None:
                        raise JobLost(jobs[running[w]], _died(workers[w]))
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
            deadline = time.monotonic() + self.STOP_SECONDS
            for worker in workers:
                worker.join(timeout=max(0.0, deadline - time.monotonic()))
                if worker.is_alive():  # it handles SIGTERM
                    worker.kill()
                    worker.join()
            for conn in conns:
                conn.close()


def _send(conn, k) -> None:
    try:
        conn.send(k)
    except OSError:  # the worker is gone: its pipe's end or its exit code tells next
        pass


def _process_worker(init, init_args, process, jobs, conn):
    # The objects inherited from the parent (torch's, say) are left out of garbage
    # collection: collections stay quick, and their pages are not copied on write.
    gc.freeze()
    try:
        init(*init_args)
    except BaseException as exc:  # the driver reports it with the job it had sent
        conn.send(_SetupFailed("".join(traceback.format_exception(exc))))
        return
    while (k := conn.recv()) is not None:
        conn.send(process(jobs[k]))


class _SetupFailed:
    def __init__(self, text: str):
        self.text = text


def _died(worker) -> str:
    worker.join(timeout=10)  # its exit code once it is reaped
    exitcode = worker.exitcode
    if exitcode is None:
        return "its worker process closed its pipe and did not exit"
    if exitcode < 0:
        return (f"its worker process was killed by signal {-exitcode}"
                + (" (SIGKILL: out of memory?)" if exitcode == -9 else ""))
    return f"its worker process exited with code {exitcode}"


class RayExecutor:
    """Runs the jobs on a Ray cluster: ``num_workers`` actors spread over its nodes, each
    set up once, each running one job at a time.

    Args:
        address: the cluster to join (``ray.init(address=...)``), when this process has
            not joined one yet; None joins the cluster Ray finds (``RAY_ADDRESS``, a
            running local cluster) or starts one on this machine.
        num_workers: actors (default: as many as the cluster's CPUs hold with the
            actors' ``num_cpus``, at most one per job).
        actor_options: more options for each actor (``num_cpus``, ``memory``,
            ``resources``, ``runtime_env``, ...; see ``ray.remote``).

    Every worker reads the inputs and writes the output itself, so the output URL must
    be reachable from every node (an object store, or a directory they all mount).
    Needs the ``ray`` extra: ``pip install 'chute[ray]'``.
    """

    # How long one wait lasts before the start-up deadline is checked again.
    WAIT_SECONDS = 5.0
    # How long the actors may take to start (be placed on a node and set up) before the
    # run fails: actors a cluster has no room for would wait forever.
    START_SECONDS = 300.0

    def __init__(self, address: str | None = None, num_workers: int | None = None, **actor_options):
        _import_ray()
        self.address = address
        self.num_workers = num_workers
        # An actor that dies (its node lost) is restarted and its job run again.
        self.actor_options = {"num_cpus": 1, "scheduling_strategy": "SPREAD", "max_restarts": 3,
                              "max_task_retries": 3, **actor_options}

    def run(self, init, init_args: tuple, process, jobs: list):
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address)
        resources = ray.cluster_resources()
        cpus = self.actor_options["num_cpus"]
        fit = int(resources.get("CPU", 1) // cpus) if cpus else len(jobs)
        count = max(1, min(self.num_workers or fit, len(jobs)))
        setup = ray.put((init, init_args, process))
        actor = ray.remote(_RayWorker).options(**self.actor_options)
        actors = [actor.remote(setup) for _ in range(count)]
        starting = {a.__ray_ready__.remote(): a for a in actors}  # ready once placed on a node and set up
        pending = {}  # result ref -> (actor, job)
        todo, idle = list(reversed(jobs)), list(actors)  # a job each at once: it runs when its actor starts
        start_deadline = time.monotonic() + self.START_SECONDS
        try:
            while todo or pending:
                while todo and idle:
                    a, job = idle.pop(), todo.pop()
                    pending[a.run.remote(job)] = (a, job)
                ready, _ = ray.wait(list(pending) + list(starting), num_returns=1, timeout=self.WAIT_SECONDS)
                for ref in ready:
                    if ref in starting:
                        del starting[ref]
                        try:
                            ray.get(ref)
                        except ray.exceptions.RayError as exc:
                            raise JobLost(None, f"a Ray worker failed to start: {exc}") from exc
                        continue
                    a, job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise JobLost(job, f"its Ray worker failed: {exc}") from exc
                    idle.append(a)
                    yield result
                if starting and time.monotonic() > start_deadline:
                    if len(starting) == len(actors):
                        raise JobLost(None, f"no Ray worker started within {self.START_SECONDS:g} s: does the "
                                            f"cluster ({resources}) have room for actors with {self.actor_options}?")
                    for a in starting.values():  # never placed: their jobs go to the others
                        for ref, (b, job) in list(pending.items()):
                            if b is a:
                                del pending[ref]
                                todo.append(job)
                        ray.kill(a)
                        actors.remove(a)
                    starting.clear()
        finally:
            for a in actors:
                ray.kill(a)


class _RayWorker:
    def __init__(self, setup):
        init, init_args, self.process = setup
        init(*init_args)

    def run(self, job):
        return self.process(job)


def executor_for(executor, num_workers: int | None):
    """The executor that `optimize` / `map` arguments name: None (processes here), "ray",
    or a RayExecutor."""
    if executor is None:
        return ProcessExecutor(num_workers)
    if executor == "ray":
        return RayExecutor(num_workers=num_workers)
    if isinstance(executor, RayExecutor):
        if num_workers is not None:
            raise ValueError("give num_workers to the executor object, not beside it")
        return executor
    raise ValueError(f"executor must be None, 'ray' or a chute.RayExecutor, not {executor!r}")


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("executor='ray' needs Ray: pip install 'chute[ray]'") from exc
    return ray
