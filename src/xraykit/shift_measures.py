"""How far new X-rays are from the ones a run was trained on, measured without their labels.

A validation split carved from the training folder shares its hospital, its scanner and
its export settings, so it cannot warn that another collection is different. This module
compares two things, neither of which needs a label:

- **what the images look like**: per image brightness (mean), contrast (standard deviation),
  sharpness (mean absolute Laplacian, which blur lowers and noise raises), the darkness of
  the border, the share of near-white pixels (burnt-in text and markers), and, where the
  files are known, the size and aspect ratio before resizing;
- **what the network sees**: the distance of each image's features (what the head
  receives) to the training images' features (a Mahalanobis distance under a shrunk
  covariance), **calibrated on the run's own validation images**: an image's percentile
  says what share of validation images lie closer. On images like the training ones about
  5% land above the 95th percentile; many more than that means the model is on unfamiliar
  ground.

The reference (training feature statistics, validation distances, training intensity
statistics per class) is computed once per checkpoint and kept in ``RUN/reference-<which>.pt``,
loaded like every checkpoint, weights-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .interfaces import Backbone, XrayData

# The percentile of the run's validation distances above which an image counts as unusual,
# and the multiple of the largest validation distance beyond which it is far away.
UNUSUAL_PERCENTILE = 0.95
FAR_FACTOR = 1.5
STATS = ("brightness", "contrast", "sharpness", "border", "bright marks")
# How each statistic's direction reads in words: (lower, higher).
WORDS = {
    "brightness": ("darker", "brighter"),
    "contrast": ("less contrasted", "more contrasted"),
    "sharpness": ("blurrier or smoother", "sharper or noisier"),
    "border": ("darker at the border", "brighter at the border"),
    "bright marks": ("with fewer bright marks", "with more bright marks (text, markers)"),
    "aspect": ("narrower", "wider"),
}
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def intensity_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image statistics of ``uint8`` images ``(N, 1, H, W)``, each a tensor ``(N,)``."""
    x = images.float() / 255.0
    n, size = len(x), x.shape[-1]
    w = max(1, round(0.08 * size))
    frame = torch.ones_like(x[:1], dtype=torch.bool)
    frame[..., w:-w, w:-w] = False
    lap = F.conv2d(x, _LAPLACIAN, padding=1)[..., 1:-1, 1:-1].abs().flatten(1).mean(1) if n else torch.empty(0)
    return {
        "brightness": x.flatten(1).mean(1),
        "contrast": x.flatten(1).std(1) if n else torch.empty(0),
        "sharpness": lap * size / 224,  # per pixel at 224 px: comparable across sizes
        "border": x[:, frame[0]].mean(1) if n else torch.empty(0),
        "bright marks": (x > 0.94).flatten(1).float().mean(1),
    }


@dataclass
class Reference:
    """What "like the training images" means for one checkpoint of one run."""

    mean: torch.Tensor  # (D,) mean training feature
    precision: torch.Tensor  # (D, D) inverse of the shrunk training feature covariance
    val_distances: torch.Tensor  # sorted distances of the run's validation images
    train_stats: dict[str, torch.Tensor]  # intensity statistics of the training images
    train_labels: torch.Tensor
    classes: tuple[str, ...]

    def to_state(self) -> dict:
        return {
            "mean": self.mean,
            "precision": self.precision,
            "val_distances": self.val_distances,
            "train_stats": self.train_stats,
            "train_labels": self.train_labels,
            "classes": list(self.classes),
        }

    @classmethod
    def from_state(cls, state: dict) -> Reference:
        return cls(
            state["mean"],
            state["precision"],
            state["val_distances"],
            dict(state["train_stats"]),
            state["train_labels"],
            tuple(state["classes"]),
        )

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of each feature row to the training mean."""
        d = features.double() - self.mean.double()
        return ((d @ self.precision.double()) * d).sum(1).clamp(min=0).sqrt().float()

    def percentiles(self, distances: torch.Tensor) -> torch.Tensor:
        """The share of the run's validation images closer than each distance (0 to 1)."""
        ref = self.val_distances
        return torch.searchsorted(ref, distances.contiguous()).float() / max(1, len(ref))

    def far(self, distances: torch.Tensor) -> torch.Tensor:
        """Beyond every validation image by half as much again: a hint that the image is of another kind."""
        return distances > FAR_FACTOR * float(self.val_distances.max())


def build_reference(
    features_of, backbone: Backbone, model: nn.Module, train: XrayData, val: XrayData, max_train: int = 2000
) -> Reference:
    """Training feature statistics (at most ``max_train`` images, evenly spaced) and validation distances.

    ``features_of(model, backbone, images)`` returns what the head receives for each image.
    The covariance is shrunk towards its mean variance (a tenth of the way), which keeps
    its inverse stable with fewer images than feature dimensions.
    """
    step = max(1, len(train) // max_train)
    feats = features_of(model, backbone, train.images[::step]).double()
    mean = feats.mean(0)
    centred = feats - mean
    cov = centred.T @ centred / max(1, len(feats) - 1)
    shrink = 0.1
    cov = (1 - shrink) * cov + shrink * cov.diagonal().mean() * torch.eye(len(mean), dtype=cov.dtype)
    ref = Reference(
        mean.float(),
        torch.linalg.inv(cov).float(),
        torch.empty(0),
        intensity_stats(train.images),
        train.labels.clone(),
        tuple(train.classes),
    )
    ref.val_distances = ref.distances(features_of(model, backbone, val.images)).sort().values
    return ref


def stat_distance(reference: torch.Tensor, new: torch.Tensor) -> float:
    """Wasserstein-1 distance between two samples of one statistic, in units of the reference's spread.

    Computed on 101 quantiles of each; 0 for the same distribution, growing as the new
    sample moves away, whatever its shape.
    """
    if not len(reference) or not len(new):
        return 0.0
    q = torch.linspace(0, 1, 101)
    a, b = torch.quantile(reference.double(), q.double()), torch.quantile(new.double(), q.double())
    spread = float(reference.double().std()) if len(reference) > 1 else 0.0
    return float((a - b).abs().mean()) / max(spread, 1e-6)


def describe_group(reference: dict[str, torch.Tensor], new: dict[str, torch.Tensor], what: str) -> list[str]:
    """Sentences for the statistics on which most of ``new`` lies outside the middle 90% of ``reference``."""
    sentences = []
    for name, values in new.items():
        ref = reference.get(name)
        if ref is None or not len(ref) or not len(values):
            continue
        lo, hi = torch.quantile(ref.double(), 0.05), torch.quantile(ref.double(), 0.95)
        below, above = float((values < lo).float().mean()), float((values > hi).float().mean())
        if max(below, above) >= 0.5:
            word = WORDS.get(name, ("lower", "higher"))[0 if below > above else 1]
            share = max(below, above)
            sentences.append(f"{share:.0%} of {what} are {word} than 95% of the matching training images ({name})")
    return sentences
