"""Data-parallel training across processes with PyTorch's own engine: `torchrun --nproc-per-node N
-m lstm_repl train ...` (add --nnodes and a rendezvous for several machines). torchrun sets RANK,
WORLD_SIZE and LOCAL_RANK; each process then trains on its own contiguous streams of the corpus
(the batch of one process is --batch-size; together they are one batch of N x --batch-size),
gradients are averaged by DistributedDataParallel (NCCL on GPUs, gloo on CPUs), and the first
process alone evaluates, writes checkpoints and logs, and draws progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lstm_repl.model import State


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_environment() -> Ranks:
    try:
        return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        return Ranks()


def start(ranks: Ranks, gpu: bool) -> None:
    """Join the process group (once): NCCL between GPUs, gloo between CPU processes."""
    if ranks.active and not dist.is_initialized():
        if gpu:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if gpu else "gloo")


def finish(ranks: Ranks, ended_well: bool) -> None:
    """Leave the process group: together when all went well (the first process may still be
    writing the last checkpoint), at once otherwise. A process that exits still in the group can
    be aborted by the gloo threads it leaves behind."""
    if ranks.active and dist.is_initialized():
        if ended_well:
            dist.barrier()
        dist.destroy_process_group()


def device_for(ranks: Ranks, device: torch.device) -> torch.device:
    """Each process on a machine takes its own GPU."""
    return torch.device("cuda", ranks.local_rank) if ranks.active and device.type == "cuda" else device


def own_rows(ranks: Ranks, streams, per_rank: int):
    """This process's contiguous streams (rows) of the batch laid out for all of them."""
    return streams[ranks.rank * per_rank : (ranks.rank + 1) * per_rank]


def data_parallel(ranks: Ranks, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model wrapped to average gradients over the processes (itself, for one process)."""
    if not ranks.active:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def agree(ranks: Ranks, *flags: bool) -> list[bool]:
    """Each flag true on every process if it is true on any (a stop, the end of the run): all
    processes must leave the loop at the same step, or the others would wait forever."""
    if not ranks.active:
        return list(flags)
    values = torch.tensor([float(f) for f in flags], device=_collective_device())
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]


def from_leader(ranks: Ranks, values: list[float]) -> list[float]:
    """The first process's values on every process (a measured speed, so all plan alike)."""
    if not ranks.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def mean(ranks: Ranks, value: torch.Tensor) -> torch.Tensor:
    """The mean over processes (of a loss: then every process decides alike whether it is finite)."""
    if not ranks.active:
        return value
    value = value.detach().float().clone()
    dist.all_reduce(value)
    return value / ranks.world


def gather_streams(ranks: Ranks, state: State | None) -> State | None:
    """The carried state of every process's streams, in stream order (for saving a resumable run)."""
    if not ranks.active or state is None:
        return state
    out = []
    for part in state:
        parts = [torch.empty_like(part) for _ in range(ranks.world)]
        dist.all_gather(parts, part.contiguous())
        out.append(torch.cat(parts, dim=1))
    return tuple(out)


def own_streams(ranks: Ranks, state: State | None, per_rank: int) -> State | None:
    """This process's rows of a carried state saved for all streams."""
    if not ranks.active or state is None:
        return state
    return tuple(s[:, ranks.rank * per_rank : (ranks.rank + 1) * per_rank] for s in state)


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
