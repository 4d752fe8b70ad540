"""Thresholds and calibration, always fitted on validation images, never on the test images.

A network's 0.5 threshold and its raw probabilities are habits, not facts. Three things can
be chosen on the run's own validation images and then applied, unchanged, to the test set:

- a **threshold** on the positive class's probability: fixed (``0.5``), the one that
  maximises Youden's J (sensitivity + specificity - 1), or the highest one that still gives
  a target sensitivity (``sensitivity=0.95``: a screening tool must not miss pneumonia);
- a **temperature** ``T`` that divides the logits so that probabilities match how often the
  model is right (temperature scaling, Guo et al. 2017): it changes no ranking, only the
  confidence a number claims;
- and, to see whether it worked, the **expected calibration error** and the bins of a
  reliability diagram.

Choosing any of them on the test images would report a number tuned to those very images:
the test set would no longer be a test.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from matplotlib.figure import Figure

from .errors import XrayError
from .io import plain_text

Threshold = Union[float, str]


def parse_threshold(value: Threshold) -> Threshold:
    """``0.5``, ``"youden"`` or ``"sensitivity=0.95"``, checked; anything else is an :class:`XrayError`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value == "youden":
        return value
    elif isinstance(value, str) and value.startswith("sensitivity="):
        target = value.split("=", 1)[1]
        try:
            number = float(target)
        except ValueError:
            number = math.nan
        if not 0 < number <= 1:
            raise XrayError(f"threshold '{value}': the target sensitivity must be a number in (0, 1]")
        return f"sensitivity={number:g}"
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise XrayError(
                f"threshold '{value}' is not one of: a number in (0, 1), youden, sensitivity=TARGET"
            ) from None
    if not 0 < number < 1:
        raise XrayError(f"threshold {value}: must be between 0 and 1 (exclusive)")
    return number


def choose_threshold(scores: torch.Tensor, labels: torch.Tensor, rule: Threshold) -> float:
    """The threshold on ``scores`` (positive-class probabilities) that ``rule`` picks on these images.

    A fixed number is returned as it is. ``"youden"`` and ``"sensitivity=T"`` look at every
    distinct score as a candidate; images with a score at or above the threshold are called
    positive.
    """
    rule = parse_threshold(rule)
    if isinstance(rule, float):
        return rule
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        raise XrayError("choosing a threshold needs validation images of both classes")
    candidates = torch.unique(scores)
    sens = (pos[None, :] >= candidates[:, None]).float().mean(1)
    spec = (neg[None, :] < candidates[:, None]).float().mean(1)
    if rule == "youden":
        best = int(torch.argmax(sens + spec - 1))
    else:
        target = float(rule.split("=", 1)[1])
        ok = (sens >= target - 1e-12).nonzero().flatten()
        best = int(ok[-1]) if len(ok) else 0  # the highest threshold that still reaches the target
    return float(candidates[best])


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The ``T`` minimising the negative log-likelihood of ``softmax(logits / T)`` (1-D search in log T)."""
    logits = logits.double()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels))

    lo, hi = math.log(0.05), math.log(20.0)
    golden = (math.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):  # golden-section search: NLL is convex in 1/T, unimodal in log T
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> list[dict]:
    """Per confidence bin: how many images, their mean confidence and how often they are right."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    edges = torch.linspace(1 / probs.shape[1], 1, bins + 1)
    out = []
    for i in range(bins):
        inside = (confidence > edges[i]) & (confidence <= edges[i + 1]) if i else (confidence <= edges[1])
        n = int(inside.sum())
        out.append(
            {
                "low": float(edges[i]),
                "high": float(edges[i + 1]),
                "images": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(correct[inside].mean()) if n else None,
            }
        )
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """The images-weighted mean gap between confidence and accuracy over the reliability bins."""
    total = len(labels)
    if not total:
        return math.nan
    return sum(
        b["images"] / total * abs(b["confidence"] - b["accuracy"])
        for b in reliability_bins(probs, labels, bins)
        if b["images"]
    )


def calibrate(
    val_logits: torch.Tensor, val_labels: torch.Tensor, test_logits: torch.Tensor, test_labels: torch.Tensor
) -> dict[str, Any]:
    """Temperature fitted on validation logits; the test images' calibration error before and after it."""
    t = fit_temperature(val_logits, val_labels)
    before, after = test_logits.softmax(1), (test_logits / t).softmax(1)

    def ece(probs: torch.Tensor) -> Optional[float]:
        value = expected_calibration_error(probs, test_labels)
        return None if math.isnan(value) else value

    return {
        "temperature": t,
        "fitted_on": f"the run's validation images ({len(val_labels)})",
        "ece_before": ece(before),
        "ece_after": ece(after),
        "bins": {"before": reliability_bins(before, test_labels), "after": reliability_bins(after, test_labels)},
    }


def reliability_figure(calibration: dict[str, Any]) -> Figure:
    """Reliability diagram: mean confidence against accuracy per bin, before and after the temperature."""
    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    t = calibration["temperature"]
    for key, label, marker in (("before", "as trained", "o-"), ("after", f"temperature {t:.2f}", "s-")):
        points = [(b["confidence"], b["accuracy"]) for b in calibration["bins"][key] if b["images"]]
        if points:
            ax.plot(*zip(*points), marker, label=f"{label} (ECE {calibration[f'ece_{key}'] or 0:.3f})")
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("Reliability on the test images", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    plain_text(fig).tight_layout()
    return fig
