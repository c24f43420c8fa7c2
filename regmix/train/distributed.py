"""Data-parallel set-up under torchrun: one process per GPU (NCCL) or per CPU slot (gloo)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from regmix import runtime


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank, how many processes, its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def init_distributed(threads: int | None) -> Dist:
    """Read torchrun's environment: one process per GPU (NCCL), or per CPU slot (gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    # CPU ranks share the cores instead of each grabbing all of them.
    torch.set_num_threads(threads or max(1, runtime.cpu_count() // local_world))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank() if world > 1 else 0, world_size=world, device=device)
