"""ResNet-18, the backbone of both teaching tasks (torchvision's implementation)."""

from __future__ import annotations

import torchvision
from torch import nn

from ..hookspecs import hookimpl
from ..interfaces import Backbone
from ..weights import torchvision_weights


def build_resnet18(num_classes: int) -> nn.Module:
    """torchvision ResNet-18, random init, ``fc`` -> ``Linear(512, num_classes)``, one input channel.

    The stem takes one channel because X-rays are grayscale; ImageNet's RGB filters are
    folded into it when pretrained weights load (see :func:`xraykit.weights.fit_state_dict`).
    """
    model = torchvision.models.resnet18(weights=None)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _imagenet() -> dict:
    return torchvision_weights(torchvision.models.ResNet18_Weights.IMAGENET1K_V1, "resnet18")


RESNET18 = Backbone(
    name="resnet18",
    build=build_resnet18,
    head="fc",
    stem="conv1",
    cam_layer="layer4",
    pretrained={"imagenet": _imagenet},
    description="torchvision ResNet-18 (11.2M parameters); ImageNet weights via torchvision's cache",
)


@hookimpl
def register_backbones(register):
    register(RESNET18)
