"""Several processes under ``torchrun``: gloo on CPU, nccl on GPU.

Every process gathers all processes' representations and computes the *global* loss (identical everywhere, it
is a small matrix); its own rows keep their autograd graph, so its backward yields exactly its share of the
global gradient. Summing the parameters' gradients across processes then gives the global gradient, the same
as one process holding the whole batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, count: int) -> slice:
        """This process's rows of a global batch of ``count`` (which must divide evenly)."""
        if count % self.size:
            raise ValueError(f"global batch {count} does not split evenly over {self.size} processes")
        per = count // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def init_world() -> World:
    """Join the process group ``torchrun`` describes in the environment (a world of one otherwise)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return World(dist.get_rank(), dist.get_world_size())


def gather_with_local_grad(local: torch.Tensor, world: World) -> torch.Tensor:
    """All processes' rows, in rank order; this process's rows are ``local`` itself (with its graph)."""
    if world.size == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(parts, local.detach().contiguous())
    parts[world.rank] = local
    return torch.cat(parts)


def sum_gradients(parameters: Iterable[torch.nn.Parameter], world: World) -> None:
    if world.size == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)


def broadcast_parameters(parameters: Iterable[torch.nn.Parameter], world: World) -> None:
    """Start every process from rank 0's weights (adapters are randomly initialised)."""
    if world.size == 1:
        return
    with torch.no_grad():
        for parameter in parameters:
            dist.broadcast(parameter.data, src=0)


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
