"""The validation split carved from train: by patient, stratified, reproducible; and when it is used."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xraykit.data.loading import MIN_VAL_IMAGES, choose_validation
from xraykit.data.splits import patient_split
from xraykit.errors import XrayError
from xraykit.interfaces import XrayData


def make_data(labels: list[int], patients: list[str], num_classes: int = 2) -> XrayData:
    """Each image different from every other (copies are joined into one patient: tests/test_leakage.py)."""
    n = len(labels)
    distinct = torch.arange(n * 4, dtype=torch.int64).reshape(n, 1, 2, 2) % 251 + torch.arange(n).reshape(n, 1, 1, 1)
    return XrayData(
        images=(distinct % 256).to(torch.uint8),
        labels=torch.tensor(labels, dtype=torch.long),
        classes=tuple(f"C{k}" for k in range(num_classes)),
        patients=patients,
    )


@st.composite
def patient_groups(draw, max_patients: int = 30, max_images: int = 4):
    """Data in which each patient has one label and one to ``max_images`` images, shuffled."""
    num_classes = draw(st.integers(2, 3))
    sizes = draw(st.lists(st.integers(1, max_images), min_size=num_classes, max_size=max_patients))
    # The first patients cover every class, so each class is present.
    patient_labels = list(range(num_classes)) + draw(
        st.lists(st.integers(0, num_classes - 1), min_size=len(sizes) - num_classes, max_size=len(sizes) - num_classes)
    )
    labels, patients = [], []
    for p, (size, label) in enumerate(zip(sizes, patient_labels)):
        labels += [label] * size
        patients += [f"patient{p}"] * size
    order = draw(st.permutations(range(len(labels))))
    return make_data([labels[i] for i in order], [patients[i] for i in order], num_classes)


fractions = st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.5, 0.9])
seeds = st.integers(0, 2**31 - 1)


@given(data=patient_groups(), fraction=fractions, seed=seeds)
def test_no_patient_is_on_both_sides(data, fraction, seed):
    train, val = patient_split(data, fraction, seed)
    assert not {data.patients[i] for i in train} & {data.patients[i] for i in val}


@given(data=patient_groups(), fraction=fractions, seed=seeds)
def test_train_and_val_are_disjoint_and_cover_everything(data, fraction, seed):
    train, val = patient_split(data, fraction, seed)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(len(data)))


@given(data=patient_groups(), fraction=fractions, seed=seeds)
def test_every_class_keeps_a_training_patient(data, fraction, seed):
    train, _ = patient_split(data, fraction, seed)
    assert {data.labels[i].item() for i in train} == set(range(len(data.classes)))


@given(data=patient_groups(max_images=1), fraction=fractions, seed=seeds)
def test_with_one_image_per_patient_each_class_gives_its_share_within_one_image(data, fraction, seed):
    _, val = patient_split(data, fraction, seed)
    counts = Counter(data.labels.tolist())
    val_counts = Counter(data.labels[i].item() for i in val)
    for label, count in counts.items():
        assert abs(val_counts[label] - fraction * count) <= 1, (label, count, val_counts[label])


@given(data=patient_groups(), fraction=fractions, seed=seeds)
def test_the_split_is_a_function_of_the_seed(data, fraction, seed):
    assert patient_split(data, fraction, seed) == patient_split(data, fraction, seed)


def test_different_seeds_give_different_splits():
    data = make_data([0, 1] * 50, [f"p{i}" for i in range(100)])
    assert patient_split(data, 0.2, seed=0) != patient_split(data, 0.2, seed=1)


@given(data=patient_groups(max_images=12), fraction=fractions, seed=seeds)
def test_every_class_with_two_patients_or_more_has_a_validation_image(data, fraction, seed):
    _, val = patient_split(data, fraction, seed)
    patients_per_class = Counter(data.labels[data.patients.index(p)].item() for p in set(data.patients))
    val_classes = {data.labels[i].item() for i in val}
    for label, n in patients_per_class.items():
        if n >= 2:
            assert label in val_classes, (label, n)


def test_a_patient_with_images_of_two_classes_never_leaves_a_class_without_training_images():
    # Class 1 only appears inside patients whose majority is class 0.
    labels = [0, 0, 1] * 4 + [0] * 4
    patients = [f"p{i // 3}" for i in range(12)] + [f"q{i}" for i in range(4)]
    data = make_data(labels, patients)
    for seed in range(20):
        train, _ = patient_split(data, 0.9, seed)
        assert {data.labels[i].item() for i in train} == {0, 1}


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError):
        patient_split(make_data([0, 1], ["a", "b"]), fraction)


# ----------------------------------------------------------------------------- choose_validation


def splits_with_val(n_val: int) -> dict[str, XrayData]:
    splits = {"train": make_data([i % 2 for i in range(60)], [f"train{i}" for i in range(60)])}
    if n_val:
        splits["val"] = make_data([i % 2 for i in range(n_val)], [f"val{i}" for i in range(n_val)])
    return splits


def test_the_datas_own_val_split_is_used_when_it_has_at_least_100_images():
    splits = splits_with_val(MIN_VAL_IMAGES)
    train, val, how = choose_validation(splits, None, seed=0)
    assert train is splits["train"] and val is splits["val"]
    assert "own val split" in how and str(MIN_VAL_IMAGES) in how


@pytest.mark.parametrize("n_val", [0, 16, MIN_VAL_IMAGES - 1])
def test_a_small_or_missing_val_split_is_replaced_by_ten_percent_of_train_carved_by_patient(n_val):
    splits = splits_with_val(n_val)
    train, val, how = choose_validation(splits, None, seed=0)
    assert len(train) + len(val) == 60
    assert abs(len(val) - 6) <= 1
    assert not set(train.patients) & set(val.patients)
    assert "10%" in how and "carved from train by patient" in how
    assert ("no val/" in how) if n_val == 0 else (f"val/ has {n_val} images" in how)


def test_an_explicit_val_from_train_wins_over_a_large_val_split():
    train, val, how = choose_validation(splits_with_val(MIN_VAL_IMAGES), 0.25, seed=0)
    assert len(train) + len(val) == 60 and abs(len(val) - 15) <= 1
    assert "25%" in how and "carved from train" in how


def test_the_carved_split_depends_on_the_seed_only():
    splits = splits_with_val(16)
    a = choose_validation(splits, None, seed=3)[1].patients
    assert choose_validation(splits, None, seed=3)[1].patients == a


def test_too_few_patients_to_carve_falls_back_to_a_small_val_split_and_says_so():
    splits = {"train": make_data([0, 1], ["a", "b"]), "val": make_data([0, 1, 1], ["c", "d", "e"])}
    train, val, how = choose_validation(splits, None, seed=0)
    assert val is splits["val"] and len(train) == 2
    assert "3 images" in how and "too few" in how


def test_too_few_patients_to_carve_and_no_val_split_is_an_error():
    with pytest.raises(XrayError, match="too few"):
        choose_validation({"train": make_data([0, 1], ["a", "b"])}, None, seed=0)


def test_no_train_split_is_an_error():
    with pytest.raises(XrayError, match="no train split"):
        choose_validation({"test": make_data([0, 1], ["a", "b"])}, None, seed=0)
