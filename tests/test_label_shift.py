"""Estimating a new site's share of pneumonia without its labels, from a model that is not calibrated.

EM (Saerens et al. 2002) trusts the model's probabilities; an over-confident model (as trained
networks are) drags its estimate off. Black-box shift estimation (Lipton et al. 2018) trusts only
the model's *decisions*, through the confusion matrix measured on labelled validation images: if
the validation and the new images differ only in their class shares, it is consistent whatever
the probabilities say. The tests simulate exactly that: one classifier, validation images at one
share, new images resampled to another, the true share known.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xraykit.adaptation import adjust_to_prior, estimate_prior, estimate_prior_bbse
from xraykit.metrics import roc_auc


def images_at(share: float, n: int, seed: int, overconfidence: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images with a PNEUMONIA share of ``share`` and an over-confident model's probabilities of them.

    The score of an image depends on its class only (no covariate shift); the probabilities are the
    calibrated ones (a 50/50 prior) with their logit multiplied by ``overconfidence``.
    """
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) < share).long()
    x = torch.randn(n, generator=g) + 1.5 * labels
    logit = overconfidence * (1.5 * x - 1.125)
    probs = torch.stack([1 - torch.sigmoid(logit), torch.sigmoid(logit)], 1)
    return probs, labels


@settings(max_examples=15, deadline=None)
@given(val_share=st.floats(0.3, 0.7), new_share=st.floats(0.15, 0.85), seed=st.integers(0, 1000))
def test_bbse_finds_the_new_share_of_an_overconfident_model_and_em_does_not_do_better(val_share, new_share, seed):
    val_probs, val_labels = images_at(val_share, 4000, seed)
    new_probs, new_labels = images_at(new_share, 4000, seed + 1)
    truth = float(new_labels.float().mean())
    prior = torch.tensor([1 - val_share, val_share])
    bbse = estimate_prior_bbse(val_probs, val_labels, new_probs, resamples=50)
    assert bbse["prior"][1] == pytest.approx(truth, abs=0.05)
    lo, hi = bbse["interval"]
    assert lo <= bbse["prior"][1] <= hi
    em = float(estimate_prior(new_probs, prior)[1])
    assert abs(bbse["prior"][1] - truth) <= abs(em - truth) + 0.03


def test_the_bbse_interval_covers_the_true_share_in_most_draws():
    covered = 0
    for seed in range(20):
        val_probs, val_labels = images_at(0.5, 600, seed)
        new_probs, new_labels = images_at(0.625, 400, 1000 + seed)
        lo, hi = estimate_prior_bbse(val_probs, val_labels, new_probs, resamples=200)["interval"]
        covered += lo <= float(new_labels.float().mean()) <= hi
    assert covered >= 16  # a 95% interval: 19 of 20 expected, some slack for 20 draws


@settings(max_examples=40, deadline=None)
@given(share=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_restating_for_any_prior_keeps_the_ranking(share, seed):
    """Bayes' rule multiplies every image's odds by one number: the order of the images, hence the ROC AUC,
    cannot change, even for a share of 0 or 1 (where unclipped it saturated to ties and AUC fell to 0.56)."""
    probs, labels = images_at(0.5, 300, seed)
    if labels.min() == labels.max():
        return
    adjusted = adjust_to_prior(probs, torch.tensor([0.5, 0.5]), torch.tensor([1 - share, share]))
    assert roc_auc(adjusted[:, 1], labels) == pytest.approx(roc_auc(probs[:, 1], labels), abs=1e-9)
