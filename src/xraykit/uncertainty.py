"""How sure a test number is: 95% intervals, and whether two models really differ.

A test split of a few hundred X-rays measures accuracy to within several points. An
accuracy printed without its interval invites reading noise as progress, so every number
``evaluate`` and ``compare`` report comes with one:

- a proportion of images (accuracy, sensitivity, specificity) gets the **exact binomial**
  (Clopper-Pearson) interval, which never covers less than the stated rate;
- a number that is not a proportion (balanced accuracy, ROC AUC) gets a **percentile
  bootstrap** over test images: the test set resampled with replacement, the number
  recomputed on each resample;
- two models on the same images are compared **paired**: the difference in accuracy with a
  bootstrap interval over images, and **McNemar's exact test** on the images where exactly
  one of them is right.

Plain Python and torch, short enough to read in class.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional, Sequence

import torch

from .metrics import positive_class, predictions

LEVEL = 0.95
RESAMPLES = 1000


@functools.lru_cache(maxsize=256)
def _log_choose(n: int) -> tuple[float, ...]:
    """``log C(n, i)`` for every ``i``, kept: an interval's bisection asks for the same ones 60 times."""
    top = math.lgamma(n + 1)
    return tuple(top - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(n + 1))


def _binom_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, summed in log space (exact for any n a test set has)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lp, lq, log_c = math.log(p), math.log1p(-p), _log_choose(n)
    terms = [log_c[i] + i * lp + (n - i) * lq for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def _solve(f: Callable[[float], float], target: float) -> float:
    """The ``p`` in [0, 1] where the decreasing function ``f(p)`` crosses ``target`` (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def binomial_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a proportion ``k / n``.

    The lower end is the ``p`` at which seeing ``k`` or more successes has probability
    ``(1 - level) / 2``, the upper end the ``p`` at which seeing ``k`` or fewer has.

    >>> lo, hi = binomial_interval(90, 100)
    >>> round(lo, 3), round(hi, 3)
    (0.824, 0.951)
    """
    if n <= 0:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    # P(X <= j) falls as p grows, so each end is where one such tail crosses alpha.
    lower = 0.0 if k == 0 else _solve(lambda p: _binom_cdf(k - 1, n, p), 1 - alpha)
    upper = 1.0 if k == n else _solve(lambda p: _binom_cdf(k, n, p), alpha)
    return (lower, upper)


def bootstrap_interval(
    statistic: Callable[[torch.Tensor], Optional[float]],
    n: int,
    level: float = LEVEL,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap: ``statistic(indices)`` on ``resamples`` draws of ``n`` test images.

    ``statistic`` takes a tensor of image indices (drawn with replacement) and returns the
    number, or ``None`` where it is undefined on that draw (an AUC on a draw with one class);
    such draws are left out. Seeded, so the same images give the same interval.
    """
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        value = statistic(torch.randint(0, n, (n,), generator=g))
        if value is not None and not math.isnan(value):
            values.append(value)
    if not values:
        return (math.nan, math.nan)
    v = torch.tensor(values, dtype=torch.float64)
    alpha = (1 - level) / 2
    return (float(torch.quantile(v, alpha)), float(torch.quantile(v, 1 - alpha)))


def mcnemar_exact(a_correct: torch.Tensor, b_correct: torch.Tensor) -> float:
    """Two-sided p-value of McNemar's exact test: do two models err on the same images at the same rate?

    Only images where exactly one model is right count; under "no difference" each of them
    is equally likely to favour either model, a Binomial(m, 1/2).
    """
    a, b = a_correct.bool(), b_correct.bool()
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    m = only_a + only_b
    if m == 0:
        return 1.0
    return min(1.0, 2 * _binom_cdf(min(only_a, only_b), m, 0.5))


def labels_needed(half_width: float, accuracy: float = 0.5, level: float = LEVEL) -> int:
    """How many labelled images make the exact interval of an accuracy near ``accuracy`` at most
    ``+-half_width`` wide: what it costs to measure a model at a new site instead of hoping.

    The normal approximation's ``z^2 p (1 - p) / w^2`` is where the search starts; the exact (Clopper-Pearson)
    interval that ``evaluate`` reports is a little wider, so the answer is a little larger. ``accuracy``
    0.5 is the worst case, whatever the model does there.

    >>> labels_needed(0.05)  # +-5 points, at worst
    402
    """
    p = min(max(accuracy, 1e-3), 1 - 1e-3)
    z = 1.959963984540054

    def wide(n: int) -> bool:
        lo, hi = binomial_interval(round(p * n), n, level)
        return (hi - lo) / 2 > half_width

    low = max(1, math.floor(z * z * p * (1 - p) / half_width**2) - 1)
    high = max(low + 1, 2 * low)
    while wide(high):
        low, high = high, 2 * high
    while high - low > 1:  # the interval narrows as n grows (up to the rounding of k): bisect
        middle = (low + high) // 2
        low, high = (middle, high) if wide(middle) else (low, middle)
    return high


def binomial_tail(k: int, n: int, p: float) -> float:
    """The chance of ``k`` or more successes in ``n`` tries of probability ``p`` (a one-sided exact test).

    >>> round(binomial_tail(9, 80, 0.05), 3)
    0.018
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k, n + 1)
    ]
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def paired_difference(
    a_correct: torch.Tensor, b_correct: torch.Tensor, level: float = LEVEL, resamples: int = 1000, seed: int = 0
) -> dict:
    """Accuracy of B minus accuracy of A on the same images, its bootstrap interval and McNemar's p."""
    a, b = a_correct.float(), b_correct.float()
    diff = float(b.mean() - a.mean()) if len(a) else math.nan
    lo, hi = bootstrap_interval(lambda i: float(b[i].mean() - a[i].mean()), len(a), level, resamples, seed)
    return {"difference": diff, "interval": [lo, hi], "mcnemar_p": mcnemar_exact(a_correct, b_correct)}


def intervals(
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    threshold: Optional[float] = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """95% intervals: exact binomial for accuracy, sensitivity, specificity and each class's accuracy;
    a seeded percentile bootstrap over test images for balanced accuracy and ROC AUC.
    ``None`` where a number is undefined (no image of a class)."""
    k = len(classes)
    preds = predictions(probs, classes, threshold)
    correct = preds == labels

    def exact(right: torch.Tensor) -> Optional[list[float]]:
        return list(binomial_interval(int(right.sum()), len(right))) if len(right) else None

    per_class = {c: exact(correct[labels == i]) for i, c in enumerate(classes)}
    out: dict[str, Any] = {
        "level": LEVEL,
        "accuracy": exact(correct),
        "per_class_accuracy": per_class,
    }
    if k == 2:
        p = positive_class(classes)
        out["sensitivity"], out["specificity"] = per_class[classes[p]], per_class[classes[1 - p]]
    onehot = torch.nn.functional.one_hot(labels, k).double()
    right = correct.double()

    def balanced(idx: torch.Tensor) -> Optional[float]:
        w = torch.bincount(idx, minlength=len(labels)).double()
        support = w @ onehot
        hits = (w * right) @ onehot
        present = support > 0
        return float((hits[present] / support[present]).mean()) if bool(present.any()) else None

    scores = [probs[:, positive_class(classes)]] if k == 2 else [probs[:, c] for c in range(k)]
    positives = [labels == positive_class(classes)] if k == 2 else [labels == c for c in range(k)]
    aucs = [_WeightedAuc(s, pos) for s, pos in zip(scores, positives)]

    def auc(idx: torch.Tensor) -> Optional[float]:
        w = torch.bincount(idx, minlength=len(labels)).double()
        values = [v for v in (a(w) for a in aucs) if v is not None]
        return sum(values) / len(values) if values else None

    out["balanced_accuracy"] = _finite(bootstrap_interval(balanced, len(labels), LEVEL, resamples, seed))
    out["roc_auc"] = _finite(bootstrap_interval(auc, len(labels), LEVEL, resamples, seed))
    out["method"] = (
        f"exact binomial (Clopper-Pearson) for proportions; percentile bootstrap over test images "
        f"({resamples} resamples, seed {seed}) for balanced accuracy and ROC AUC"
    )
    return out


def _finite(interval: tuple[float, float]) -> Optional[list[float]]:
    return None if any(math.isnan(v) for v in interval) else list(interval)


class _WeightedAuc:
    """ROC AUC of ``scores`` with each image counted ``w[i]`` times: a bootstrap resample without copying.

    The scores are sorted once; each call is then a few sums over the distinct scores (ties count half).
    """

    def __init__(self, scores: torch.Tensor, positives: torch.Tensor) -> None:
        values, self.group = torch.unique(scores.double(), return_inverse=True)
        self.groups = len(values)
        self.pos = positives.double()

    def __call__(self, w: torch.Tensor) -> Optional[float]:
        wp, wn = w * self.pos, w * (1 - self.pos)
        pos_at = torch.zeros(self.groups, dtype=torch.float64).index_add_(0, self.group, wp)
        neg_at = torch.zeros(self.groups, dtype=torch.float64).index_add_(0, self.group, wn)
        total_pos, total_neg = float(pos_at.sum()), float(neg_at.sum())
        if not total_pos or not total_neg:
            return None
        neg_below = torch.cumsum(neg_at, 0) - neg_at
        return float((pos_at * (neg_below + 0.5 * neg_at)).sum()) / (total_pos * total_neg)
