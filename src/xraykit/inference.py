"""From ``uint8`` images to what the network says: the input it sees (normalised as its run was), the
logits, the probabilities, and what its head receives.

Training, evaluation and explanation all go through these, so a model sees one kind of input everywhere.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Optional, Sequence

import torch
from torch import nn

from .devices import DeviceLike, Forward, accelerated, to_device
from .interfaces import Backbone
from .tta import views


def to_input(images: torch.Tensor, backbone: Backbone) -> torch.Tensor:
    """``uint8`` images to the float, normalized tensor the network sees."""
    return (images.float() / 255.0 - backbone.mean) / backbone.std


def standardize_each_image(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A forward pre-hook: each input image shifted and scaled to mean 0 and standard deviation 1.

    With ``normalize="image"`` the network never sees how bright or how contrasted an image
    was overall, only its pattern: an exposure or a contrast setting that differs between
    hospitals changes nothing it sees. As a hook rather than a layer, the model's state dict
    (and every checkpoint, plugin and CAM layer name) stays the backbone's own.
    """
    x = args[0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
    return ((x - mean) / std, *args[1:])


# Knots of the smooth stand-in whose slope carries equalisation's gradient (see equalize_each_image).
_KNOTS = 64
_UNIFORM_STD = (1 / 12) ** 0.5  # the spread of values spread evenly over [0, 1]


def equalize_each_image(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A forward pre-hook: each image's histogram equalised, then centred and scaled to spread 1.

    Every pixel becomes the fraction of its image's pixels that are as dark or darker (its rank).
    Gamma, contrast, brightness and histogram equalisation at another hospital are all
    increasing maps of intensity: none of them changes a rank, so with ``normalize="equalize"``
    the network cannot see any of them. Ranks have no gradient, and integrated gradients and
    guided backpropagation need one, so when the input asks for a gradient it is taken from a
    piecewise-linear curve through 64 of the image's quantiles (the same map, smoothed); the
    values are the exact ranks. Without a gradient (training, evaluation) the ranks of an image of
    uint8 levels are counted in a histogram instead of sorted (:func:`_ranks_by_counting`), in a
    tenth of the time; other images are sorted.
    """
    x = args[0]
    flat = x.flatten(1)
    needs_slope = x.requires_grad and torch.is_grad_enabled()
    counted = None if needs_slope else _ranks_by_counting(flat)
    if counted is not None:
        return (((counted - 0.5) / _UNIFORM_STD).view_as(x), *args[1:])
    ordered = flat.detach().sort(dim=1).values
    n = flat.shape[1]
    ranks = torch.searchsorted(ordered, flat.detach().contiguous(), right=True).to(flat.dtype) / n
    if not needs_slope:
        return (((ranks - 0.5) / _UNIFORM_STD).view_as(x), *args[1:])
    knots = ordered[:, torch.linspace(0, n - 1, _KNOTS, device=x.device).round().long()].contiguous()
    upper = torch.searchsorted(knots, flat.detach().contiguous(), right=True).clamp(1, _KNOTS - 1)
    low, high = knots.gather(1, upper - 1), knots.gather(1, upper)
    smooth = (upper - 1 + (flat - low) / (high - low).clamp(min=1e-3)) / (_KNOTS - 1)
    equalized = ranks + (smooth - smooth.detach())  # the value of the ranks, the slope of the curve
    return (((equalized - 0.5) / _UNIFORM_STD).view_as(x), *args[1:])


_LEVELS = 4096  # bins between an image's darkest and brightest pixel when ranks are counted


def _ranks_by_counting(flat: torch.Tensor) -> Optional[torch.Tensor]:
    """Each row's ranks (share of its values as small or smaller) from a histogram, or None where that is not exact.

    The histogram has :data:`_LEVELS` bins between a row's smallest and largest value. An image of
    at most 256 levels, as every uint8 image is (and every strongly augmented one: see
    :func:`xraykit.augment.augment_strong`), has its levels at least ``_LEVELS / 255`` bins apart,
    so no two share a bin and the counts are its exact ranks. Counting is linear in the pixels;
    sorting them cost a tenth of a Task 1.1 training step at 224 px. When some bin holds two
    different values, the answer is None and the caller sorts.
    """
    flat = flat.detach().float()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    bins = ((flat - low) * ((_LEVELS - 1) / (high - low).clamp(min=1e-12))).round().long().clamp(0, _LEVELS - 1)
    lowest = torch.full((flat.shape[0], _LEVELS), math.inf, device=flat.device).scatter_reduce_(1, bins, flat, "amin")
    if not torch.equal(lowest.gather(1, bins), flat):  # two values in one bin: counting would merge them
        return None
    counts = torch.zeros(flat.shape[0], _LEVELS, device=flat.device).scatter_add_(1, bins, torch.ones_like(flat))
    return counts.cumsum(1).gather(1, bins) / flat.shape[1]


def apply_normalization(model: nn.Module, normalize: str) -> nn.Module:
    """``model`` made to normalise its input as its run did.

    ``"dataset"``: as it is (one mean and spread for all images, in :func:`to_input`);
    ``"image"``: each image by its own mean and spread; ``"equalize"``: each image by its own ranks.
    """
    if normalize == "image":
        model.register_forward_pre_hook(standardize_each_image)
    elif normalize == "equalize":
        model.register_forward_pre_hook(equalize_each_image)
    return model


@torch.no_grad()
def predict_logits(
    forward: Forward, inputs: torch.Tensor, prepare: Forward, batch_size: int, device: DeviceLike
) -> torch.Tensor:
    """``forward(prepare(batch))`` over ``inputs`` in batches, on ``device``; the logits on the CPU."""
    out = []
    for start in range(0, len(inputs), batch_size):
        batch = prepare(to_device(inputs[start : start + batch_size], device))
        out.append(forward(batch).float())
    return torch.cat(out).cpu() if out else torch.empty(0)


def predict_proba(
    model: nn.Module,
    images: torch.Tensor,
    backbone: Backbone,
    batch_size: int = 64,
    device: DeviceLike = "cpu",
    precision: str = "32",
) -> torch.Tensor:
    """Class probabilities ``(N, num_classes)`` for ``uint8`` images ``(N, 1, H, W)`` (``precision`` resolved)."""
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    forward = accelerated(model, device, precision)
    logits = predict_logits(forward, images, partial(to_input, backbone=backbone), batch_size, device)
    model.train(was_training)
    return logits.softmax(dim=1)


def logits_of(
    model: nn.Module,
    images: torch.Tensor,
    backbone: Backbone,
    device: torch.device,
    precision: str = "32",
    tta: bool = False,
) -> torch.Tensor:
    """Logits of ``images``; with ``tta``, those of the probabilities averaged over :func:`xraykit.tta.views`
    (:func:`mean_of_probabilities`)."""
    model.eval().to(device)
    forward = accelerated(model, device, precision)
    prepare = partial(to_input, backbone=backbone)
    if not tta:
        return predict_logits(forward, images, prepare, 64, device)
    return mean_of_probabilities([predict_logits(forward, v, prepare, 64, device) for v in views(images).values()])


def mean_of_probabilities(answers: Sequence[torch.Tensor]) -> torch.Tensor:
    """Several answers' logits joined into one: the mean of their probabilities, returned as logits.

    Averaging probabilities keeps what the answers agree on (TTA's views, an ensemble's members);
    returning the log of that mean keeps the result a logit, so every caller downstream (softmax,
    thresholds, temperature) takes it as it takes one model's answer.
    """
    probs = torch.stack([a.float().softmax(1) for a in answers]).mean(0)
    return probs.clamp_min(1e-12).log()


def head_inputs(
    model: nn.Module,
    backbone: Backbone,
    images: torch.Tensor,
    batch_size: int,
    device: DeviceLike,
    precision: str = "32",
) -> torch.Tensor:
    """What the head receives for each image (``(N, 512)`` for ResNet-18), read by a hook.

    The backbone runs in ``precision`` (resolved, :func:`accelerated`), as it would in training:
    the frozen-feature cache then holds exactly what the head would see without it, and under
    ``bf16-mixed`` its one pass costs bfloat16's time, not float32's. Returned as float32.
    """
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0].detach().float().cpu())

    hook = model.get_submodule(backbone.head).register_forward_pre_hook(keep)
    try:
        forward = accelerated(model, torch.device(device), precision)
        predict_logits(forward, images, partial(to_input, backbone=backbone), batch_size, device)
    finally:
        hook.remove()
    return torch.cat(captured)
