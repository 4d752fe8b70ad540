"""From ``uint8`` images to what the network says: the device, the input, the logits, the probabilities;
and, in training, which mode the model runs in and how images reach it (:func:`choose_inputs`).

Training, evaluation and explanation all go through these, so a model sees one kind of input everywhere.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Callable, ContextManager, Union

import torch
from torch import nn

from . import distributed
from .augment import augment, augment_strong
from .config import PRECISIONS, TrainConfig
from .errors import XrayError
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


# Knots of the smooth stand-in whose slope carries equalisation's gradient (see equalize_each_image).
_KNOTS = 64
_UNIFORM_STD = (1 / 12) ** 0.5  # the spread of values spread evenly over [0, 1]


def equalize_each_image(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A forward pre-hook: each image's histogram equalised, then centred and scaled to spread 1.

    Every pixel becomes the fraction of its image's pixels that are as dark or darker (its rank).
    Gamma, contrast, brightness and histogram equalisation at another hospital are all
    increasing maps of intensity: none of them changes a rank, so with ``normalize="equalize"``
    the network cannot see any of them. Ranks have no gradient, and integrated gradients and
    guided backpropagation need one, so the gradient is taken from a piecewise-linear curve
    through 64 of the image's quantiles (the same map, smoothed); the values are the exact ranks.
    """
    x = args[0]
    flat = x.flatten(1)
    ordered = flat.detach().sort(dim=1).values
    n = flat.shape[1]
    ranks = torch.searchsorted(ordered, flat.detach().contiguous(), right=True).to(flat.dtype) / n
    knots = ordered[:, torch.linspace(0, n - 1, _KNOTS, device=x.device).round().long()].contiguous()
    upper = torch.searchsorted(knots, flat.detach().contiguous(), right=True).clamp(1, _KNOTS - 1)
    low, high = knots.gather(1, upper - 1), knots.gather(1, upper)
    smooth = (upper - 1 + (flat - low) / (high - low).clamp(min=1e-3)) / (_KNOTS - 1)
    equalized = ranks + (smooth - smooth.detach())  # the value of the ranks, the slope of the curve
    return (((equalized - 0.5) / _UNIFORM_STD).view_as(x), *args[1:])


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


# Device types on which ``auto`` takes bfloat16 where the hardware computes it natively. Empty: on this
# project's CPUs (AVX512-BF16) bfloat16 trained Task 1.1 2.2-2.9x as fast, but at 224 px with the course's
# recipe it scored 96.4% on the mean of three seeds against float32's 97.8% (97.7-98.1), outside float32's
# seed spread, the rule asked of auto (benchmarks/compare_minutes.py; McNemar's p 0.02, 0.02 and 0.61).
# A device type enters the set when a measurement like that one finds it learning as well.
AUTO_BF16_ON: set[str] = set()


def resolve_precision(name: Union[str, int], device: torch.device) -> str:
    """What ``--precision name`` trains and predicts in on ``device``: ``"32"`` or ``"bf16-mixed"``.

    ``32`` and ``bf16-mixed`` are themselves. ``auto`` asks for the fastest precision that learns as
    well as float32: ``bf16-mixed`` on a device type in :data:`AUTO_BF16_ON` that computes bfloat16
    natively (:func:`native_bf16`), ``32`` everywhere else. The set is empty today: bfloat16 passed
    the rule at 128 px with the strong recipe (``benchmarks/precision.py``) but not at 224 px with the
    course's recipe, which ``compare`` runs (docs/performance.md, "Precision"). Where bfloat16 is
    emulated it is slower than float32 as well. ``bf16-mixed`` on a device without bfloat16 (an
    older GPU, MPS) is refused in one line.
    """
    name = str(name)  # the API's precision=32
    if name not in PRECISIONS:
        raise XrayError(f"precision {name!r} is not one of: {', '.join(PRECISIONS)}")
    if name == "auto":
        earned = device.type in AUTO_BF16_ON and native_bf16(device) and bf16_supported(device)
        return "bf16-mixed" if earned else "32"
    if name == "bf16-mixed" and not bf16_supported(device):
        raise XrayError(f"--precision bf16-mixed: {device} has no bfloat16 autocast here; use --precision 32")
    return name


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware, so that ``bf16-mixed`` is faster than float32 there.

    On the CPU: the x86 instruction sets AVX512-BF16 or AMX-BF16 (measured: 1.84x float32's training
    speed with AVX512-BF16). Other CPUs can run bfloat16 autocast, but emulated it was slower than
    float32, and ARM's bfloat16 has not been measured, so they count as not native.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # recent torch; older releases below
    if capabilities is not None:
        found = capabilities()
        return bool(found.get("avx512_bf16") or found.get("amx_bf16"))
    older = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # the same question in older releases
    return bool(older is not None and older())


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs on ``device`` (on the CPU: a bfloat16 matrix product is tried)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    except RuntimeError:
        return False


def autocast(precision: str, device: torch.device) -> ContextManager:
    """bfloat16 autocast on ``device`` for ``bf16-mixed``; nothing at all for ``32``."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def accelerated(forward: Forward, device: torch.device, precision: str = "32") -> Forward:
    """``forward`` under bfloat16 autocast with channels-last inputs for ``bf16-mixed``; ``forward`` itself for ``32``.

    ``precision`` is resolved (:func:`resolve_precision`). Channels-last goes with bfloat16, on the
    CPU as on tensor cores: on this project's CPU it took bf16 autocast from 1.95x to 2.48x
    float32's speed (docs/performance.md). The model is made channels-last by the caller.
    """
    if precision == "32":
        return forward

    def fast(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return forward(x)

    return fast


def to_device(batch: torch.Tensor, device: DeviceLike) -> torch.Tensor:
    """``batch`` on ``device``; from the host to a GPU through pinned memory, without waiting for the copy."""
    device = torch.device(device)
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


DEVICE_SHARE = 0.25  # the training images move to a GPU once when they take less than this share of its free memory


def fits_on_device(nbytes: int, free_bytes: int) -> bool:
    """Whether ``nbytes`` of images may live on a device with ``free_bytes`` free (a quarter of it, at most)."""
    return nbytes < DEVICE_SHARE * free_bytes


def images_for(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The training images where the epochs take their batches from: on a CUDA GPU, moved there once when
    they fit (5,216 Kaggle images at 224 px are 262 MB); anywhere else, where they are (each batch is copied)."""
    if device.type != "cuda" or images.device == device:
        return images
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = images.numel() * images.element_size()
    return images.to(device) if fits_on_device(nbytes, free) else images


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
