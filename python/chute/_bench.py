"""Console entry points for the C++ bench executables shipped in chute/bin."""

import os
import sys


def _exec(name: str) -> None:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", name)
    os.execv(path, [path, *sys.argv[1:]])


def read_main() -> None:
    _exec("chute_bench_read")


def tokens_main() -> None:
    _exec("chute_bench_tokens")
