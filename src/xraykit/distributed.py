"""Scale-out with ``torchrun``: which process this is, and the few collective steps training needs.

``torchrun --nproc_per_node N -m xraykit train ...`` starts N copies of xraykit with the
environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. Every copy loads the
same data and computes the same epoch order (a function of seed and epoch alone), then
takes its own part of every batch; DistributedDataParallel averages the gradients, so every
copy takes the same optimizer step. ``--batch-size`` stays the batch of one optimizer step,
whatever N is: the same recipe, spread over N processes. Only rank 0 writes files.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here does nothing and
returns its input: a single process never touches ``torch.distributed``.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from .errors import XrayError

_device = torch.device("cpu")  # where collective operations put their tensors (CUDA for nccl)


@dataclass(frozen=True)
class World:
    """This process's place among the processes ``torchrun`` started."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0


def world() -> World:
    """Read from ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a single process is rank 0 of 1."""
    try:
        return World(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )
    except ValueError:
        raise XrayError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)") from None


def is_distributed() -> bool:
    return world().size > 1


def is_main() -> bool:
    """True in the one process that writes files and prints (rank 0, or the only process)."""
    return world().rank == 0


def setup(device: torch.device) -> torch.device:
    """Join the other processes (gloo on CPU, nccl on CUDA); returns this process's device.

    On CUDA each process takes the GPU numbered by its ``LOCAL_RANK``.
    """
    global _device
    w = world()
    if w.size == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise XrayError(
            f"torchrun: device '{device.type}' is not supported for several processes; use --device cpu or cuda"
        )
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    _device = device
    return device


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if is_distributed():
        dist.barrier()


def rank0_value(value):
    """Rank 0's ``value`` in every process, such as a folder named by the clock; alone, ``value`` itself."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module) -> nn.Module:
    """``module`` in DistributedDataParallel under torchrun (gradients averaged across processes), else itself."""
    if not is_distributed():
        return module
    device_ids = [_device.index] if _device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def batch_part(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This process's part of ``batch`` (every N-th index), and the weight of its mean loss.

    DDP averages the N processes' gradients. Weighting each process's mean loss by its
    ``len(part) * N / len(batch)`` makes that average the gradient of the whole batch's
    mean loss even when the parts differ in size (exactly so without class weights). A
    process left with nothing (a last batch smaller than N) still joins the average, with
    one sample and weight 0. A single process gets ``(batch, 1.0)``.
    """
    w = world()
    if w.size == 1:
        return batch, 1.0
    part = batch[w.rank :: w.size]
    if len(part) == 0:
        return batch[:1], 0.0
    return part, len(part) * w.size / len(batch)


def sum_over_ranks(*values: float) -> list[float]:
    """Each value summed over all processes (the values themselves in a single process)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device)
    dist.all_reduce(t)
    return t.tolist()


def in_parts(fn: Callable[[torch.Tensor], torch.Tensor], items: torch.Tensor) -> torch.Tensor:
    """``fn(items)``, with each process computing the rows of its own contiguous share.

    For work whose rows do not depend on each other (features, validation logits): N
    processes finish it N times sooner, and every process gets the whole result, in order.
    """
    w = world()
    n = len(items)
    if w.size == 1 or n < w.size:
        return fn(items)
    bounds = [n * r // w.size for r in range(w.size + 1)]
    mine = fn(items[bounds[w.rank] : bounds[w.rank + 1]])
    longest = max(b - a for a, b in zip(bounds, bounds[1:]))
    padded = torch.zeros((longest, *mine.shape[1:]), dtype=mine.dtype, device=_device)
    padded[: len(mine)] = mine.to(_device)
    pieces = [torch.empty_like(padded) for _ in range(w.size)]
    dist.all_gather(pieces, padded)
    return torch.cat([p[: b - a] for p, a, b in zip(pieces, bounds, bounds[1:])]).to(mine.device)


def seed_offset() -> int:
    """A different stream of random draws per process (0 in a single process, so results do not change)."""
    return 104_729 * world().rank


__all__: Sequence[str] = [
    "World",
    "world",
    "is_distributed",
    "is_main",
    "setup",
    "barrier",
    "rank0_value",
    "wrap",
    "batch_part",
    "sum_over_ranks",
    "in_parts",
    "seed_offset",
]
