"""Console entry points for the C++ bench executables shipped in chute/bin."""

import os
import sys


def _exec(name: str) -> None:
    import pyarrow

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", name)
    # libchute finds libarrow next to it (RUNPATH $ORIGIN/../pyarrow); pyarrow may live in
    # another site-packages (a venv with --system-site-packages, a --user install).
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [*pyarrow.get_library_dirs(), *filter(None, [env.get("LD_LIBRARY_PATH")])])
    os.execve(path, [path, *sys.argv[1:]], env)


def read_main() -> None:
    _exec("chute_bench_read")


def tokens_main() -> None:
    _exec("chute_bench_tokens")
