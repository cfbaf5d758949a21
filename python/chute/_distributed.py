"""Where this process sits in the job: rank / world size, read at iteration time."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @property
    def part(self) -> int:
        """This reader's index among rank * num_workers + worker."""
        return self.rank * self.num_workers + self.worker

    @property
    def num_parts(self) -> int:
        return self.world_size * self.num_workers


def _env_int(*names: str):
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def current_layout() -> Layout:
    """torch.distributed if initialized, else torchrun's variables, else SLURM's; plus the
    DataLoader worker of this process."""
    rank, world = 0, 1
    import torch.distributed as dist
    from torch.utils.data import get_worker_info

    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        env_world = _env_int("WORLD_SIZE", "SLURM_NTASKS")
        if env_world:
            world = env_world
            rank = _env_int("RANK" if "WORLD_SIZE" in os.environ else "SLURM_PROCID") or 0
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside world size {world}: check RANK / WORLD_SIZE")
    info = get_worker_info()
    if info is None:
        return Layout(rank, world)
    return Layout(rank, world, info.id, info.num_workers)
