"""Training-time augmentation: ``light`` (small turns, zooms and relighting) and ``strong``
(the acquisition shifts of another hospital, for the ``strong`` recipe)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data.acquisition_shifts import gaussian_blur


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _random_affine(
    x: torch.Tensor, g: torch.Generator, degrees: float, scale: tuple[float, float], shift: float
) -> torch.Tensor:
    """Each image turned by up to ``degrees``, zoomed within ``scale`` and moved by up to ``shift`` of its side."""
    n = x.shape[0]
    angle = _uniform(n, -degrees, degrees, g) * math.pi / 180
    zoom = _uniform(n, *scale, g)
    tx, ty = _uniform(n, -shift, shift, g), _uniform(n, -shift, shift, g)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` turned, zoomed, shifted and relit a little (no flips: the heart is on the left)."""
    n = x.shape[0]
    x = _random_affine(x, g, degrees=7, scale=(0.92, 1.08), shift=0.05)
    contrast, brightness = _uniform(n, 0.9, 1.1, g).to(x.device), _uniform(n, -0.1, 0.1, g).to(x.device)
    return x * contrast.view(-1, 1, 1, 1) + brightness.view(-1, 1, 1, 1)


def augment_strong(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Images in [0, 1] as another hospital might have taken them: the ``strong`` recipe's augmentation.

    Each change covers a way two collections of X-rays differ (``data/acquisition_shifts.py`` applies the same
    kinds at fixed sizes to test for them): framing (turns up to 10 degrees, zoom 0.85-1.2, shifts
    up to 6%), exposure (gamma 0.6-1.6, log-uniform), contrast (0.7-1.3 about the image's own mean)
    and brightness, the detector's sharpness (a Gaussian blur on half the batches), a
    lower-resolution original (shrunk up to 3 times and enlarged back, 3 batches in 10), noise,
    and black borders (3 images in 10). A network that must be right under all of them cannot
    lean on the exposure or the sharpness of one hospital's machine. The result is rounded to 256
    levels, as the other hospital's files would be (and as every image xraykit reads is), which also
    lets histogram equalisation count ranks instead of sorting pixels.
    """
    n = x.shape[0]
    x = _random_affine(x, g, degrees=10, scale=(0.85, 1.2), shift=0.06)
    gamma = torch.exp(_uniform(n, math.log(0.6), math.log(1.6), g)).to(x.device).view(-1, 1, 1, 1)
    x = x.clamp(1e-4, 1).pow(gamma)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    contrast, brightness = _uniform(n, 0.7, 1.3, g), _uniform(n, -0.08, 0.08, g)
    x = mean + contrast.to(x.device).view(-1, 1, 1, 1) * (x - mean) + brightness.to(x.device).view(-1, 1, 1, 1)
    size = x.shape[-1]
    if float(torch.rand(1, generator=g)) < 0.5:
        x = gaussian_blur(x, float(_uniform(1, 0.0, 1.5, g)) * size / 224)
    if float(torch.rand(1, generator=g)) < 0.3:
        small = max(2, round(size / float(_uniform(1, 1.0, 3.0, g))))
        x = F.interpolate(F.interpolate(x, size=small, mode="area"), size=size, mode="bilinear", align_corners=False)
    noise = _uniform(n, 0, 0.04, g).to(x.device).view(-1, 1, 1, 1) * _randn_like(x, g)
    x = x + noise
    framed = (torch.rand(n, generator=g) < 0.3).tolist()
    widths = (_uniform(n, 0.0, 0.1, g) * size).round().long().tolist()
    for i in range(n):
        if framed[i] and widths[i] > 0:
            w = widths[i]
            x[i, :, :w, :], x[i, :, -w:, :], x[i, :, :, :w], x[i, :, :, -w:] = 0, 0, 0, 0
    return (x.clamp(0, 1) * 255).round() / 255


def _randn_like(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, on its device: drawn from ``g`` on the CPU; on a GPU from a
    generator there, seeded from ``g`` (the CPU's stream, and its results, stay as they were)."""
    if x.device.type == "cpu":
        return torch.randn(x.shape, generator=g)
    on_device = torch.Generator(device=x.device).manual_seed(int(torch.randint(2**62, (1,), generator=g)))
    return torch.randn(x.shape, generator=on_device, device=x.device)
