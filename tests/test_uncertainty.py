"""Every reported number carries a 95% interval: the laws those intervals must keep."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xraykit.tables import format_interval
from xraykit.uncertainty import (
    binomial_interval,
    bootstrap_interval,
    mcnemar_exact,
    paired_difference,
)


@given(n=st.integers(1, 2000), data=st.data())
def test_a_binomial_interval_contains_its_point_estimate(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = binomial_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@given(k=st.integers(1, 50), n=st.integers(51, 200), factor=st.integers(2, 8))
def test_a_binomial_interval_shrinks_as_the_test_set_grows(k, n, factor):
    lo, hi = binomial_interval(k, n)
    lo2, hi2 = binomial_interval(k * factor, n * factor)
    assert hi2 - lo2 < hi - lo


@given(n=st.integers(1, 300), data=st.data())
def test_the_exact_interval_matches_scipy(n, data):
    stats = pytest.importorskip("scipy.stats")
    k = data.draw(st.integers(0, n))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    lo, hi = binomial_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-6) and hi == pytest.approx(ci.high, abs=1e-6)


def test_the_exact_interval_covers_the_true_accuracy_at_least_as_often_as_stated():
    g = torch.Generator().manual_seed(0)
    true_p, n, trials = 0.83, 150, 200
    hits = 0
    for _ in range(trials):
        k = int((torch.rand(n, generator=g) < true_p).sum())
        lo, hi = binomial_interval(k, n)
        hits += lo <= true_p <= hi
    assert hits / trials >= 0.93  # Clopper-Pearson is conservative: at least 95% up to simulation noise


def test_the_bootstrap_interval_covers_a_balanced_accuracy_at_about_the_stated_rate():
    g = torch.Generator().manual_seed(1)
    sens, spec, trials = 0.9, 0.7, 100
    hits = 0
    for t in range(trials):
        labels = (torch.rand(300, generator=g) < 0.6).long()
        correct = torch.where(labels == 1, torch.rand(300, generator=g) < sens, torch.rand(300, generator=g) < spec)

        def balanced(idx, labels=labels, correct=correct):
            y, c = labels[idx], correct[idx]
            if (y == 1).all() or (y == 0).all():
                return None
            return float((c[y == 1].float().mean() + c[y == 0].float().mean()) / 2)

        lo, hi = bootstrap_interval(balanced, 300, resamples=200, seed=t)
        hits += lo <= (sens + spec) / 2 <= hi
    assert 0.88 <= hits / trials <= 0.99


@given(st.lists(st.floats(0, 1), min_size=2, max_size=60), st.integers(0, 10))
@settings(max_examples=30, deadline=None)
def test_a_bootstrap_interval_contains_the_mean_of_its_data(values, seed):
    x = torch.tensor(values, dtype=torch.float64)
    lo, hi = bootstrap_interval(lambda i: float(x[i].mean()), len(x), resamples=200, seed=seed)
    assert lo - 1e-9 <= float(x.mean()) <= hi + 1e-9


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_mcnemar_is_symmetric_and_a_probability(pairs):
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    p = mcnemar_exact(a, b)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(mcnemar_exact(b, a))


def test_mcnemar_matches_the_binomial_test_on_discordant_images():
    stats = pytest.importorskip("scipy.stats")
    a = torch.tensor([True] * 40 + [False] * 5 + [True] * 50)
    b = torch.tensor([False] * 40 + [True] * 5 + [True] * 50)
    assert mcnemar_exact(a, b) == pytest.approx(stats.binomtest(5, 45, 0.5).pvalue)


def test_two_identical_models_do_not_differ():
    correct = torch.tensor([True, False, True, True])
    result = paired_difference(correct, correct)
    assert result["difference"] == 0.0 and result["mcnemar_p"] == 1.0 and result["interval"] == [0.0, 0.0]


def test_intervals_read_as_the_terminal_shows_them():
    assert format_interval(0.912, (0.889, 0.933)) == "91.2% (88.9-93.3)"
    assert format_interval(0.95, (0.93, 0.968), percent=False) == "0.950 (0.930-0.968)"
    assert format_interval(None) == "n/a" and format_interval(math.nan) == "n/a"


@given(st.integers(1, 60), st.data())
def test_the_binomial_tail_is_the_sum_of_the_binomial_probabilities_from_k_up(n, data):
    import math

    from xraykit.uncertainty import binomial_tail

    k = data.draw(st.integers(0, n + 1))
    p = data.draw(st.floats(0.01, 0.99))
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1))
    assert binomial_tail(k, n, p) == pytest.approx(direct, rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(half_width=st.sampled_from([0.02, 0.03, 0.05, 0.1]), accuracy=st.floats(0.5, 0.98))
def test_labels_needed_gives_an_exact_interval_that_narrow_and_no_more(half_width, accuracy):
    """N labelled images give a 95% exact interval of at most +-half_width around the accuracy; 10% fewer
    images would not (the answer is the smallest, up to the interval's steps)."""
    from xraykit.uncertainty import labels_needed

    n = labels_needed(half_width, accuracy)
    lo, hi = binomial_interval(round(accuracy * n), n)
    assert (hi - lo) / 2 <= half_width
    fewer = int(n * 0.9)
    lo, hi = binomial_interval(round(accuracy * fewer), fewer)
    assert (hi - lo) / 2 > half_width


def test_more_labels_are_needed_at_worst_than_near_certainty():
    from xraykit.uncertainty import labels_needed

    assert labels_needed(0.05, 0.5) > labels_needed(0.05, 0.9) > labels_needed(0.05, 0.97)
    assert 380 <= labels_needed(0.05, 0.5) <= 420  # the textbook 385, a little more for an exact interval
