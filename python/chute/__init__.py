"""chute: a streaming data loader for ML training.

``optimize`` turns raw data into chunk files; ``StreamingDataset`` streams them into
PyTorch (or any DLPack consumer); ``map`` runs a function over inputs and keeps the files
it writes (optimize and map run on this machine's processes or on a Ray cluster:
``RayExecutor``); ``chute.checkpoint`` saves and loads checkpoints at the same URLs.
"""

import atexit

import pyarrow.fs  # noqa: F401  -- loads the one libarrow chute._core links; registers S3 finalization
import pyarrow.parquet  # noqa: F401  -- libparquet first, bound to the OpenSSL linked into it (chute's to the system's)

from chute import _core, checkpoint
from chute._core import CorruptDataError, FormatVersionError
from chute._map import MapError, map
from chute.combined import CombinedStreamingDataset
from chute._process import at_exit
from chute.dataset import StreamingDataset
from chute.executors import RayExecutor
from chute.loader import StreamingDataLoader
from chute.optimize import OptimizeError, optimize
from chute.raw import StreamingRawDataset
from chute.tokens import TokensLoader

__version__ = "0.1.0"

# Runs before pyarrow's S3 finalization (atexit is last-in, first-out): every S3 client
# must be gone by then or the interpreter hangs at exit (Arrow issue 50188).
atexit.register(at_exit)
# chute.map is left out: a star import would shadow the built-in map.
__all__ = [
    "CombinedStreamingDataset",
    "CorruptDataError",
    "FormatVersionError",
    "MapError",
    "OptimizeError",
    "RayExecutor",
    "StreamingDataLoader",
    "StreamingDataset",
    "StreamingRawDataset",
    "TokensLoader",
    "cmake_prefix_path",
    "optimize",
]


def cmake_prefix_path() -> str:
    """The prefix to give CMake (CMAKE_PREFIX_PATH) for ``find_package(chute)``."""
    import os

    return os.path.dirname(os.path.abspath(__file__))
