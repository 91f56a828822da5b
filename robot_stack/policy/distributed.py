"""Data-parallel training across processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node=N -m robot_stack train ...`` starts N copies of ``robot-stack train`` with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (and the rendezvous address) in their environment;
``DistributedContext.from_environment()`` reads them and ``start`` joins the process group (NCCL on CUDA,
gloo on the CPU). The trainer then wraps the policy in ``DistributedDataParallel`` and gives each rank its
share of every epoch (see ``shard``); a single process is the ``world_size == 1`` case of the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as torch_dist

from robot_stack.config import ConfigError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and progress bars."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "DistributedContext":
        """The context ``torchrun`` describes in the environment (a single process when it does not)."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise ConfigError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun)") from None
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"RANK {rank} / WORLD_SIZE {world} are inconsistent (set by torchrun)")
        return cls(rank, world, local)

    def device(self, requested: torch.device) -> torch.device:
        """The device of this rank: on CUDA the GPU ``LOCAL_RANK`` (one per process), else ``requested``."""
        if self.enabled and requested.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {self.local_rank} but only {torch.cuda.device_count()} GPU(s) here: "
                                  "start at most one process per GPU (--nproc_per_node)")
            return torch.device("cuda", self.local_rank)
        return requested

    def start(self, device: torch.device) -> None:
        """Join the process group (no-op for a single process)."""
        if self.enabled and not torch_dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def stop(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def sum(self, *values: float) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (the values themselves for one process)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        torch_dist.all_reduce(tensor)
        return tensor.tolist()

    def shard(self, order: np.ndarray, pad: bool) -> np.ndarray:
        """This rank's part of an epoch's sample order: every ``world_size``-th sample from ``rank`` on, as
        ``DistributedSampler`` deals them, so batch ``k`` of all ranks together is the single-process batch
        ``k`` of ``world_size`` times the size. ``pad``: repeat samples from the start so every rank gets the
        same count (training: every rank must take the same number of steps)."""
        if not self.enabled:
            return order
        if pad and len(order) % self.world_size:
            extra = self.world_size - len(order) % self.world_size
            order = np.concatenate([order, np.resize(order, extra)])
        return order[self.rank :: self.world_size]
