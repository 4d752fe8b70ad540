"""Weight averaging (``--select averaged``): the mean of the weights after each of a run's last epochs.

Stochastic weight averaging (Izmailov et al., 2018): the weights after each of the last epochs lie
around a wide valley of the loss; their mean lies nearer its middle than any one of them, where
a model tends to rank new images better and to be less over-confident. It costs no extra
training: one pass over the training images at the end, to measure BatchNorm's statistics for
the averaged weights (the averaged weights never produced the statistics the epochs recorded).

:func:`xraykit.loop.fit` keeps the running mean in each checkpoint (so ``--resume`` continues
it) and writes the averaged model as ``checkpoints/averaged.pt`` after the last epoch.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .devices import DeviceLike, Forward, to_device
from .inputs import batch_bounds

AVERAGED_SHARE = 0.3  # of a run's epochs, the last ones whose weights are averaged


def first_averaged_epoch(epochs: int) -> int:
    """The first epoch (counted from 0) whose weights enter the average of a run of ``epochs``:
    the last :data:`AVERAGED_SHARE` of them, at least one (10 epochs: the weights after epochs 8, 9 and 10)."""
    return epochs - max(1, math.ceil(AVERAGED_SHARE * epochs - 1e-9))


def add(average: Optional[dict], model: nn.Module, start: int) -> dict:
    """``average`` (a running mean of ``model``'s trainable weights, or None) with the current weights added.

    A plain dict of tensors and numbers, so it travels in a checkpoint that loads with ``weights_only=True``:
    ``{"from": the first averaged epoch, "count": epochs averaged, "weights": {name: mean}}``.
    """
    current = {name: p.detach().float().cpu() for name, p in model.named_parameters() if p.requires_grad}
    if average is None or average.get("from") != start:
        return {"from": start, "count": 1, "weights": {k: v.clone() for k, v in current.items()}}
    count = average["count"] + 1
    for name, value in current.items():
        average["weights"][name] += (value - average["weights"][name]) / count
    return {"from": start, "count": count, "weights": average["weights"]}


def load_average(model: nn.Module, average: dict) -> None:
    """Put the averaged weights into ``model`` (in place); its other weights stay."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in average["weights"]:
                p.copy_(average["weights"][name].to(p.device, p.dtype))


@torch.no_grad()
def recompute_batchnorm(
    model: nn.Module, forward: Forward, inputs: torch.Tensor, prepare: Forward, batch_size: int, device: DeviceLike
) -> int:
    """Measure the statistics of ``model``'s trainable BatchNorm layers afresh over ``inputs``; returns how many layers.

    Each such layer forgets its running mean and variance and takes the plain average over all
    batches (momentum None), in train mode; frozen BatchNorm layers keep theirs. ``forward`` runs
    ``model`` (or the part of it that the inputs reach); the images are not augmented.
    """
    layers = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and any(p.requires_grad for p in m.parameters())
    ]
    if not layers:
        return 0
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch
        m.train()
    for start, end in batch_bounds(len(inputs), batch_size):  # in train mode, as training batches them
        forward(prepare(to_device(inputs[start:end], device)))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)
    return len(layers)
