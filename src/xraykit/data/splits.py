"""Validation splits carved from training data, one patient never on both sides.

Kaggle's official ``val/`` holds 16 images: too few to draw a loss curve or pick a model.
A fraction of ``train/`` is held out instead, by patient: several X-rays of one child (and
byte-identical copies) would otherwise sit on both sides and flatter the validation score.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from ..interfaces import XrayData


def patient_split(data: XrayData, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)``: about ``val_fraction`` of each class held out, by patient.

    Patients are shuffled (by ``seed``) within their class and moved to validation until
    each class has its share, so the class balance of both sides matches the whole.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    patients = data.patients or [str(i) for i in range(len(data))]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(patients):
        groups[p].append(i)
    labels = data.labels.tolist()
    by_class: dict[int, list[str]] = defaultdict(list)
    for p, idx in groups.items():
        majority = max(set(labels[i] for i in idx), key=[labels[i] for i in idx].count)
        by_class[majority].append(p)

    g = torch.Generator().manual_seed(seed)
    val: list[int] = []
    for label in sorted(by_class):
        members = sorted(by_class[label])
        order = torch.randperm(len(members), generator=g).tolist()
        target = round(val_fraction * sum(len(groups[p]) for p in members))
        if len(members) > 1:
            target = max(target, 1)
        taken = 0
        for j in order[: len(members) - 1]:  # always leave a patient of each class for training
            if taken >= target:
                break
            val += groups[members[j]]
            taken += len(groups[members[j]])
    val_set = set(val)
    train = [i for i in range(len(data)) if i not in val_set]
    return train, sorted(val)
