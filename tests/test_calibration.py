"""Thresholds, temperature and label-free adaptation: chosen on validation, checked against their laws."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from xraykit.adaptation import adapt_batchnorm, adjust_to_prior, estimate_prior
from xraykit.calibration import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    parse_threshold,
    reliability_bins,
)
from xraykit.errors import XrayError

scores_and_labels = st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=2, max_size=80).filter(
    lambda xs: any(y for _, y in xs) and not all(y for _, y in xs)
)


def _rates(scores, labels, t):
    pred = scores >= t
    return float(pred[labels == 1].float().mean()), float((~pred[labels == 0]).float().mean())


@given(scores_and_labels)
def test_youden_threshold_is_the_best_of_every_cut_between_sorted_scores(pairs):
    scores = torch.tensor([s for s, _ in pairs], dtype=torch.float64)
    labels = torch.tensor([int(y) for _, y in pairs])
    t = choose_threshold(scores, labels, "youden")
    sens, spec = _rates(scores, labels, t)
    # brute force: every score as a cut, and one above all of them
    cuts = sorted(set(scores.tolist())) + [2.0]
    best = max(sum(_rates(scores, labels, c)) - 1 for c in cuts)
    assert sens + spec - 1 == pytest.approx(best)


@given(scores_and_labels, st.sampled_from([0.8, 0.9, 0.95, 1.0]))
def test_a_sensitivity_target_is_met_by_the_highest_threshold_that_meets_it(pairs, target):
    scores = torch.tensor([s for s, _ in pairs], dtype=torch.float64)
    labels = torch.tensor([int(y) for _, y in pairs])
    t = choose_threshold(scores, labels, f"sensitivity={target}")
    assert _rates(scores, labels, t)[0] >= target - 1e-9
    higher = [s for s in set(scores.tolist()) if s > t]
    if higher:
        assert _rates(scores, labels, min(higher))[0] < target


@pytest.mark.parametrize("bad", ["0", "1.5", "-0.2", "nan", "cosin", "sensitivity=2", "sensitivity=x", "", True])
def test_a_bad_threshold_is_refused_in_one_line(bad):
    with pytest.raises(XrayError, match="threshold"):
        parse_threshold(bad)


def test_temperature_scaling_recovers_a_known_overconfidence():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 2, generator=g) * 1.5
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).flatten()
    overconfident = true_logits * 3.0  # what an overfitted network reports
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.15)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.15)


def test_calibration_error_is_small_when_confidence_matches_accuracy_and_large_when_not():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5000, 2, generator=g) * 2
    probs = logits.softmax(1)
    labels = torch.multinomial(probs, 1, generator=g).flatten()
    assert expected_calibration_error(probs, labels) < 0.03
    assert expected_calibration_error((logits * 4).softmax(1), labels) > 0.08
    assert sum(b["images"] for b in reliability_bins(probs, labels)) == len(labels)


@given(st.floats(0.15, 0.85), st.integers(0, 1000))
@settings(max_examples=20, deadline=None)
def test_em_recovers_the_class_share_of_new_images_from_calibrated_probabilities(share, seed):
    g = torch.Generator().manual_seed(seed)
    n = 3000
    labels = (torch.rand(n, generator=g) < share).long()
    # A calibrated model under a 50/50 prior: likelihood ratios from two Gaussian scores.
    x = torch.randn(n, generator=g) + 2.0 * labels
    log_ratio = 2.0 * x - 2.0  # log N(x; 2, 1) - log N(x; 0, 1)
    probs = torch.stack([1 - torch.sigmoid(log_ratio), torch.sigmoid(log_ratio)], 1)
    prior = estimate_prior(probs, torch.tensor([0.5, 0.5]))
    assert float(prior[1]) == pytest.approx(float(labels.float().mean()), abs=0.04)


def test_restating_probabilities_for_the_same_prior_changes_nothing():
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    prior = torch.tensor([0.3, 0.7])
    assert torch.allclose(adjust_to_prior(probs, prior, prior), probs)


def test_adabn_takes_the_new_images_statistics_and_leaves_the_model_alone():
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(16, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = torch.randn(50, 1, 4, 4) * 3 + 5
    adapted = adapt_batchnorm(model, inputs, batch_size=10)  # equal batches: the mean of their means
    assert float(adapted[0].running_mean) == pytest.approx(float(inputs.mean()), rel=1e-4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(adapted[2].weight, model[2].weight)
