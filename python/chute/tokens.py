"""TokensLoader: read a token dataset as blocks of consecutive tokens."""

from __future__ import annotations

_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


class TokensLoader:
    """``StreamingDataset(..., item_loader=TokensLoader(block_size=2049))`` makes each item
    a block of ``block_size`` consecutive tokens of the dataset's token stream (its 1-D
    integer arrays concatenated in order); blocks cross document and chunk boundaries and
    only the final remainder is left out. Blocks come back as ``dtype`` tensors
    (default int64; "int32", or the stored dtype, also work), converted in C++ with SIMD.
    With :class:`chute.StreamingDataLoader`, whole ``[batch_size, block_size]`` batches
    are built in C++ straight into one buffer handed to torch through DLPack, by
    ``num_workers`` threads of the training process (the GIL is released while they
    gather), so batches never cross a process boundary.
    """

    def __init__(self, block_size: int, dtype="int64"):
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size={block_size!r} must be a positive int")
        name = str(dtype).removeprefix("torch.")
        if name not in _INT_DTYPES:
            raise ValueError(f"dtype={dtype!r}: use an integer dtype such as torch.int64 or 'int32'")
        self.block_size = block_size
        self.dtype = name

    def __repr__(self):
        return f"TokensLoader(block_size={self.block_size}, dtype={self.dtype!r})"
