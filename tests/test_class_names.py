"""Classes are told apart by name, not by the case of their folder names.

Class folders spelled ``normal`` and ``Pneumonia`` keep pneumonia the positive class, and a
split that spells them ``NORMAL`` and ``PNEUMONIA`` is labelled as train is.
:func:`~xraykit.metrics.positive_class` picks pneumonia whatever its case, else the class that
is not normal, else the second; more than one pneumonia class is refused, and so are two class
folders whose names differ only in case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from xraykit.data.folders import list_images
from xraykit.errors import XrayError
from xraykit.metrics import positive_class


def test_class_folders_differing_in_case_keep_pneumonia_positive(tmp_path):
    for split in ("train", "test"):
        for name, shade in (("normal", 40), ("Pneumonia", 200)):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (32, 32), shade + i).save(tmp_path / split / name / f"person{shade + i}_{split}.png")
    paths, labels, classes = list_images(tmp_path / "train")
    assert classes == ("normal", "Pneumonia")
    assert positive_class(classes) == 1
    # val/ spelled another way is the same two classes, labelled as train's
    (tmp_path / "val" / "NORMAL").mkdir(parents=True)
    (tmp_path / "val" / "PNEUMONIA").mkdir(parents=True)
    Image.new("L", (32, 32), 40).save(tmp_path / "val" / "NORMAL" / "a.png")
    Image.new("L", (32, 32), 200).save(tmp_path / "val" / "PNEUMONIA" / "b.png")
    paths, labels, _ = list_images(tmp_path / "val", classes)
    assert [Path(p).parent.name for p in paths] == ["NORMAL", "PNEUMONIA"] and labels == [0, 1]


def test_positive_class_is_chosen_by_name_whatever_the_case():
    assert positive_class(("Pneumonia", "normal")) == 0
    assert positive_class(("NORMAL", "effusion")) == 1
    assert positive_class(("effusion", "normal")) == 0
    assert positive_class(("cat", "dog")) == 1
    with pytest.raises(XrayError, match="more than one"):
        positive_class(("pneumonia", "PNEUMONIA"))


def test_two_class_folders_differing_only_in_case_are_refused(tmp_path):
    for name in ("normal", "NORMAL", "PNEUMONIA"):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.new("L", (32, 32), 1).save(tmp_path / "train" / name / "a.png")
    with pytest.raises(XrayError, match="differ only in case"):
        list_images(tmp_path / "train")
