"""From ``uint8`` images to what the network says: the device, the input, the logits, the probabilities;
and, in training, which mode the model runs in and how images reach it (:func:`choose_inputs`).

Training, evaluation and explanation all go through these, so a model sees one kind of input everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Union

import torch
from torch import nn

from . import distributed
from .augment import augment, augment_strong
from .config import TrainConfig
from .interfaces import Backbone, XrayData

Forward = Callable[[torch.Tensor], torch.Tensor]
DeviceLike = Union[str, torch.device]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if there is one, else Apple's MPS, else the CPU; any other name as torch reads it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


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


def apply_normalization(model: nn.Module, normalize: str) -> nn.Module:
    """``model`` made to normalise its input as its run did (``"dataset"``: as it is; ``"image"``: per image)."""
    if normalize == "image":
        model.register_forward_pre_hook(standardize_each_image)
    return model


@torch.no_grad()
def predict_logits(
    forward: Forward, inputs: torch.Tensor, prepare: Forward, batch_size: int, device: DeviceLike
) -> torch.Tensor:
    """``forward(prepare(batch))`` over ``inputs`` in batches, on ``device``; the logits on the CPU."""
    out = []
    for start in range(0, len(inputs), batch_size):
        batch = prepare(inputs[start : start + batch_size].to(device))
        out.append(forward(batch).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def predict_proba(
    model: nn.Module, images: torch.Tensor, backbone: Backbone, batch_size: int = 64, device: DeviceLike = "cpu"
) -> torch.Tensor:
    """Class probabilities ``(N, num_classes)`` for ``uint8`` images ``(N, 1, H, W)``."""
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    logits = predict_logits(model, images, partial(to_input, backbone=backbone), batch_size, device)
    model.train(was_training)
    return logits.softmax(dim=1)


def head_inputs(
    model: nn.Module, backbone: Backbone, images: torch.Tensor, batch_size: int, device: DeviceLike
) -> torch.Tensor:
    """What the head receives for each image (``(N, 512)`` for ResNet-18), read by a hook."""
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0].detach().float().cpu())

    hook = model.get_submodule(backbone.head).register_forward_pre_hook(keep)
    try:
        predict_logits(model, images, partial(to_input, backbone=backbone), batch_size, device)
    finally:
        hook.remove()
    return torch.cat(captured)


def accelerated(forward: Forward, device: torch.device) -> Forward:
    """``forward`` under bfloat16 autocast with channels-last inputs on CUDA; anywhere else ``forward`` itself.

    On the CPU, bf16 autocast was 1.9x faster but its gradients 28% off, and channels-last 1.3x
    faster but 8 times further from the exact gradient than plain float32 (docs/performance.md):
    the CPU keeps plain float32, bit for bit as before.
    """
    if device.type != "cuda" or not torch.cuda.is_bf16_supported():
        return forward

    def fast(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return forward(x)

    return fast


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


# ----------------------------------------------------------------------------- how inputs reach the model in training


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

    def train_prepare(self, epoch: int, seed: int) -> Forward:
        """``prepare`` for this epoch's training batches: augmented, from a generator of (seed, epoch), if asked."""
        if self.augment == "none":
            return self.prepare
        g = torch.Generator().manual_seed(seed * 7_919 + epoch + distributed.seed_offset())
        if self.augment == "strong":
            return partial(_strongly_augmented, backbone=self.backbone, generator=g)
        return partial(_augmented, prepare=self.prepare, generator=g)


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
) -> Inputs:
    """The images themselves, or, when the backbone is frozen and nothing is augmented, what its head
    receives, computed once: the head then trains alone on them, with the same result at a fraction of the cost.

    ``say`` tells the user which path was taken. On CUDA the forward passes run under bfloat16
    autocast. Under torchrun, DistributedDataParallel averages the gradients of all processes in
    training; validation needs no averaging.
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
        features = partial(head_inputs, model, backbone, batch_size=64, device=device)
        train_x, val_x = distributed.in_parts(features, train.images), distributed.in_parts(features, val.images)
        prepare = _unchanged
        seconds = time.perf_counter() - started
    elif config.feature_cache and config.augment != "none" and _only_head_trains(model, backbone):
        say("Feature cache off: augmentation changes the backbone's input every epoch.")
    return Inputs(
        accelerated(distributed.wrap(forward), device),
        accelerated(forward, device),
        train_x,
        val_x,
        prepare,
        backbone,
        config.augment,
        seconds,
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
