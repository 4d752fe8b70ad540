"""Validation splits carved from training data, one patient never on both sides.

Kaggle's official ``val/`` holds 16 images: too few to draw a loss curve or pick a model.
A fraction of ``train/`` is held out instead, by patient: several X-rays of one child (and
copies of one image under other names, found by their pixels) would otherwise sit on both sides
and flatter the validation score.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import torch

from ..interfaces import XrayData
from .copies import digests


def _with_copies_joined(patients: list[str], pixels: list[bytes]) -> list[str]:
    """Each image's patient, where patients that share an image (the same pixels) become one patient."""
    parent = {p: p for p in patients}

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    first: dict[bytes, str] = {}
    for p, digest in zip(patients, pixels):
        other = first.setdefault(digest, p)
        a, b = root(p), root(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(p) for p in patients]


def patient_split(data: XrayData, val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)``: about ``val_fraction`` of each class held out, by patient.

    Each patient counts for the class most of its images have. Within a class, patients are
    shuffled (by ``seed``) and moved to validation while that brings the class's validation
    count closer to its share, so both sides keep the class balance of the whole (with one
    image per patient, within one image of ``val_fraction`` of each class). A class with two
    patients or more always gets one in validation; a patient whose move would leave some
    class without a training image stays in training.

    >>> from xraykit.data.synthetic import synthesize
    >>> train, val = patient_split(synthesize(20, size=16), 0.1)
    >>> len(train), len(val)
    (18, 2)
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    patients = _with_copies_joined(data.patients or [str(i) for i in range(len(data))], digests(data.images))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(patients):
        groups[p].append(i)
    labels = data.labels.tolist()
    by_class: dict[int, list[str]] = defaultdict(list)
    for p, idx in groups.items():
        own = [labels[i] for i in idx]
        by_class[max(sorted(set(own)), key=own.count)].append(p)

    left_in_train = Counter(labels)  # images of each class still in training
    val: list[int] = []

    def move(patient: str) -> int:
        """Move ``patient`` to validation unless a class would lose its last training image."""
        idx = groups[patient]
        moved = Counter(labels[i] for i in idx)
        if any(left_in_train[c] <= n for c, n in moved.items()):
            return 0
        left_in_train.subtract(moved)
        val.extend(idx)
        return len(idx)

    g = torch.Generator().manual_seed(seed)
    for label in sorted(by_class):
        members = sorted(by_class[label])
        order = [members[j] for j in torch.randperm(len(members), generator=g).tolist()]
        target = round(val_fraction * sum(len(groups[p]) for p in members))
        if len(members) > 1:
            target = max(target, 1)
        taken = 0
        for patient in order:
            if taken >= target:
                break
            if abs(taken + len(groups[patient]) - target) < abs(taken - target):  # closer to the share
                taken += move(patient)
        if taken == 0 and target > 0:  # every patient has more images than the share: hold out the smallest
            for patient in sorted(order, key=lambda p: len(groups[p])):
                if move(patient):
                    break
    val_set = set(val)
    train = [i for i in range(len(data)) if i not in val_set]
    return train, sorted(val)
