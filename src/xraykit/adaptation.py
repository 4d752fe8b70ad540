"""Label-free adaptation: looking at the new images, never at their labels.

Two honest corrections when a model meets X-rays from another hospital, both reported by
``xraykit evaluate --adapt`` *beside* the plain numbers, never instead of them:

- **AdaBN** (Li et al. 2016): BatchNorm layers normalise with the mean and variance they
  saw in training. New images with another exposure have other statistics; re-estimating
  them on the new images (a forward pass, no gradient, no label) puts the features back
  where the rest of the network expects them.
- **Prior shift** (label shift): the new collection may hold another share of pneumonia than
  the training data. Its share is estimated without labels and the probabilities re-weighted
  with Bayes' rule, which moves the decision threshold and leaves the ranking (ROC AUC) as it
  was. Two estimators: black-box shift estimation (BBSE, Lipton, Wang and Smola 2018), which
  trusts only the model's decisions through the confusion matrix of the labelled validation
  images and so survives a model that is not calibrated; and EM (Saerens, Latinne and
  Decaestecker 2002), which trusts the probabilities themselves. ``tests/test_label_shift.py``
  shows BBSE finding the share of an over-confident model where EM is dragged off, so the
  adjustment uses BBSE whenever validation images are at hand.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .runs import Run


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are those of ``inputs`` (normalised images).

    The statistics are a plain average over all batches (``momentum=None``), so the order of
    the images does not matter; the weights are untouched and the original model unchanged.
    """
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    adapted.eval()
    for m in norms:
        m.train()
    for start in range(0, len(inputs), batch_size):
        adapted(inputs[start : start + batch_size])
    return adapted.eval()


def estimate_prior(probs: torch.Tensor, model_prior: torch.Tensor, steps: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """The class shares of the images behind ``probs``, by Saerens et al.'s EM.

    ``model_prior`` is the class balance the model's probabilities assume: the training
    shares, or uniform when the loss was class-weighted. Each step re-weights the
    probabilities to the current estimate and takes their mean as the next one.
    """
    probs, model_prior = probs.double(), model_prior.double()
    prior = model_prior.clone()
    for _ in range(steps):
        adjusted = adjust_to_prior(probs, model_prior, prior)
        new = adjusted.mean(0)
        if float((new - prior).abs().max()) < tol:
            return new.float()
        prior = new
    return prior.float()


def adjust_to_prior(probs: torch.Tensor, model_prior: torch.Tensor, new_prior: torch.Tensor) -> torch.Tensor:
    """Bayes' rule: probabilities under ``model_prior`` restated for ``new_prior``.

    Every image's odds are multiplied by the same number, so the images keep their order. No class is
    made impossible: a share estimated at 0 or 1 is taken as at least ``MIN_SHARE``, since a weight of
    0 would turn every probability of that class into a tie and lose the ranking with it.
    """
    new_prior = new_prior.double().clamp(min=MIN_SHARE)
    weighted = probs.double() * (new_prior / new_prior.sum() / model_prior.double())
    return (weighted / weighted.sum(1, keepdim=True)).to(probs.dtype)


MIN_SHARE = 1e-3


def estimate_prior_bbse(
    val_probs: torch.Tensor,
    val_labels: torch.Tensor,
    new_probs: torch.Tensor,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The class shares of the images behind ``new_probs``, by black-box shift estimation, with an interval.

    The validation images give the joint frequencies ``C[i, j]`` of deciding class ``i`` for an image
    of class ``j``; the new images give how often each class is decided, ``mu``. If only the class
    shares changed, ``mu = C w`` where ``w`` holds the ratio of new to validation shares: solved, the
    new shares are ``w`` times the validation ones (clipped to [0, 1], then normalised). The interval
    is a percentile bootstrap over both the validation and the new images.

    Returns:
        ``{"prior": [share per class], "interval": [low, high] of the last class's share, "level": level}``.
    """
    k = val_probs.shape[1]
    val_pred, new_pred = val_probs.argmax(1), new_probs.argmax(1)

    def solve(vi: torch.Tensor, ni: torch.Tensor) -> torch.Tensor:
        joint = torch.zeros(k, k, dtype=torch.float64)
        joint.index_put_((val_pred[vi], val_labels[vi]), torch.ones(len(vi), dtype=torch.float64), accumulate=True)
        joint /= len(vi)
        mu = torch.bincount(new_pred[ni], minlength=k).double() / len(ni)
        val_share = joint.sum(0)
        try:
            w = torch.linalg.lstsq(joint, mu.unsqueeze(1)).solution.squeeze(1)
        except RuntimeError:  # a degenerate confusion (a class never decided): no estimate better than EM's
            w = torch.ones(k, dtype=torch.float64)
        share = (w.clamp(min=0) * val_share).clamp(0, 1)
        return share / share.sum() if float(share.sum()) > 0 else val_share

    everything_val, everything_new = torch.arange(len(val_pred)), torch.arange(len(new_pred))
    prior = solve(everything_val, everything_new)
    g = torch.Generator().manual_seed(seed)
    draws = [
        float(
            solve(
                torch.randint(0, len(val_pred), (len(val_pred),), generator=g),
                torch.randint(0, len(new_pred), (len(new_pred),), generator=g),
            )[-1]
        )
        for _ in range(resamples)
    ]
    draws.sort()
    tail = (1 - level) / 2
    low, high = draws[int(tail * (resamples - 1))], draws[round((1 - tail) * (resamples - 1))]
    return {"prior": prior.tolist(), "interval": [low, high], "level": level}


def model_prior_of(run: Run) -> tuple[torch.Tensor, str]:
    """The class shares a run's probabilities assume, and why: uniform for a class-weighted loss, else the
    training shares."""
    k = len(run.classes)
    counts = run.record.train_class_counts
    if run.config.class_weights == "auto" or not counts:
        why = "class-weighted loss" if run.config.class_weights == "auto" else "training counts not recorded"
        return torch.full((k,), 1.0 / k), f"uniform ({why})"
    c = torch.tensor([float(counts.get(name, 0)) for name in run.classes]).clamp(min=1.0)
    return c / c.sum(), "the training class shares"
