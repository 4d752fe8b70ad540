"""How images reach the model in training, and in which mode it runs: the images as they are,
augmented each epoch, or, when only the head trains, the frozen backbone's features computed once.

:func:`xraykit.loop.fit` asks :func:`choose_inputs` once, then steps through the epochs with what it returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .augment import augment, augment_strong
from .config import TrainConfig
from .devices import DeviceLike, Forward, accelerated, images_for
from .inference import head_inputs, to_input
from .interfaces import Backbone, XrayData


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except BatchNorm layers with no trainable parameters stay in eval.

    In train mode BatchNorm updates its running mean and variance on every batch, even
    when its weights are frozen: a "frozen" backbone would silently drift. Keeping those
    layers in eval mode freezes their statistics too.
    """
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


@dataclass
class Inputs:
    """What a run's batches go through (``train_forward``, ``eval_forward``), taken from
    ``train_x`` and ``val_x`` and made network input by ``prepare``."""

    train_forward: Forward
    eval_forward: Forward
    train_x: torch.Tensor
    val_x: torch.Tensor
    prepare: Forward
    backbone: Backbone
    augment: str = "none"
    seconds: float = 0.0  # spent computing cached features
    progressive: Optional[int] = None  # the smaller size of progressive resizing; None when images keep theirs

    def train_prepare(self, epoch: int, seed: int, size: Optional[int] = None) -> Forward:
        """``prepare`` for this epoch's training batches: shrunk to ``size`` (progressive resizing) and
        augmented, from a generator of (seed, epoch), if asked."""
        prepare = self.prepare
        if self.augment != "none":
            g = torch.Generator().manual_seed(seed * 7_919 + epoch + distributed.seed_offset())
            if self.augment == "strong":
                prepare = partial(_strongly_augmented, backbone=self.backbone, generator=g)
            else:
                prepare = partial(_augmented, prepare=self.prepare, generator=g)
        if self.progressive is None or size is None or size == self.train_x.shape[-1]:
            return prepare
        return partial(_shrunk, size=size, prepare=prepare)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each training-mode batch of ``n`` items: a last batch of one image joins the one
    before, since BatchNorm in train mode cannot normalise a single value."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """``uint8`` images ``(N, C, H, W)`` resized to ``size`` x ``size`` (antialiased), still ``uint8``.

    Rounded back to whole levels, so that a shrunk image is what a smaller file would have held
    (and histogram equalisation counts its ranks exactly).
    """
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _shrunk(batch: torch.Tensor, size: int, prepare: Forward) -> torch.Tensor:
    return prepare(resized(batch, size))


def _augmented(batch: torch.Tensor, prepare: Forward, generator: torch.Generator) -> torch.Tensor:
    return augment(prepare(batch), generator)


def _strongly_augmented(batch: torch.Tensor, backbone: Backbone, generator: torch.Generator) -> torch.Tensor:
    """``uint8`` images changed in [0, 1] (where gamma and borders mean something), then normalised."""
    return (augment_strong(batch.float() / 255.0, generator) - backbone.mean) / backbone.std


def _unchanged(batch: torch.Tensor) -> torch.Tensor:
    return batch


def choose_inputs(
    model: nn.Module,
    backbone: Backbone,
    train: XrayData,
    val: XrayData,
    config: TrainConfig,
    device: torch.device,
    say: Callable[[str], None],
    precision: str = "32",
) -> Inputs:
    """The images themselves, or, when the backbone is frozen and nothing is augmented, what its head
    receives, computed once: the head then trains alone on them, with the same result at a fraction of the cost.

    ``say`` tells the user which path was taken. The forward passes run in ``precision``
    (:func:`accelerated`), compiled by ``torch.compile`` with ``config.compile``. On a GPU the
    training inputs move there once when they fit (:func:`images_for`). Under torchrun,
    DistributedDataParallel averages the gradients of all processes in training; validation needs
    no averaging.
    """
    forward: nn.Module = model
    train_x, val_x = train.images, val.images
    prepare: Forward = partial(to_input, backbone=backbone)
    started, seconds = time.perf_counter(), 0.0
    if (
        config.feature_cache
        and config.augment == "none"
        and feature_cache_is_exact(model, backbone, train.images[:4], device)
    ):
        say("Backbone frozen: computing its features once and training the head on them (exact).")
        forward = model.get_submodule(backbone.head)
        # Under torchrun each process computes the features of its share of the images, then all share them.
        features = partial(head_inputs, model, backbone, batch_size=64, device=device, precision=precision)
        train_x, val_x = distributed.in_parts(features, train.images), distributed.in_parts(features, val.images)
        prepare = _unchanged
        seconds = time.perf_counter() - started
        if config.progressive is not None:
            say("Progressive resizing off: the frozen backbone's features are computed once, at --image-size.")
    elif config.feature_cache and config.augment != "none" and _only_head_trains(model, backbone):
        say("Feature cache off: augmentation changes the backbone's input every epoch.")
    train_forward: Forward = distributed.wrap(forward)
    if config.compile:  # the training passes, where the time goes; validation runs as it is
        say("Compiling the model with torch.compile (the first batches wait for it).")
        train_forward = torch.compile(train_forward)
    return Inputs(
        accelerated(train_forward, device, precision),
        accelerated(forward, device, precision),
        images_for(train_x, device),
        val_x,
        prepare,
        backbone,
        config.augment,
        seconds,
        config.progressive if prepare is not _unchanged else None,
    )


def _only_head_trains(model: nn.Module, backbone: Backbone) -> bool:
    head = model.get_submodule(backbone.head)
    head_params = {id(p) for p in head.parameters()}
    return not any(p.requires_grad for p in model.parameters() if id(p) not in head_params)


def feature_cache_is_exact(model: nn.Module, backbone: Backbone, sample: torch.Tensor, device: DeviceLike) -> bool:
    """True when only the head trains and ``head(cached features)`` equals the model's own output."""
    if not _only_head_trains(model, backbone):
        return False
    head = model.get_submodule(backbone.head)
    set_train_mode(model)
    with torch.no_grad():
        direct = model(to_input(sample.to(device), backbone)).float().cpu()
    features = head_inputs(model, backbone, sample, len(sample), device)
    set_train_mode(model)
    with torch.no_grad():
        via_cache = head(features.to(device)).float().cpu()
    return torch.allclose(direct, via_cache, atol=1e-5, rtol=1e-4)
