"""A tiny CNN backbone for xraykit: three convolution blocks, about 25 thousand parameters.

ResNet-18 has 11 million parameters; on a laptop CPU a class waits minutes for it. This
network learns the synthetic X-rays at 32 pixels in seconds, so every student can try
an idea (another learning rate, fewer images, a harder contrast) within one lesson.
It declares its head, stem and CAM layer like any backbone, so fine-tuning (head only)
and Class Activation Maps work with it unchanged.
"""

from __future__ import annotations

from torch import nn

import xraykit

__version__ = "0.1.0"


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU, then halve the resolution."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class TinyCNN(nn.Module):
    """``stem`` (1 -> width channels, stride 2), ``features`` (two more blocks), ``pool``, ``fc``.

    The CAM layer is ``features``: its output is the last spatial map before the global
    average pool, exactly where ResNet-18's ``layer4`` sits.
    """

    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, kernel_size=3, stride=2, padding=1, bias=False)
        self.features = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            _block(width, 2 * width),
            _block(2 * width, 4 * width),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(self.stem(x))).flatten(1))


def build_tinycnn(num_classes: int) -> nn.Module:
    return TinyCNN(num_classes)


TINYCNN = xraykit.Backbone(
    name="tinycnn",
    build=build_tinycnn,
    head="fc",
    stem="stem",
    cam_layer="features",
    description="a three-block CNN (about 25k parameters) for fast classroom runs at 32 px (plugin xraykit-tinycnn)",
)


@xraykit.hookimpl
def register_backbones(register):
    register(TINYCNN)
