"""How well an attribution map finds a lesion whose outline is known.

Synthetic X-rays come with their lesion masks, so a heatmap can be scored instead of
admired. Two scores, each with its chance level beside it:

- the **pointing game**: does the map's highest point fall inside the lesion? A map that
  points at random scores the mask's share of the image;
- the **inside share**: what fraction of the map's positive attribution lies inside the
  lesion? A flat map scores the mask's share of the image too.

So a method is only worth trusting on this data when it beats the mask's area fraction
by a wide margin.

A map drawn on a coarse grid has a ceiling too. Grad-CAM at ResNet-18's ``layer4`` holds
one number per 32 x 32 pixels, and its upsampled peak can only sit where the upsampling
puts a peak. :func:`ideal_map` is the best evidence such a grid could hold (each cell
valued by the share of lesion in the part of the image it stands for); its scores say how
much of a method's miss is the grid's fault and how much the model's.
"""

from __future__ import annotations

import time
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attribution import upsample_to
from .errors import XrayError
from .interfaces import Backbone


def _check(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if maps.shape != masks.shape or maps.dim() != 3:
        raise ValueError(
            f"maps and masks must both be (B, H, W); got shape {tuple(maps.shape)} and {tuple(masks.shape)}"
        )
    return maps.detach().float().flatten(1), masks.bool().flatten(1)


def area_fraction(masks: torch.Tensor) -> torch.Tensor:
    """Each mask's share of its image, ``(B,)``: the chance level of both scores."""
    return masks.bool().flatten(1).float().mean(1)


def ideal_map(
    masks: torch.Tensor, grid: tuple[int, int], align: str = "tiles", upsample: str = "bilinear"
) -> torch.Tensor:
    """The map a perfect explainer would draw on a ``grid`` of cells, brought back to the masks' size: ``(B, H, W)``.

    Each cell holds the share of its part of the image that is lesion, then the cells are
    upsampled as the explainer upsamples its own (``align`` and ``upsample`` as in
    ``xraykit.attribution.upsample_to``). With ``align="tiles"`` a cell stands for its
    own tile; with ``"receptive-field"`` for the stride-sized square centred where
    torchvision's ResNets centre it (pixel ``stride * j``).
    """
    x = masks.float()[:, None]
    (height, width), (h, w) = masks.shape[-2:], grid
    if align == "tiles":
        cells = F.adaptive_avg_pool2d(x, (h, w))
    else:
        sy, sx = max(height // h, 1), max(width // w, 1)
        padded = F.pad(x, (sx // 2, sx - sx // 2, sy // 2, sy - sy // 2))
        cells = F.avg_pool2d(padded, (sy, sx))[..., :h, :w]
    return upsample_to(cells, (height, width), upsample, align)[:, 0]


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, 1.0 if the map's maximum lies inside the mask, else 0.0: ``(B,)``.

    When several pixels share the maximum (a flat map, a plateau left by upsampling), the
    score is the share of them inside the mask, the expected hit of breaking the tie at
    random; so a flat map scores exactly the chance level instead of a lucky hit.
    """
    m, k = _check(maps, masks)
    peaks = m == m.max(dim=1, keepdim=True).values
    return (peaks & k).sum(1).float() / peaks.sum(1).float()


def inside_share(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, the share of positive attribution that lies inside the mask: ``(B,)``.

    Negative attribution (evidence against the class) is left out. A map with no positive
    attribution at all puts nothing inside and scores 0.
    """
    m, k = _check(maps, masks)
    positive = m.clamp(min=0)
    total = positive.sum(1)
    inside = (positive * k).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=torch.finfo(total.dtype).tiny), torch.zeros_like(total))


def score_methods(
    explain,
    model: nn.Module,
    backbone: Backbone,
    images: torch.Tensor,
    masks: torch.Tensor,
    target: int,
    methods: Sequence[str],
    options: Optional[Mapping[str, dict]] = None,
) -> dict[str, dict]:
    """Pointing game, inside share and seconds per image of each method, on ``images`` for class ``target``.

    ``explain(model, backbone, images, targets, method, **options)`` computes the maps
    (``xraykit.explain_maps``); it is passed in so that this module stays free of the
    registries and can be read on its own.
    """
    options = options or {}
    targets = torch.full((len(images),), target, dtype=torch.long)
    results = {}
    for method in methods:
        started = time.perf_counter()
        maps = explain(model, backbone, images, targets, method, **options.get(method, {}))
        seconds = time.perf_counter() - started
        results[method] = {
            "pointing_game": float(pointing_game(maps, masks).mean()),
            "inside_share": float(inside_share(maps, masks).mean()),
            "seconds_per_image": seconds / len(images),
            "options": dict(options.get(method, {})),
            "ideal": _ideal_scores(explain, model, backbone, images, masks, targets, method, options.get(method, {})),
        }
    return results


def _ideal_scores(explain, model, backbone, images, masks, targets, method: str, options: Mapping) -> Optional[dict]:
    """The scores of :func:`ideal_map` at ``method``'s grid, or None for a method without one.

    A method has a grid when it can return its map before upsampling (``upsample="none"``,
    as ``cam`` can) and that map is smaller than the image.
    """
    try:  # an explainer without an upsample option is refused by name: it has no grid either
        raw = explain(model, backbone, images[:1], targets[:1], method, **{**options, "upsample": "none"})
    except XrayError:  # e.g. guided-gradcam: it multiplies by a pixel-level map, so it has no grid of its own
        return None
    grid = tuple(raw.shape[-2:])
    if grid == tuple(masks.shape[-2:]):
        return None
    ideal = ideal_map(masks, grid, align=options.get("align", "tiles"), upsample=options.get("upsample", "bilinear"))
    return {
        "grid": list(grid),
        "pointing_game": float(pointing_game(ideal, masks).mean()),
        "inside_share": float(inside_share(ideal, masks).mean()),
    }
