"""Test metrics from predicted probabilities and true labels, under plain keys.

Accuracy alone flatters a model on an imbalanced test set (62.5% of the Kaggle test split
is PNEUMONIA: a model that always says PNEUMONIA scores 62.5%), so the majority baseline,
balanced accuracy, sensitivity and specificity are always reported beside it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .errors import XrayError


def positive_class(classes: Sequence[str]) -> int:
    """The class that counts as "positive" for sensitivity, chosen by name, whatever the case of its letters:
    PNEUMONIA if present; else, beside one NORMAL, the other class; else the last.

    The position of a class never decides alone where a name can: with folders ``normal`` and
    ``Pneumonia`` (sorted by code point, ``Pneumonia`` comes first) the positive class is still
    ``Pneumonia``. Two classes that both read as PNEUMONIA are an error.
    """
    folded = [c.casefold() for c in classes]
    found = [i for i, c in enumerate(folded) if c == "pneumonia"]
    if len(found) > 1:
        raise XrayError(
            f"classes {', '.join(classes)}: more than one is named PNEUMONIA (ignoring case); "
            "cannot tell which is the positive class"
        )
    if found:
        return found[0]
    normal = [i for i, c in enumerate(folded) if c == "normal"]
    if len(classes) == 2 and len(normal) == 1:
        return 1 - normal[0]
    return len(classes) - 1


def roc_auc(scores: torch.Tensor, positives: torch.Tensor) -> float | None:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[positives], scores[~positives]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def accuracy_at_share(sensitivity: float, specificity: float, share: float) -> float:
    """The accuracy the same model has on images of which ``share`` are positive.

    Sensitivity and specificity do not depend on the mix of classes; accuracy does, through the
    operating point: ``share * sensitivity + (1 - share) * specificity``. A recipe that gains accuracy
    on one mix by moving its threshold loses it on another, which ROC AUC and balanced accuracy show
    and accuracy hides.

    >>> round(accuracy_at_share(0.98, 0.70, 0.625), 4)  # a recipe calling nearly everything PNEUMONIA
    0.875
    >>> round(accuracy_at_share(0.98, 0.70, 0.40), 4)  # the same model where 40% are PNEUMONIA
    0.812
    """
    return share * sensitivity + (1 - share) * specificity


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def predictions(probs: torch.Tensor, classes: Sequence[str], threshold: float | None = None) -> torch.Tensor:
    """The predicted class of each image: the most probable one, or, for two classes and a
    ``threshold``, the positive class when its probability is at least ``threshold``."""
    if threshold is None or len(classes) != 2:
        return probs.argmax(dim=1)
    p = positive_class(classes)
    return torch.where(probs[:, p] >= threshold, p, 1 - p)


def compute_metrics(
    probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], threshold: float | None = None
) -> dict:
    """All metrics of one evaluation. ``probs`` is ``(N, K)``, rows summing to one.

    ``threshold`` (two classes only): call the positive class when its probability is at least
    this; ``None`` takes the most probable class (0.5, an exact tie going to the first class).
    """
    k = len(classes)
    preds = predictions(probs, classes, threshold)
    cm = torch.zeros(k, k, dtype=torch.long)  # rows: true class, columns: predicted
    cm.index_put_((labels, preds), torch.ones_like(labels), accumulate=True)
    support = cm.sum(1)
    recall = [_ratio(cm[c, c].item(), support[c].item()) for c in range(k)]
    counts = torch.bincount(labels, minlength=k)
    majority = int(counts.argmax())
    present = [r for r in recall if r is not None]
    out: dict[str, Any] = {
        "n": int(len(labels)),
        "accuracy": float((preds == labels).float().mean()) if len(labels) else None,
        "balanced_accuracy": float(sum(present) / len(present)) if present else None,
        "per_class_accuracy": dict(zip(classes, recall)),
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
        "majority_baseline": {"class": classes[majority], "accuracy": _ratio(counts[majority].item(), len(labels))},
    }
    if k == 2:
        p = positive_class(classes)
        n = 1 - p
        tp, fn, fp, tn = cm[p, p].item(), cm[p, n].item(), cm[n, p].item(), cm[n, n].item()
        precision, sensitivity = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        out.update(
            {
                "positive_class": classes[p],
                # argmax of two probabilities: positive above 0.5 (an exact tie goes to the first class)
                "threshold": 0.5 if threshold is None else threshold,
                "sensitivity": sensitivity,
                "specificity": _ratio(tn, tn + fp),
                "precision": precision,
                "f1": _ratio(2 * precision * sensitivity, precision + sensitivity)
                if precision and sensitivity
                else 0.0,
                "roc_auc": roc_auc(probs[:, p], labels == p),
            }
        )
    else:
        aucs = [a for a in (roc_auc(probs[:, c], labels == c) for c in range(k)) if a is not None]
        out["roc_auc"] = float(sum(aucs) / len(aucs)) if aucs else None
    return out
