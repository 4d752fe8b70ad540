"""Training and inference: the loop a student can read top to bottom.

``fit`` is the whole story: freeze what the strategy freezes, build the optimizer over
what still learns, then for each epoch shuffle, step through mini-batches, measure the
validation loss, and save a checkpoint. Everything else in this file is a helper it calls.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .interfaces import Backbone, Strategy, XrayData
from .io import save_torch, write_json
from .weights import CHECKPOINT_FORMAT

RECIPES = {
    # The published coursework's recipe: plain Adam, no augmentation, unweighted loss, last epoch.
    "report": dict(augment=False, class_weights="none", balanced_sampler=False, schedule="constant", select="last"),
    # What a careful practitioner adds: augmentation, class weights for the 3:1 imbalance,
    # a cosine learning-rate schedule, and the checkpoint with the best validation loss.
    "strong": dict(augment=True, class_weights="auto", balanced_sampler=False, schedule="cosine", select="best"),
}


@dataclass
class TrainConfig:
    """Every choice of a run; saved as ``config.json``, enough to run it again."""

    data: str = "synthetic"
    task: str = "scratch"
    backbone: str = "resnet18"
    weights: Optional[str] = None  # None: the strategy's default (random for scratch, imagenet for finetune)
    epochs: int = 10
    lr: Optional[float] = None  # None: the strategy's default (1e-3 scratch, 1e-4 finetune)
    batch_size: int = 32
    image_size: int = 224
    seed: int = 0
    device: str = "auto"
    recipe: str = "report"
    augment: bool = False
    class_weights: str = "none"
    balanced_sampler: bool = False
    schedule: str = "constant"
    select: str = "last"
    feature_cache: bool = True
    val_from_train: Optional[float] = None
    num_classes: int = 2
    classes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Callbacks:
    """Progress reporting hooks; the CLI shows them as rich progress bars."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...
    def on_batch_end(self, batch: int, loss: float) -> None: ...
    def on_epoch_end(self, record: dict) -> None: ...
    def message(self, text: str) -> None: ...


# ----------------------------------------------------------------------------- helpers


def resolve_device(name: str = "auto") -> torch.device:
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


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small random affine transforms and brightness/contrast changes (no flips: the heart is on the left)."""
    n = x.shape[0]
    r = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=g)  # noqa: E731
    angle = r(-7, 7) * math.pi / 180
    scale = r(0.92, 1.08)
    tx, ty = r(-0.05, 0.05), r(-0.05, 0.05)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return x * r(0.9, 1.1).view(-1, 1, 1, 1) + r(-0.1, 0.1).view(-1, 1, 1, 1)


def epoch_order(labels: torch.Tensor, epoch: int, seed: int, balanced: bool) -> torch.Tensor:
    """The sample order of one epoch, a function of (seed, epoch) alone: resuming repeats it exactly."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if not balanced:
        return torch.randperm(len(labels), generator=g)
    counts = torch.bincount(labels).float()
    weights = (1.0 / counts)[labels]
    return torch.multinomial(weights, len(labels), replacement=True, generator=g)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``N / (K * n_c)``: each class contributes equally to the loss."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    return len(labels) / (num_classes * counts)


@torch.no_grad()
def predict_logits(forward: Callable, inputs: torch.Tensor, prepare: Callable, batch_size: int, device: torch.device) -> torch.Tensor:
    out = []
    for start in range(0, len(inputs), batch_size):
        batch = prepare(inputs[start : start + batch_size].to(device))
        out.append(forward(batch).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def predict_proba(model: nn.Module, images: torch.Tensor, backbone: Backbone, batch_size: int = 64, device="cpu") -> torch.Tensor:
    """Class probabilities ``(N, num_classes)`` for ``uint8`` images ``(N, 1, H, W)``."""
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    logits = predict_logits(model, images, lambda b: to_input(b, backbone), batch_size, device)
    model.train(was_training)
    return logits.softmax(dim=1)


def head_inputs(model: nn.Module, backbone: Backbone, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """What the head receives for each image (``(N, 512)`` for ResNet-18), read by a hook."""
    captured: list[torch.Tensor] = []
    hook = model.get_submodule(backbone.head).register_forward_pre_hook(lambda m, args: captured.append(args[0].detach().float().cpu()))
    try:
        predict_logits(model, images, lambda b: to_input(b, backbone), batch_size, device)
    finally:
        hook.remove()
    return torch.cat(captured)


def feature_cache_is_exact(model: nn.Module, backbone: Backbone, sample: torch.Tensor, device) -> bool:
    """True when only the head trains and ``head(cached features)`` equals the model's own output."""
    head = model.get_submodule(backbone.head)
    head_params = {id(p) for p in head.parameters()}
    if any(p.requires_grad for p in model.parameters() if id(p) not in head_params):
        return False
    set_train_mode(model)
    with torch.no_grad():
        direct = model(to_input(sample.to(device), backbone)).float().cpu()
    features = head_inputs(model, backbone, sample, len(sample), device)
    set_train_mode(model)
    with torch.no_grad():
        via_cache = head(features.to(device)).float().cpu()
    return torch.allclose(direct, via_cache, atol=1e-5, rtol=1e-4)


def accelerated(forward: Callable, device: torch.device) -> Callable:
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


def learning_rate(base: float, epoch: int, epochs: int, schedule: str = "constant") -> float:
    """The learning rate of ``epoch`` (counted from 0) in a run of ``epochs``.

    ``"constant"`` keeps ``base``; ``"cosine"`` falls from ``base`` along half a cosine,
    ``base * (1 + cos(pi * epoch / epochs)) / 2``, the values of torch's CosineAnnealingLR.
    A plain function of the epoch instead of a scheduler object with its own state, so a
    run resumed with more epochs follows the cosine of its new length (a stored scheduler
    would keep the old one, which climbs back up after its end).
    """
    if schedule == "cosine":
        return base * (1 + math.cos(math.pi * epoch / epochs)) / 2
    return base


def checkpoint(model, optimizer, epoch: int, history: list, config: TrainConfig, best_val_loss: float) -> dict:
    """A complete checkpoint of plain values and tensors: loads with ``weights_only=True``.

    The learning rate needs no state of its own: :func:`learning_rate` computes it from the epoch.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "history": history,
        "config": config.to_dict(),
        "best_val_loss": best_val_loss,
    }


# ----------------------------------------------------------------------------- the loop


def train_one_epoch(forward, inputs, labels, order, prepare, optimizer, loss_fn, batch_size, device, callbacks) -> float:
    """One pass over ``inputs`` in ``order``; returns the mean training loss."""
    total, seen = 0.0, 0
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] == 1:
        starts.pop()  # a last batch of one image joins the one before: BatchNorm cannot normalise one value
    for b, (start, end) in enumerate(zip(starts, starts[1:] + [len(order)])):
        idx = order[start:end]
        # Under torchrun each process takes its part of the batch, its loss weighted so that DDP's average
        # of the gradients is the whole batch's (see distributed.batch_part). Alone: all of it, share 1.
        part, share = distributed.batch_part(idx)
        x, y = prepare(inputs[part].to(device)), labels[part].to(device)
        loss = loss_fn(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        (loss * share).backward()
        optimizer.step()
        total += loss.item() * share * len(idx)
        seen += len(idx)
        callbacks.on_batch_end(b + 1, total / seen)
    total, seen = distributed.sum_over_ranks(total, seen)  # the mean over all processes' images
    return total / max(seen, 1)


@torch.no_grad()
def validate(forward, inputs, labels, prepare, loss_fn, batch_size, device) -> tuple[float, float]:
    """Mean loss and accuracy on validation data (no gradient, no augmentation)."""
    # Under torchrun each process computes the logits of its share of the images, then all share them.
    logits = distributed.in_parts(lambda part: predict_logits(forward, part, prepare, batch_size, device), inputs)
    loss = F.cross_entropy(logits, labels, weight=loss_fn.weight.cpu() if loss_fn.weight is not None else None)
    return loss.item(), (logits.argmax(1) == labels).float().mean().item()


def fit(
    model: nn.Module,
    backbone: Backbone,
    strategy: Strategy,
    train: XrayData,
    val: XrayData,
    config: TrainConfig,
    run_dir: Path,
    callbacks: Callbacks = Callbacks(),
    resume: Optional[dict] = None,
) -> list[dict]:
    """Train ``model`` and write checkpoints and ``history.json`` into ``run_dir``."""
    device = distributed.setup(resolve_device(config.device))  # under torchrun: join the other processes
    model.to(device)
    if device.type == "cuda":  # tensor cores prefer channels-last; the CPU stays as it is (docs/performance.md)
        model.to(memory_format=torch.channels_last)

    # 1. The strategy decides what learns; the optimizer sees only that.
    strategy.freeze(model, backbone)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = strategy.optimizer(params, lr=config.lr)
    weight = class_weights(train.labels, config.num_classes).to(device) if config.class_weights == "auto" else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)

    history: list[dict] = []
    best_val_loss, start_epoch = math.inf, 0
    if resume is not None:  # a checkpoint saved at the end of an epoch: continue with the next
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        history, best_val_loss, start_epoch = list(resume["history"]), resume["best_val_loss"], resume["epoch"]

    # 2. With a frozen backbone and no augmentation the backbone's output for an image never
    #    changes: compute it once and train the head alone on it. Same result, a fraction of the cost.
    prepare = lambda b: to_input(b, backbone)  # noqa: E731
    forward, train_x, val_x = model, train.images, val.images
    feature_started, feature_seconds = time.perf_counter(), 0.0
    if config.feature_cache and not config.augment and feature_cache_is_exact(model, backbone, train.images[:4], device):
        callbacks.message("Backbone frozen: computing its features once and training the head on them (exact).")
        forward = model.get_submodule(backbone.head)
        # Under torchrun each process computes the features of its share of the images, then all share them.
        features = lambda images: head_inputs(model, backbone, images, 64, device)  # noqa: E731
        train_x, val_x = distributed.in_parts(features, train.images), distributed.in_parts(features, val.images)
        prepare = lambda b: b  # noqa: E731
        feature_seconds = time.perf_counter() - feature_started  # counted in the first epoch's time, not hidden
    elif config.feature_cache and config.augment and not any(
        p.requires_grad for n, p in model.named_parameters() if not n.startswith(backbone.head + ".")
    ):
        callbacks.message("Feature cache off: augmentation changes the backbone's input every epoch.")
    # On CUDA: bfloat16 autocast. Under torchrun: DistributedDataParallel averages the gradients
    # of all processes in training; validation needs no averaging and uses the module itself.
    train_forward, eval_forward = accelerated(distributed.wrap(forward), device), accelerated(forward, device)

    aug_gen = torch.Generator()
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        order = epoch_order(train.labels, epoch, config.seed, config.balanced_sampler)
        if config.augment:
            aug_gen.manual_seed(config.seed * 7_919 + epoch + distributed.seed_offset())
            train_prepare = lambda b: augment(prepare(b), aug_gen)  # noqa: E731
        else:
            train_prepare = prepare

        # 3. One epoch at this epoch's learning rate: shuffle, forward, loss, backward, step.
        lr = learning_rate(config.lr, epoch, config.epochs, config.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        callbacks.on_epoch_start(epoch + 1, config.epochs, math.ceil(len(order) / config.batch_size))
        set_train_mode(model)
        train_loss = train_one_epoch(train_forward, train_x, train.labels, order, train_prepare, optimizer, loss_fn,
                                     config.batch_size, device, callbacks)

        # 4. Validation loss and accuracy, with the model in eval mode.
        model.eval()
        val_loss, val_acc = validate(eval_forward, val_x, val.labels, prepare, loss_fn, 64, device)
        record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_acc,
                  "lr": lr, "seconds": time.perf_counter() - started + feature_seconds}
        if feature_seconds:
            record["feature_seconds"], feature_seconds = feature_seconds, 0.0
        history.append(record)

        # 5. Save: the last epoch always, the best validation loss when it improves (one process writes).
        is_best = val_loss < best_val_loss
        best_val_loss = min(best_val_loss, val_loss)
        if distributed.is_main():
            state = checkpoint(model, optimizer, epoch + 1, history, config, best_val_loss)
            if is_best:
                save_torch(run_dir / "checkpoints" / "best.pt", state)
            save_torch(run_dir / "checkpoints" / "last.pt", state)
            write_json(run_dir / "history.json", history)
        callbacks.on_epoch_end(record)
    model.eval()
    return history
