"""Test-time augmentation: each image predicted as it is and in a few views that keep its anatomy.

A model trained on slightly turned, zoomed and shifted X-rays has learned to answer the same for
each of them; averaging its probabilities over such views of a test image smooths answers that
hang on one pixel's position. The views never flip an image (the heart is on the left) and keep
the whole chest in the frame: the image as it is, zoomed in 6% on the centre, and moved by 4% of
its side left, right, up and down (edges repeated). ``xraykit evaluate --tta`` and
``xraykit predict --tta`` report it; it costs one forward pass per view.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFT = 0.04  # of the image's side
ZOOM = 1.06


def _affine(images: torch.Tensor, zoom: float, tx: float, ty: float) -> torch.Tensor:
    """``uint8`` images ``(N, 1, S, S)`` zoomed by ``zoom`` and moved by ``(tx, ty)`` of their side, as ``uint8``."""
    x = images.float()
    theta = torch.tensor([[1 / zoom, 0.0, -2 * tx], [0.0, 1 / zoom, -2 * ty]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return moved.round().clamp(0, 255).to(torch.uint8)


VIEWS = {
    "as it is": lambda x: x,
    "zoomed in 6%": lambda x: _affine(x, ZOOM, 0.0, 0.0),
    "4% left": lambda x: _affine(x, 1.0, -SHIFT, 0.0),
    "4% right": lambda x: _affine(x, 1.0, SHIFT, 0.0),
    "4% up": lambda x: _affine(x, 1.0, 0.0, -SHIFT),
    "4% down": lambda x: _affine(x, 1.0, 0.0, SHIFT),
}


def views(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every view of ``images`` (``uint8``, ``(N, 1, S, S)``), by name; each the same shape and type."""
    return {name: view(images) for name, view in VIEWS.items()}
