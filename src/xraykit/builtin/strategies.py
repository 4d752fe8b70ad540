"""The strategies of the two teaching tasks: ``scratch`` trains everything, ``finetune`` only the head."""

from __future__ import annotations

from torch import nn

from ..hookspecs import hookimpl
from ..interfaces import Backbone, Strategy


def train_everything(model: nn.Module, backbone: Backbone) -> None:
    for p in model.parameters():
        p.requires_grad_(True)


def train_head_only(model: nn.Module, backbone: Backbone) -> None:
    """Freeze every parameter except the classifier head's."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.get_submodule(backbone.head).parameters():
        p.requires_grad_(True)


SCRATCH = Strategy(
    name="scratch",
    freeze=train_everything,
    lr=1e-3,
    weights=None,
    description="Task 1.1: random init, every layer trains, Adam lr 1e-3",
)

FINETUNE = Strategy(
    name="finetune",
    freeze=train_head_only,
    lr=1e-4,
    weights="imagenet",
    description="Task 1.2: pretrained weights, all frozen but the head (BatchNorm statistics too), Adam lr 1e-4",
)


@hookimpl
def register_strategies(register):
    register(SCRATCH)
    register(FINETUNE)
