"""DenseNet-121 for xraykit, as in CheXNet (Rajpurkar et al. 2017).

CheXNet fine-tuned an ImageNet DenseNet-121 on chest X-rays; this plugin makes the same
network available to ``xraykit train --backbone densenet121`` for both tasks. Like the
built-in ResNet-18 it takes one-channel images (ImageNet's RGB stem is folded to one
channel when the weights load) and replaces the 1000-class classifier by a new one.
"""

from __future__ import annotations

import re

import torch
import torchvision
from torch import nn

import xraykit
from xraykit.weights import torchvision_weights

__version__ = "0.1.0"


def build_densenet121(num_classes: int) -> nn.Module:
    """torchvision DenseNet-121, random init, a one-channel stem and ``classifier`` -> ``num_classes``."""
    model = torchvision.models.densenet121(weights=None)
    model.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.features.conv0.weight)
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    return model


# torchvision's DenseNet file predates a rename: "denselayer1.norm.1.weight" is now
# "denselayer1.norm1.weight", and its BatchNorms carry no "num_batches_tracked".
_OLD_LAYER_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12]\.)")


def modernize_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old DenseNet keys to today's module names; give each BatchNorm its step counter."""
    new = {_OLD_LAYER_KEY.sub(r"\1\2", key): value for key, value in state.items()}
    for key in [k for k in new if k.endswith(".running_mean")]:
        new.setdefault(key[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0))
    return new


def _imagenet() -> dict:
    weights = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1
    return modernize_state_dict(torchvision_weights(weights, "densenet121"))


DENSENET121 = xraykit.Backbone(
    name="densenet121",
    build=build_densenet121,
    head="classifier",
    stem="features.conv0",
    # The output of the last dense block (after norm5): the last spatial map before pooling.
    cam_layer="features",
    pretrained={"imagenet": _imagenet},
    adapt_state_dict=modernize_state_dict,  # so a copy of torchvision's file works as --weights PATH too
    description="torchvision DenseNet-121 as in CheXNet (7.0M parameters); ImageNet weights via torchvision's cache "
                "(plugin xraykit-densenet)",
)


@xraykit.hookimpl
def register_backbones(register):
    register(DENSENET121)
