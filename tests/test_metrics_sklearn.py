"""xraykit's short metrics, kept for teaching, agree with scikit-learn's on any predictions hypothesis draws."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xraykit.metrics import compute_metrics, roc_auc

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@st.composite
def predictions(draw, classes: int | None = None):
    """``(probs, labels)``: rows of probabilities (ties and repeated scores included) and true labels."""
    k = classes or draw(st.integers(2, 4))
    n = draw(st.integers(1, 40))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    # Scores on a coarse grid, so that equal scores (the ties ROC AUC must count half) are common.
    raw = draw(st.lists(st.lists(st.integers(0, 8), min_size=k, max_size=k), min_size=n, max_size=n))
    scores = torch.tensor(raw, dtype=torch.float64) + 1e-3
    return scores / scores.sum(1, keepdim=True), torch.tensor(labels)


@given(predictions())
def test_the_confusion_matrix_equals_sklearns(drawn):
    probs, labels = drawn
    k = probs.shape[1]
    ours = compute_metrics(probs, labels, [f"c{i}" for i in range(k)])["confusion_matrix"]
    theirs = sklearn_metrics.confusion_matrix(labels.numpy(), probs.argmax(1).numpy(), labels=list(range(k)))
    assert ours == theirs.tolist()


@given(predictions())
def test_balanced_accuracy_equals_sklearns_over_the_classes_present(drawn):
    probs, labels = drawn
    k = probs.shape[1]
    ours = compute_metrics(probs, labels, [f"c{i}" for i in range(k)])["balanced_accuracy"]
    with warnings.catch_warnings():  # sklearn warns of a predicted class absent from the labels, then leaves it out
        warnings.simplefilter("ignore", UserWarning)
        theirs = sklearn_metrics.balanced_accuracy_score(labels.numpy(), probs.argmax(1).numpy())
    assert ours == pytest.approx(theirs, abs=1e-12)


@given(predictions(classes=2))
def test_roc_auc_equals_sklearns_whenever_both_classes_are_present(drawn):
    probs, labels = drawn
    positives = labels == 1
    ours = roc_auc(probs[:, 1], positives)
    if positives.all() or not positives.any():
        assert ours is None  # undefined with one class; sklearn raises
        return
    assert ours == pytest.approx(sklearn_metrics.roc_auc_score(positives.numpy(), probs[:, 1].numpy()), abs=1e-12)
