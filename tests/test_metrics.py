"""Test metrics against values worked out by hand, and ROC AUC against its definition."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xraykit.metrics import compute_metrics, positive_class, roc_auc

# Nine test images, worked by hand. p is the predicted probability of PNEUMONIA.
#   true NORMAL:    p = 0.1 (right), 0.6 (wrong), 0.3 (right), 0.55 (wrong)  -> TN 2, FP 2
#   true PNEUMONIA: p = 0.8, 0.7, 0.4 (wrong), 0.9, 0.6                      -> TP 4, FN 1
P_PNEUMONIA = [0.1, 0.6, 0.3, 0.55, 0.8, 0.7, 0.4, 0.9, 0.6]
LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 1]
CLASSES = ("NORMAL", "PNEUMONIA")


@pytest.fixture
def metrics():
    p = torch.tensor(P_PNEUMONIA, dtype=torch.float64)
    return compute_metrics(torch.stack([1 - p, p], dim=1), torch.tensor(LABELS), CLASSES)


def test_confusion_matrix_rows_are_true_classes_and_columns_predicted(metrics):
    assert metrics["confusion_matrix"] == [[2, 2], [1, 4]]
    assert metrics["n"] == 9


def test_accuracy_is_the_fraction_right(metrics):
    assert metrics["accuracy"] == pytest.approx(6 / 9)


def test_per_class_accuracy_is_keyed_by_class_name(metrics):
    assert metrics["per_class_accuracy"] == pytest.approx({"NORMAL": 2 / 4, "PNEUMONIA": 4 / 5})


def test_balanced_accuracy_is_the_mean_of_per_class_accuracies(metrics):
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 4 + 4 / 5) / 2)


def test_sensitivity_specificity_precision_and_f1_treat_pneumonia_as_positive(metrics):
    assert metrics["positive_class"] == "PNEUMONIA"
    assert metrics["sensitivity"] == pytest.approx(4 / 5)  # TP / (TP + FN)
    assert metrics["specificity"] == pytest.approx(2 / 4)  # TN / (TN + FP)
    assert metrics["precision"] == pytest.approx(4 / 6)  # TP / (TP + FP)
    assert metrics["f1"] == pytest.approx(8 / 11)  # 2 TP / (2 TP + FP + FN)
    assert metrics["threshold"] == 0.5


def test_roc_auc_counts_a_tie_as_half(metrics):
    # Of the 20 (PNEUMONIA, NORMAL) pairs: 0.8, 0.7 and 0.9 beat all four NORMAL scores (12),
    # 0.4 beats 0.1 and 0.3 (2), 0.6 beats 0.1, 0.3 and 0.55 and ties 0.6 (3.5).
    assert metrics["roc_auc"] == pytest.approx(17.5 / 20)


def test_majority_baseline_is_always_saying_the_commonest_class(metrics):
    assert metrics["majority_baseline"] == {"class": "PNEUMONIA", "accuracy": pytest.approx(5 / 9)}


def test_the_positive_class_is_pneumonia_wherever_it_sits():
    assert positive_class(("NORMAL", "PNEUMONIA")) == 1
    assert positive_class(("PNEUMONIA", "healthy")) == 0
    assert positive_class(("cat", "dog")) == 1


def test_three_classes_give_per_class_accuracy_and_macro_auc_but_no_sensitivity():
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = compute_metrics(probs, torch.tensor([0, 1, 2, 2]), ("A", "B", "C"))
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_class_accuracy"] == {"A": 1.0, "B": 1.0, "C": 0.5}
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert "sensitivity" not in m
    # One vs rest: A's 0.8 and B's 0.7 beat every other image's score for their class; for C,
    # 0.7 beats both others (2 pairs) and 0.1 ties both (2 halves): 3 of 4.
    auc_a = roc_auc(probs[:, 0], torch.tensor([True, False, False, False]))
    auc_b = roc_auc(probs[:, 1], torch.tensor([False, True, False, False]))
    auc_c = roc_auc(probs[:, 2], torch.tensor([False, False, True, True]))
    assert (auc_a, auc_b, auc_c) == (1.0, 1.0, pytest.approx(3 / 4))
    assert m["roc_auc"] == pytest.approx((1 + 1 + 3 / 4) / 3)


def test_a_class_missing_from_the_test_set_has_no_accuracy_and_no_auc():
    m = compute_metrics(torch.tensor([[0.9, 0.1], [0.3, 0.7]]), torch.tensor([1, 1]), CLASSES)
    assert m["per_class_accuracy"] == {"NORMAL": None, "PNEUMONIA": 0.5}
    assert m["balanced_accuracy"] == 0.5
    assert m["specificity"] is None and m["roc_auc"] is None


# ----------------------------------------------------------------------------- ROC AUC laws

# Scores on a grid of sixteenths: exact in floating point, so 1 - s flips every order and keeps every tie.
scored = st.lists(st.tuples(st.integers(0, 16), st.booleans()), min_size=2, max_size=40).filter(
    lambda xs: any(b for _, b in xs) and not all(b for _, b in xs)
)


def brute_force_auc(scores: list[float], positives: list[bool]) -> float:
    pairs = right = 0.0
    for s_pos, is_pos in zip(scores, positives):
        for s_neg, is_neg_pos in zip(scores, positives):
            if is_pos and not is_neg_pos:
                pairs += 1
                right += 1.0 if s_pos > s_neg else 0.5 if s_pos == s_neg else 0.0
    return right / pairs


@given(scored)
def test_roc_auc_is_the_fraction_of_positive_negative_pairs_ordered_correctly(xs):
    scores = [k / 16 for k, _ in xs]
    positives = [b for _, b in xs]
    assert roc_auc(torch.tensor(scores), torch.tensor(positives)) == pytest.approx(brute_force_auc(scores, positives))


@given(scored)
def test_roc_auc_of_reversed_scores_is_one_minus_roc_auc(xs):
    scores = torch.tensor([k / 16 for k, _ in xs])
    positives = torch.tensor([b for _, b in xs])
    assert roc_auc(1 - scores, positives) == pytest.approx(1 - roc_auc(scores, positives))


def test_roc_auc_needs_both_classes():
    assert roc_auc(torch.tensor([0.2, 0.9]), torch.tensor([True, True])) is None


@given(
    labels=st.lists(st.booleans(), min_size=4, max_size=60).filter(lambda xs: any(xs) and not all(xs)),
    right=st.lists(st.booleans(), min_size=60, max_size=60),
    copies=st.tuples(st.integers(1, 5), st.integers(1, 5)),
)
def test_accuracy_at_a_share_equals_the_accuracy_of_a_test_set_resampled_to_it(labels, right, copies):
    """Each positive image repeated a times and each negative b times is a test set whose share of positives
    is known exactly: its accuracy is what accuracy_at_share says, from sensitivity and specificity alone."""
    from xraykit.metrics import accuracy_at_share

    y = torch.tensor(labels)
    correct = torch.tensor(right[: len(labels)])
    a, b = copies
    weights = torch.where(y, a, b).double()
    resampled = float((weights * correct).sum() / weights.sum())
    share = float((weights * y).sum() / weights.sum())
    sensitivity = float(correct[y].double().mean())
    specificity = float(correct[~y].double().mean())
    assert accuracy_at_share(sensitivity, specificity, share) == pytest.approx(resampled, abs=1e-12)
