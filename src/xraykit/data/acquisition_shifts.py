"""Acquisition shifts: what another hospital's X-rays do to the same chest.

A model trained on one collection meets images from another scanner, another exposure,
another export pipeline. Each function here applies one such change, of a stated size, to
``uint8`` images ``(N, 1, H, W)`` and returns ``uint8`` images of the same shape, so a test
split can be re-scored under it (``benchmarks/robustness.py``) and the shift report can be
tested against shifts whose size is known. Sizes are relative to the image (a blur of
``sigma=1.0`` is one pixel at 224 px and scales with the image), so one family of shifts
means the same thing at 64 and at 224 px.

>>> import torch
>>> x = torch.full((2, 1, 8, 8), 100, dtype=torch.uint8)
>>> gamma(x, 1.0).equal(x), contrast(x, 1.3).equal(x)
(True, True)
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Shift = Callable[[torch.Tensor], torch.Tensor]


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8)


def gamma(x: torch.Tensor, g: float) -> torch.Tensor:
    """Intensity ``v -> v ** g``: above 1 darker mid-tones, below 1 brighter (exposure, film curve)."""
    return _uint8(_float(x).pow(g))


def contrast(x: torch.Tensor, c: float) -> torch.Tensor:
    """Each image's deviations from its own mean scaled by ``c`` (``1.3`` = +30% contrast)."""
    f = _float(x)
    mean = f.mean(dim=(-2, -1), keepdim=True)
    return _uint8(mean + c * (f - mean))


def brightness(x: torch.Tensor, b: float) -> torch.Tensor:
    """``b`` (a fraction of full scale) added to every pixel."""
    return _uint8(_float(x) + b)


def _gaussian_kernel(sigma_px: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma_px))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    return k / k.sum()


def gaussian_blur(f: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """A separable Gaussian blur of float images ``(N, 1, H, W)``, edges replicated.

    Each pass is a weighted sum of shifted views of the padded images: the same sums as a
    one-channel ``conv2d``, which runs several times slower on a CPU (the strong recipe blurs
    half of its training batches).
    """
    if sigma_px < 0.05:  # narrower than a twentieth of a pixel: no change to see (and no 0/0 in the kernel)
        return f
    k = _gaussian_kernel(sigma_px).tolist()
    r = (len(k) - 1) // 2
    padded = F.pad(f, (r, r, 0, 0), mode="replicate")
    width = f.shape[-1]
    f = sum(w * padded[..., i : i + width] for i, w in enumerate(k))
    padded = F.pad(f, (0, 0, r, r), mode="replicate")
    height = f.shape[-2]
    return sum(w * padded[..., i : i + height, :] for i, w in enumerate(k))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``sigma`` pixels at 224 px (scaled with the image): a softer detector."""
    return _uint8(gaussian_blur(_float(x), sigma * x.shape[-1] / 224))


def noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Gaussian noise of ``std`` (a fraction of full scale), the same for the same ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return _uint8(_float(x) + std * torch.randn(x.shape, generator=g))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encoded as JPEG at ``quality`` and decoded again (an export pipeline's compression)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    return torch.stack([decode_jpeg(encode_jpeg(img, quality=quality)) for img in x])


def resample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Shrunk by ``factor`` and enlarged back: a lower-resolution original, upscaled."""
    size = x.shape[-1]
    small = F.interpolate(_float(x), size=max(2, round(size / factor)), mode="area")
    return _uint8(F.interpolate(small, size=size, mode="bilinear", align_corners=False))


def zoom(x: torch.Tensor, z: float) -> torch.Tensor:
    """Framed tighter (``z > 1``, the centre ``1/z`` enlarged) or looser (``z < 1``, shrunk, edges padded)."""
    theta = torch.tensor([[1 / z, 0.0, 0.0], [0.0, 1 / z, 0.0]]).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return _uint8(F.grid_sample(_float(x), grid, padding_mode="border", align_corners=False))


def border(x: torch.Tensor, fraction: float, value: int = 0) -> torch.Tensor:
    """A frame of ``fraction`` of the side on each edge set to ``value`` (collimation, scanner margins)."""
    out = x.clone()
    w = max(1, round(fraction * x.shape[-1]))
    out[..., :w, :] = value
    out[..., -w:, :] = value
    out[..., :, :w] = value
    out[..., :, -w:] = value
    return out


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of each image (a common viewer or export setting)."""
    out = []
    for img in x[:, 0]:
        hist = torch.bincount(img.flatten().long(), minlength=256).float()
        cdf = hist.cumsum(0)
        lo = cdf[cdf > 0][0]
        lut = ((cdf - lo) / (cdf[-1] - lo).clamp(min=1) * 255).round().clamp(0, 255).to(torch.uint8)
        out.append(lut[img.long()])
    return torch.stack(out).unsqueeze(1)


def chain(*shifts: Shift) -> Shift:
    """Several shifts one after the other."""

    def apply(x: torch.Tensor) -> torch.Tensor:
        for s in shifts:
            x = s(x)
        return x

    return apply


# The family the robustness benchmark scores: each a plausible difference between two
# hospitals' X-rays, at a size seen in practice, alone and combined.
FAMILY: dict[str, Shift] = {
    "gamma 0.6": lambda x: gamma(x, 0.6),
    "gamma 1.6": lambda x: gamma(x, 1.6),
    "contrast -30%": lambda x: contrast(x, 0.7),
    "contrast +30%": lambda x: contrast(x, 1.3),
    "blur 1.5 px": lambda x: blur(x, 1.5),
    "noise 4%": lambda x: noise(x, 0.04),
    "JPEG q20": lambda x: jpeg(x, 20),
    "JPEG q40": lambda x: jpeg(x, 40),
    "resample 1/3": lambda x: resample(x, 3.0),
    "zoom in 1.2": lambda x: zoom(x, 1.2),
    "zoom out 0.85": lambda x: zoom(x, 0.85),
    "border 8%": lambda x: border(x, 0.08),
    "equalize": equalize,
    "gamma 1.4 + blur": chain(lambda x: gamma(x, 1.4), lambda x: blur(x, 1.0)),
    "contrast -30% + noise + JPEG q30": chain(
        lambda x: contrast(x, 0.7), lambda x: noise(x, 0.03), lambda x: jpeg(x, 30)
    ),
    "darker, more contrast, zoom out": chain(
        lambda x: gamma(x, 1.3), lambda x: contrast(x, 1.2), lambda x: zoom(x, 0.9)
    ),
}
