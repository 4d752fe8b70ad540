"""The training loop: the file a student reads top to bottom.

``fit`` is the whole story: build the optimizer over what the strategy left trainable,
decide how images reach the model (as they are, augmented, or as the frozen backbone's
features computed once: :func:`xraykit.inputs.choose_inputs`), then for each epoch
shuffle, step through mini-batches, measure the validation loss, and save a checkpoint.
Everything else in this file is a helper it calls.
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import averaging, distributed
from .config import TrainConfig
from .devices import DeviceLike, Forward, to_device
from .errors import XrayError
from .inference import predict_logits
from .inputs import Inputs, batch_bounds, choose_inputs, set_train_mode
from .interfaces import Backbone, Strategy, XrayData
from .io import save_torch, write_json
from .weights import CHECKPOINT_FORMAT


class Callbacks:
    """Progress reporting hooks; the CLI shows them as rich progress bars."""

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...
    def on_batch_end(self, batch: int, loss: float) -> None: ...
    def on_epoch_end(self, record: dict) -> None: ...
    def message(self, text: str) -> None: ...


def fit(
    model: nn.Module,
    backbone: Backbone,
    strategy: Strategy,
    train: XrayData,
    val: XrayData,
    config: TrainConfig,
    run_dir: Path,
    callbacks: Optional[Callbacks] = None,
    *,
    device: torch.device,
    resume: Optional[dict] = None,
) -> list[dict]:
    """Train ``model`` and write checkpoints and ``history.json`` into ``run_dir``.

    ``model`` comes as its strategy left it (frozen where the strategy freezes, see
    :func:`xraykit.training.build_model`); ``device`` is where it trains.
    """
    callbacks = callbacks if callbacks is not None else Callbacks()
    precision = config.record.precision  # config.precision resolved once, when the run was made (training.py)
    model.to(device)
    if precision == "bf16-mixed":  # channels-last goes with bfloat16 (devices.accelerated)
        model.to(memory_format=torch.channels_last)

    # 1. The optimizer sees only what the strategy left trainable.
    if config.lr is None:
        raise ValueError("config.lr is unset: TrainConfig.with_task_defaults fills it when a run is made")
    base_lr = config.lr
    optimizer = strategy.optimizer([p for p in model.parameters() if p.requires_grad], lr=base_lr)
    weight = class_weights(train.labels, config.num_classes).to(device) if config.class_weights == "auto" else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    history: list[dict] = []
    best_val_loss, start_epoch, average = math.inf, 0, None
    if resume is not None:  # a checkpoint saved at the end of an epoch: continue with the next
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        history, best_val_loss, start_epoch = list(resume["history"]), resume["best_val_loss"], resume["epoch"]
        average = resume.get("average")  # --select averaged: the running mean of the last epochs' weights

    # 2. How images reach the model: as they are, augmented, or as cached features of a frozen backbone.
    inputs = choose_inputs(model, backbone, train, val, config, device, callbacks.message, precision)
    feature_seconds = inputs.seconds  # counted in the first epoch's time, not hidden

    for epoch in range(start_epoch, config.epochs):
        # 3. One epoch at this epoch's learning rate: shuffle, forward, loss, backward, step.
        started = time.perf_counter()
        order = epoch_order(train.labels, epoch, config.seed, config.balanced_sampler)
        lr = learning_rate(base_lr, epoch, config.epochs, config.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        size = training_size(epoch, config.epochs, inputs.progressive, config.image_size)
        callbacks.on_epoch_start(epoch + 1, config.epochs, math.ceil(len(order) / config.batch_size))
        set_train_mode(model)
        train_loss = train_one_epoch(
            inputs.train_forward,
            inputs.train_x,
            train.labels,
            order,
            inputs.train_prepare(epoch, config.seed, size),
            optimizer,
            loss_fn,
            config.batch_size,
            device,
            callbacks,
            epoch=epoch + 1,
        )

        # 4. Validation loss and accuracy at the run's image size, with the model in eval mode.
        model.eval()
        val_loss, val_acc = validate(inputs.eval_forward, inputs.val_x, val.labels, inputs.prepare, loss_fn, 64, device)
        if not math.isfinite(val_loss):  # weights gone NaN or infinite in the last step: keep the last good checkpoint
            raise XrayError(
                f"the validation loss became {val_loss} after epoch {epoch + 1}: training diverged (try a lower --lr); "
                f"{_kept(run_dir)}"
            )
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
        }

        # 5. --select averaged: add this epoch's weights to the mean of the last epochs'; after the last
        #    epoch, measure BatchNorm's statistics for the averaged weights and validate them too.
        averaged_state = None
        if config.select == "averaged" and epoch >= averaging.first_averaged_epoch(config.epochs):
            average = averaging.add(average, model, averaging.first_averaged_epoch(config.epochs))
            if epoch + 1 == config.epochs:
                averaged_state, record["averaged_val_loss"], record["averaged_val_accuracy"] = averaged(
                    model, average, inputs, val.labels, loss_fn, device
                )
                record["averaged_epochs"] = average["count"]  # fewer than the window if a resume moved it
        record["seconds"] = time.perf_counter() - started + feature_seconds
        if inputs.progressive is not None:
            record["image_size"] = size
        if feature_seconds:
            record["feature_seconds"], feature_seconds = feature_seconds, 0.0
        history.append(record)

        # 6. Save: the last epoch always, the best validation loss when it improves, the averaged weights
        #    after the last epoch (one process writes).
        is_best = val_loss < best_val_loss
        best_val_loss = min(best_val_loss, val_loss)
        if distributed.is_main():
            state = checkpoint(model, optimizer, epoch + 1, history, config, best_val_loss)
            if is_best:
                save_torch(run_dir / "checkpoints" / "best.pt", state)
            if averaged_state is not None:
                save_torch(run_dir / "checkpoints" / "averaged.pt", {**state, "model": averaged_state})
            save_torch(run_dir / "checkpoints" / "last.pt", {**state, "average": average} if average else state)
            write_json(run_dir / "history.json", history)
        callbacks.on_epoch_end(record)
    model.eval()
    return history


def averaged(
    model: nn.Module,
    average: dict,
    inputs: Inputs,
    val_labels: torch.Tensor,
    loss_fn: nn.CrossEntropyLoss,
    device: torch.device,
) -> tuple[dict, float, float]:
    """The averaged weights' state (BatchNorm measured afresh on the training images) and their validation
    loss and accuracy; ``model`` is left with its own weights, as the last epoch left them."""
    own = {k: v.clone() for k, v in model.state_dict().items()}
    averaging.load_average(model, average)
    averaging.recompute_batchnorm(model, inputs.eval_forward, inputs.train_x, inputs.prepare, 64, device)
    model.eval()
    loss, accuracy = validate(inputs.eval_forward, inputs.val_x, val_labels, inputs.prepare, loss_fn, 64, device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(own)
    return state, loss, accuracy


def _kept(run_dir: Path) -> str:
    last = run_dir / "checkpoints" / "last.pt"
    return f"{last} (the last finished epoch) is kept" if last.is_file() else "no epoch finished, nothing was saved"


# ----------------------------------------------------------------------------- one epoch, one validation


def train_one_epoch(
    forward: Forward,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    prepare: Forward,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    batch_size: int,
    device: DeviceLike,
    callbacks: Callbacks,
    epoch: int = 0,
) -> float:
    """One pass over ``inputs`` in ``order``; returns the mean training loss.

    A loss that becomes NaN or infinite stops the run (an :class:`~xraykit.XrayError` naming
    ``epoch`` and the batch) before the step that would spread it into the weights. On a GPU the
    loss is summed where it is computed and read every :data:`GPU_READ_EVERY` batches (each read
    waits for the GPU): the check, and the progress bar, then come that often.
    """
    running, seen = RunningLoss(torch.device(device)), 0.0
    order, labels = order.to(inputs.device), labels.to(inputs.device)  # where the images are (a GPU's, if they fit)
    bounds = batch_bounds(len(order), batch_size)  # a last batch of one image joins the one before
    for b, (start, end) in enumerate(bounds):
        idx = order[start:end]
        # Under torchrun each process takes its part of the batch, its loss weighted so that DDP's average
        # of the gradients is the whole batch's (see distributed.batch_part). Alone: all of it, share 1.
        part, share = distributed.batch_part(idx)
        x, y = prepare(to_device(inputs[part], device)), to_device(labels[part], device)
        loss = loss_fn(forward(x).float(), y)
        running.add(loss, share * len(idx))
        read = running.due(b, len(bounds))
        if read and not math.isfinite(running.total()):  # nothing is saved from this epoch: the last checkpoint stays
            raise XrayError(
                f"the training loss became {running.total()} at epoch {epoch}, batch {b + 1}: training diverged "
                "(try a lower --lr); "
                + (f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no epoch had finished")
            )
        optimizer.zero_grad(set_to_none=True)
        (loss * share).backward()
        optimizer.step()
        seen += len(idx)
        if read:
            callbacks.on_batch_end(b + 1, running.total() / seen)
    total, seen = distributed.sum_over_ranks(running.total(), seen)  # the mean over all processes' images
    return total / max(seen, 1)


GPU_READ_EVERY = 20  # batches between two reads of the running loss on a GPU


class RunningLoss:
    """The sum of an epoch's batch losses, each times its weight.

    On the CPU a Python number, read after every batch. On a GPU a tensor on the device, read
    every :data:`GPU_READ_EVERY` batches and after the last: reading waits for the GPU to finish
    all it was given, and reading every batch leaves it idle while the next batch is prepared.
    """

    def __init__(self, device: torch.device, every: Optional[int] = None, on_device: Optional[bool] = None) -> None:
        on_device = device.type != "cpu" if on_device is None else on_device
        self.every = every if every is not None else (GPU_READ_EVERY if on_device else 1)
        self._sum: float | torch.Tensor = torch.zeros((), device=device) if on_device else 0.0

    def add(self, loss: torch.Tensor, weight: float) -> None:
        if isinstance(self._sum, float):
            self._sum += loss.item() * weight
        else:
            self._sum += loss.detach() * weight

    def due(self, batch: int, batches: int) -> bool:
        """Whether the sum is read after ``batch`` (counted from 0) of ``batches``."""
        return (batch + 1) % self.every == 0 or batch + 1 == batches

    def total(self) -> float:
        return self._sum if isinstance(self._sum, float) else self._sum.item()


@torch.no_grad()
def validate(
    forward: Forward,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    prepare: Forward,
    loss_fn: nn.CrossEntropyLoss,
    batch_size: int,
    device: DeviceLike,
) -> tuple[float, float]:
    """Mean loss and accuracy on validation data (no gradient, no augmentation)."""
    # Under torchrun each process computes the logits of its share of the images, then all share them.
    logits = distributed.in_parts(partial(_logits, forward, prepare, batch_size, device), inputs)
    weight = loss_fn.weight.cpu() if loss_fn.weight is not None else None
    loss = F.cross_entropy(logits, labels, weight=weight)
    return loss.item(), (logits.argmax(1) == labels).float().mean().item()


def _logits(
    forward: Forward, prepare: Forward, batch_size: int, device: DeviceLike, inputs: torch.Tensor
) -> torch.Tensor:
    return predict_logits(forward, inputs, prepare, batch_size, device)


# ----------------------------------------------------------------------------- the loop's small decisions


def epoch_order(labels: torch.Tensor, epoch: int, seed: int, balanced: bool) -> torch.Tensor:
    """The sample order of one epoch, a function of (seed, epoch) alone: resuming repeats it exactly."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if not balanced:
        return torch.randperm(len(labels), generator=g)
    counts = torch.bincount(labels).float()
    weights = (1.0 / counts)[labels]
    return torch.multinomial(weights, len(labels), replacement=True, generator=g)


PROGRESSIVE_SHARE = 0.7  # of a progressive run's epochs, those that train at the smaller size


def training_size(epoch: int, epochs: int, start: Optional[int], size: int) -> int:
    """The image size epoch ``epoch`` (counted from 0) of ``epochs`` trains at.

    Without progressive resizing (``start`` None) every epoch trains at ``size``. With it, the first
    :data:`PROGRESSIVE_SHARE` of the epochs train at ``start`` and the rest at ``size`` (fastai's
    progressive resizing, in two steps). A network learns the shapes of pneumonia from smaller
    images for a fraction of the arithmetic (a convolution's cost grows with the pixels: half the
    side, a quarter of the cost), then its last epochs, at the size it is judged at, adapt it to
    the finer detail and to the apparent size of things (Touvron et al. 2019, "FixRes").
    """
    if start is None:
        return size
    return start if epoch < int(PROGRESSIVE_SHARE * epochs) else size


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``N / (K * n_c)``: each class contributes equally to the loss."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    return len(labels) / (num_classes * counts)


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


def checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict],
    config: TrainConfig,
    best_val_loss: float,
) -> dict[str, Any]:
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
