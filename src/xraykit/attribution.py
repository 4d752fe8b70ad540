"""What every explainer shares: the model in eval mode while it is looked at, and a layer's map brought to the image.

The built-in explainers, :mod:`xraykit.scoring` and a plugin's own explainers import these
from here; none of them needs the registries.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the duration, then every module's own ``training`` flag back.

    In train mode each forward pass would update BatchNorm's running statistics, and
    occlusion and integrated gradients make hundreds of them: the model would change by
    being explained. Flags are restored module by module, not with ``model.train(flag)``,
    because a frozen backbone keeps its BatchNorm layers in eval while its head trains.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def upsample_to(
    maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear", align: str = "tiles"
) -> torch.Tensor:
    """Layer maps ``(B, C, h, w)`` resized to ``size`` pixels.

    ``align="tiles"`` is the CAM paper's resize (and Captum's ``LayerAttribution.interpolate``):
    cell ``j`` fills its own ``stride x stride`` tile and its value sits at the tile's
    centre, pixel ``stride * j + stride / 2``. But a stride-2 convolution with kernel 3 and
    padding 1 centres output ``j`` on input ``2 j``, so in torchvision's ResNets cell ``j``
    of ``layer4`` sees a receptive field centred on pixel ``32 j``: the tiled map sits half
    a cell (16 pixels) too far right and down. ``align="receptive-field"`` puts cell ``j``'s
    value at pixel ``j * H / h`` (exact when the image size is a multiple of the stride)
    and repeats the last cell beyond it. Which one fits depends on the network's padding:
    DenseNet's average-pooling transitions, for one, centre their cells near the tiles.
    """
    if align == "tiles":
        return F.interpolate(maps, tuple(size), mode=mode)
    (h, w), (height, width) = maps.shape[-2:], size
    # Pixel y lies at y * h / height in cell units; grid_sample wants it scaled to [-1, 1].
    gy = torch.arange(height, dtype=maps.dtype) * (h / height) / max(h - 1, 1) * 2 - 1
    gx = torch.arange(width, dtype=maps.dtype) * (w / width) / max(w - 1, 1) * 2 - 1
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    grid = torch.stack([xx, yy], dim=-1).expand(len(maps), height, width, 2)
    return F.grid_sample(maps, grid, mode=mode, padding_mode="border", align_corners=True)
