"""What is checked before a run claims its folder or continues: each failure is one line, and nothing is written.

The device the user named, whether the model can train at this size and batch at all, and
whether a checkpoint ``--resume`` is given can really be continued.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .errors import XrayError
from .inference import to_input
from .inputs import set_train_mode
from .interfaces import Backbone, XrayData
from .weights import fit_state_dict


def check_device(name: str) -> None:
    """Refuse, in one line, a device this machine does not have (``cuda`` without CUDA, ``cuda:3`` of one GPU)."""
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if count == 0:
            raise XrayError(f"--device {name}: torch finds no CUDA GPU on this machine; use --device cpu (or auto)")
        if index >= count:
            raise XrayError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise XrayError("--device mps: Apple's MPS is not available here; use --device cpu (or auto)")


def check_trains(model: nn.Module, backbone: Backbone, config: TrainConfig) -> None:
    """One training-mode forward pass of the smallest batch the loop will make, on a copy, before anything is written.

    Some combinations cannot train at all: a batch of one image at 32 px leaves BatchNorm one
    value per channel, DenseNet's pooling is larger than a 16 px image's last feature map.
    Found here, they are one line, and no run folder is left behind.
    """
    n = min(config.batch_size, 2)  # the loop never makes a batch of one unless --batch-size is 1
    images = torch.zeros(n, 1, config.image_size, config.image_size, dtype=torch.uint8)
    trial = copy.deepcopy(model)
    set_train_mode(trial)
    try:
        with torch.no_grad():
            trial(to_input(images, backbone))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XrayError(
            f"{backbone.name} cannot train on {config.image_size} px images in batches of {config.batch_size} "
            f"({first}); use a larger --image-size or --batch-size"
        ) from None


def check_checkpoint(state: dict, path: Path) -> None:
    """A checkpoint ``--resume`` can continue from: the model, the optimizer's state, the epoch, the history."""
    number = (int, float)
    needs: dict[str, Any] = {"model": dict, "optimizer": dict, "epoch": int, "history": list, "best_val_loss": number}
    for key, kind in needs.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            what = "missing" if key not in state else f"a {type(state[key]).__name__}"
            raise XrayError(f"{path}: cannot resume from this checkpoint: its '{key}' is {what}")
    optimizer = state["optimizer"]
    if not isinstance(optimizer.get("param_groups"), list) or not isinstance(optimizer.get("state"), dict):
        raise XrayError(f"{path}: cannot resume from this checkpoint: its optimizer state is incomplete")


def check_fits(model: nn.Module, backbone: Backbone, state: dict, path: Path) -> None:
    fit_state_dict(model, state["model"], backbone, str(path), load_head=True)
    groups = state["optimizer"]["param_groups"]
    saved = sum(len(g.get("params", ())) if isinstance(g, dict) else 0 for g in groups)
    trainable = sum(1 for p in model.parameters() if p.requires_grad)
    if saved != trainable:
        raise XrayError(
            f"{path}: cannot resume from this checkpoint: its optimizer state is for {saved} tensors, "
            f"the {backbone.name} model trains {trainable}"
        )


def check_train_split(splits: dict[str, XrayData], where: str) -> None:
    if "train" not in splits:
        raise XrayError(f"{where}: no train split (expected {where}/train/NORMAL, {where}/train/PNEUMONIA, ...)")
    if len(splits["train"].classes) < 2:
        raise XrayError(
            f"{where}: the training split has one class ({', '.join(splits['train'].classes)}); "
            "a classifier needs at least two class folders (e.g. NORMAL/ and PNEUMONIA/)"
        )
