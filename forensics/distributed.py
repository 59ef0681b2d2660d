"""Distributed helpers: one process group setup for every trainer and for preprocessing.

Following torchvision's reference scripts, the rank and world size come from the torchrun
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) or from SLURM (``SLURM_PROCID``,
``SLURM_NTASKS``, ``SLURM_LOCALID``); a plain ``python`` run is rank 0 of 1 and sets nothing up.
Only rank 0 prints, logs to W&B and writes shared files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size``, GPU ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the one process that prints and writes shared outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistEnv:
    """Read rank/world size from torchrun's or SLURM's environment (rank 0 of 1 if neither)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return DistEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistEnv()


def init_distributed(device: str = "cpu") -> DistEnv:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo on CPU).

    Returns the process's :class:`DistEnv`; does nothing for a single process. Under SLURM
    without torchrun, ``MASTER_ADDR``/``MASTER_PORT`` must be set by the job script.
    """
    env = dist_env()
    if not env.distributed:
        return env
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return env
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    log.info("process group: rank %d of %d (%s)", env.rank, env.world_size, backend)
    return env


def cleanup_distributed() -> None:
    """Leave the process group if we joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shard(items: list, rank: int, world_size: int) -> list:
    """A disjoint, deterministic slice of ``items`` for ``rank`` (round-robin: balanced sizes)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"shard {rank} is not in 0..{world_size - 1}")
    return items[rank::world_size]
