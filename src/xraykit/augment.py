"""Training-time augmentation: small random affine transforms and brightness/contrast changes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` turned, zoomed, shifted and relit a little (no flips: the heart is on the left)."""
    n = x.shape[0]
    angle = _uniform(n, -7, 7, g) * math.pi / 180
    scale = _uniform(n, 0.92, 1.08, g)
    tx, ty = _uniform(n, -0.05, 0.05, g), _uniform(n, -0.05, 0.05, g)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    contrast, brightness = _uniform(n, 0.9, 1.1, g), _uniform(n, -0.1, 0.1, g)
    return x * contrast.view(-1, 1, 1, 1) + brightness.view(-1, 1, 1, 1)
