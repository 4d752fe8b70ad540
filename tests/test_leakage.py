"""Copies of one image where they do not belong are found by their pixels and said in one line.

A test image that is a copy of a training image scores what the model memorised, not what it
learned; one image in both NORMAL/ and PNEUMONIA/ teaches the model two answers; copies under
other names on both sides of the carved validation flatter it; a validation split without a
class cannot say anything about that class. None of these stops a run (a teacher may build
them on purpose), but none passes in silence: each is said when it is found and recorded in
the run (``config.json`` or ``metrics.json``).
"""

from __future__ import annotations

import shutil

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app
from xraykit.data.splits import patient_split
from xraykit.interfaces import XrayData

from helpers import TINY, write_folder

runner = CliRunner()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(8, 40), copies=st.integers(1, 6), seed=st.integers(0, 5))
def test_copies_under_other_names_never_straddle_the_carved_validation(n, copies, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 255, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 2
    sources = torch.randint(0, n, (copies,), generator=g).tolist()
    images = torch.cat([images, images[sources]])  # the same pixels, another patient's name
    labels = torch.cat([labels, labels[sources]])
    patients = [f"p{i}" for i in range(n + copies)]
    data = XrayData(images, labels, ("NORMAL", "PNEUMONIA"), patients=patients)
    train, val = patient_split(data, 0.25, seed)
    seen_train = {bytes(images[i].numpy()) for i in train}
    assert not any(bytes(images[i].numpy()) in seen_train for i in val)


def test_an_image_in_both_class_folders_is_said_and_recorded(tmp_path):
    data = write_folder(tmp_path / "data")
    shutil.copy(next((data / "train" / "NORMAL").glob("*.png")), data / "train" / "PNEUMONIA" / "copy.png")
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), *TINY[:-1]])
    assert result.exit_code == 0, result.output
    assert "in both NORMAL and PNEUMONIA" in " ".join(result.output.split())
    assert any("in both NORMAL and PNEUMONIA" in w for w in xraykit.Run(tmp_path / "r").record.data_warnings)


def test_a_validation_split_without_a_class_says_so(tmp_path):
    data = write_folder(tmp_path / "data")
    for extra in sorted((data / "train" / "NORMAL").glob("*.png"))[1:]:
        extra.unlink()  # one NORMAL patient: it must stay in training
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), *TINY[:-1]])
    assert result.exit_code == 0, result.output
    assert "validation holds no NORMAL image" in " ".join(result.output.split())


def test_test_images_that_are_copies_of_training_images_are_counted_and_said(tmp_path):
    data = write_folder(tmp_path / "data")
    trained = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), *TINY])
    assert trained.exit_code == 0, trained.output
    test = tmp_path / "leaky" / "test"
    shutil.copytree(data / "train", test)  # the run's own training images as its test set
    for cls in ("NORMAL", "PNEUMONIA"):
        pixels = np.random.default_rng(7).integers(0, 255, (32, 32)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(test / cls / "new.png")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "r"), str(test.parent)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    metrics = xraykit.Run(tmp_path / "r")
    import json

    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["copies_of_training_images"] == 12
    assert "12 of the 14 test images are copies of the run's training or validation images" in " ".join(
        result.output.split()
    ), metrics


def test_files_the_loader_does_not_read_are_counted_by_kind(tmp_path):
    """DICOM files beside the PNGs and a nested subfolder were left out with no word (16 of 24 files used)."""
    data = write_folder(tmp_path / "data", splits=("train", "test"))
    for i in range(2):
        (data / "train" / "NORMAL" / f"scan{i}.dcm").write_bytes(b"\0" * 128 + b"DICM")
    write_folder(data / "train" / "PNEUMONIA" / "older")  # a subfolder: not read
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), *TINY[:-1]])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "2 .dcm files, 1 subfolder" in said
    assert any("2 .dcm files" in w for w in xraykit.Run(tmp_path / "r").record.data_warnings)
    (data / "test" / "PNEUMONIA" / "report.pdf").write_bytes(b"%PDF")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "r"), str(data / "test")], env={"COLUMNS": "200"})
    assert "1 .pdf file" in " ".join(result.output.split())
