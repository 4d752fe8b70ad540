"""The strategies of the teaching tasks: ``scratch`` trains everything from random weights, ``finetune``
only the head of pretrained weights (a fixed feature extractor), ``finetune-all`` every layer of them.

The last two are the two ways PyTorch's transfer-learning tutorial teaches: keep the pretrained
features and learn a new classifier on them (cheap, and hard to over-fit with few images), or let
every layer adapt to the new images at a low learning rate (more to learn, more to gain when the new
images differ from the old).
"""

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

FINETUNE_ALL = Strategy(
    name="finetune-all",
    freeze=train_everything,
    lr=1e-4,
    weights="imagenet",
    description="pretrained weights, every layer fine-tuned (BatchNorm statistics too), Adam lr 1e-4",
)


@hookimpl
def register_strategies(register):
    register(SCRATCH)
    register(FINETUNE)
    register(FINETUNE_ALL)
