"""End to end through the CLI: real X-rays round-trip through train, evaluate and predict; compare writes its page.

The real images live in ``shared/data/chest_xray`` beside the repository (train: 224 px
3-channel JPEGs; val: 16 full-size 1-channel JPEGs). A few of them are copied into a
Kaggle-layout folder; the tests skip where the data is absent. Everything runs at 32 px
for one epoch: these tests check the plumbing, not the accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit import cli
from xraykit.data.folders import load_folder, patient_id
from xraykit.data.images import load_image

from helpers import METRIC_KEYS

CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "data" / "chest_xray",
    Path("/work/shared/data/chest_xray"),
]
REAL = next((p for p in CANDIDATES if (p / "train" / "NORMAL").is_dir() and (p / "val" / "NORMAL").is_dir()), None)
needs_real = pytest.mark.skipif(REAL is None, reason="real chest X-rays not found in shared/data/chest_xray")
CLASSES = ("NORMAL", "PNEUMONIA")
PER_CLASS = 6
runner = CliRunner()


@pytest.fixture(scope="module")
def kaggle(module_tmp) -> Path:
    """``DATA/train`` with the first 6 images of each class; ``DATA/val`` and ``DATA/test`` both the
    16 full-size val images."""
    if REAL is None:
        pytest.skip("real chest X-rays not found")
    root = module_tmp / "real" / "DATA"
    for cls in CLASSES:
        (root / "train" / cls).mkdir(parents=True)
        for f in sorted((REAL / "train" / cls).glob("*.jpeg"))[:PER_CLASS]:
            shutil.copy(f, root / "train" / cls / f.name)
    shutil.copytree(REAL / "val", root / "val")
    shutil.copytree(REAL / "val", root / "test")
    return root


@pytest.fixture(scope="module")
def run_dir(kaggle, module_tmp) -> Path:
    """A one-epoch scratch run on the copied folder, trained through the CLI."""
    out = module_tmp / "real_runs" / "scratch"
    result = runner.invoke(
        cli.app,
        [
            "train",
            str(kaggle),
            "--task",
            "scratch",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


# ----------------------------------------------------------------------------- decoding


@needs_real
def test_a_224px_rgb_training_image_decodes_to_its_one_gray_channel(kaggle):
    path = sorted((kaggle / "train" / "NORMAL").iterdir())[0]
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (224, 224)
        rgb = np.asarray(img.convert("RGB")).astype(int)
    x = load_image(path, 224)
    assert x.shape == (1, 224, 224) and x.dtype == torch.uint8
    assert np.abs(x[0].numpy().astype(int) - rgb[..., 0]).max() <= 2  # the three channels are equal


@needs_real
def test_a_full_size_one_channel_val_image_is_resized_whole(kaggle):
    path = sorted((kaggle / "val" / "PNEUMONIA").iterdir())[0]
    with Image.open(path) as img:
        assert img.mode == "L" and min(img.size) > 500
        reference = np.asarray(img.resize((64, 64), Image.BILINEAR)).astype(float)
    x = load_image(path, 64)
    assert x.shape == (1, 64, 64) and x.dtype == torch.uint8
    # Same picture, full frame (not cropped, not transposed): pixel for pixel close to PIL's own resize.
    ours = x[0].numpy().astype(float)
    assert np.abs(ours - reference).mean() < 4
    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.98


@needs_real
def test_the_copied_folder_loads_with_classes_labels_and_patients(kaggle):
    splits = load_folder(kaggle, image_size=32)
    assert set(splits) == {"train", "val", "test"}
    assert splits["train"].class_counts() == {"NORMAL": PER_CLASS, "PNEUMONIA": PER_CLASS}
    assert splits["val"].class_counts() == {"NORMAL": 8, "PNEUMONIA": 8}
    assert splits["val"].images.shape == (16, 1, 32, 32)
    assert all(p == patient_id(Path(f).name) for p, f in zip(splits["val"].patients, splits["val"].paths))
    assert splits["val"].patients.count("person1946") == 2  # two X-rays of one child


# ----------------------------------------------------------------------------- train, evaluate, predict


@needs_real
def test_train_carves_validation_by_patient_because_val_has_16_images(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert "carved from train by patient" in config["record"]["validation"]
    assert "val/ has 16 images" in config["record"]["validation"]
    assert config["classes"] == list(CLASSES)
    for name in ("history.json", "loss_curves.png", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name


@needs_real
def test_evaluate_on_the_test_folder_writes_metrics_under_plain_keys_and_the_mistakes(run_dir, kaggle, tmp_path):
    result = runner.invoke(
        cli.app, ["evaluate", str(run_dir), str(kaggle / "test"), "--device", "cpu", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "majority baseline" in result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics), set(METRIC_KEYS) - set(metrics)
    assert set(metrics["per_class_accuracy"]) == set(CLASSES)
    assert metrics["n"] == 16 and sum(map(sum, metrics["confusion_matrix"])) == 16
    assert metrics["majority_baseline"]["accuracy"] == 0.5
    assert metrics["threshold"] == 0.5
    assert (tmp_path / "misclassified.png").is_file()


@needs_real
def test_predict_prints_a_label_and_probability_for_each_full_size_image(run_dir, kaggle, monkeypatch):
    monkeypatch.chdir(kaggle)
    images = ["val/NORMAL/NORMAL2-IM-1427-0001.jpeg", "val/PNEUMONIA/person1946_bacteria_4874.jpeg"]
    result = runner.invoke(cli.app, ["predict", str(run_dir), *images], env={"COLUMNS": "200"})  # whole paths
    assert result.exit_code == 0, result.output
    for image in images:
        row = next(line for line in result.output.splitlines() if image in line)
        cells = [cell.strip() for cell in row.split("│") if cell.strip()]  # image, label, probability, hint
        assert cells[1] in CLASSES, row
        assert 0.5 <= float(cells[2]) <= 1.0


@needs_real
def test_predict_json_gives_label_probability_and_every_class_probability(run_dir, kaggle):
    images = sorted(str(p) for p in (kaggle / "val" / "NORMAL").iterdir())[:3]
    result = runner.invoke(cli.app, ["predict", str(run_dir), *images, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["path"] for r in rows] == images
    for r in rows:
        assert set(r["probabilities"]) == set(CLASSES)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["probability"] == max(r["probabilities"].values())
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


# ----------------------------------------------------------------------------- compare


def test_compare_writes_one_page_with_both_tasks_metrics_parameters_and_epoch_times(tmp_path, fake_imagenet_file):
    out = tmp_path / "cmp"
    result = runner.invoke(
        cli.app,
        [
            "compare",
            "synthetic:n=24",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--weights",
            str(fake_imagenet_file),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    header = next(line for line in report.splitlines() if line.startswith("| |"))
    assert "Task 1.1: scratch" in header and "Task 1.2: finetune" in header
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in report.splitlines()
        if line.startswith("| ") and not line.startswith("| |")
    }
    for name in (
        "accuracy",
        "balanced accuracy",
        "sensitivity",
        "specificity",
        "ROC AUC",
        "majority baseline",
        "seconds per epoch",
    ):
        assert len(rows[name]) == 2, name
    scratch_params, finetune_params = rows["trainable / total parameters"]
    total = xraykit.count_parameters(xraykit.create_backbone("resnet18"))[1]
    assert scratch_params == f"{total:,} / {total:,}"
    assert finetune_params == f"{512 * 2 + 2:,} / {total:,}"
    assert str(fake_imagenet_file) in rows["starting weights"][1]
    assert "![" in report and (out / "loss_curves.png").is_file()
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary["tasks"]) == {"Task 1.1: scratch", "Task 1.2: finetune"}
    assert all(m["seconds_per_epoch"] > 0 for m in summary["tasks"].values())
