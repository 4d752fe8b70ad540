"""Numbers that hold on X-rays from elsewhere: intervals on every number, thresholds and temperature chosen
on validation images only, label-free adaptation beside the plain numbers, the shift report and hints."""

from __future__ import annotations

import json
import re

import matplotlib.cbook
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

import xraykit
from xraykit.calibration import choose_threshold, fit_temperature
from xraykit.cli import app
from xraykit.cli_views import evaluate_view, results_table
from xraykit.data.images import load_image
from xraykit.data.loading import choose_validation, load_data
from xraykit.inference import predict_logits, to_input
from xraykit.metrics import roc_auc
from xraykit.report import write_report
from xraykit.uncertainty import _WeightedAuc, binomial_interval

from helpers import assert_one_line_error

WIDE = {"COLUMNS": "250"}
DATA = "synthetic:n=96,seed=0"
ELSEWHERE = "synthetic:n=96,seed=5"


@pytest.fixture(scope="module")
def named_run(module_tmp):
    """A run trained on data named by a string: its validation images can be loaded again."""
    out = module_tmp / "honest" / "run"
    return xraykit.train(DATA, "scratch", epochs=1, batch_size=16, image_size=32, out=out, quiet=True)


def test_every_proportion_has_its_exact_binomial_interval(tiny_run, tiny_splits, tmp_path):
    m = xraykit.evaluate(tiny_run, tiny_splits, out=tmp_path, cam=False)
    iv = m["intervals"]
    n, cm = m["n"], m["confusion_matrix"]
    assert iv["accuracy"] == pytest.approx(binomial_interval(cm[0][0] + cm[1][1], n))
    assert iv["sensitivity"] == pytest.approx(binomial_interval(cm[1][1], sum(cm[1])))
    assert iv["specificity"] == pytest.approx(binomial_interval(cm[0][0], sum(cm[0])))
    assert iv["per_class_accuracy"]["PNEUMONIA"] == iv["sensitivity"]
    for key in ("balanced_accuracy", "roc_auc"):  # bootstrap: around the number, and seeded
        lo, hi = iv[key]
        assert lo <= m[key] + 1e-9 and m[key] - 1e-9 <= hi
    again = xraykit.evaluate(tiny_run, tiny_splits, out=tmp_path, cam=False)
    assert again["intervals"] == iv
    assert json.loads((tmp_path / "metrics.json").read_text())["intervals"] == iv


@given(st.lists(st.integers(0, 4), min_size=2, max_size=30), st.integers(0, 2**31 - 1))
def test_the_bootstrap_auc_of_a_resample_is_the_auc_of_the_resampled_images(scores, seed):
    s = torch.tensor(scores, dtype=torch.float32) / 4  # few distinct values: many ties
    pos = torch.arange(len(s)) % 3 == 0
    idx = torch.randint(0, len(s), (len(s),), generator=torch.Generator().manual_seed(seed))
    weights = torch.bincount(idx, minlength=len(s)).double()
    expected = roc_auc(s[idx], pos[idx])
    got = _WeightedAuc(s, pos)(weights)
    assert (got is None) == (expected is None)
    if expected is not None:
        assert got == pytest.approx(expected)


def test_a_threshold_rule_needs_the_validation_images_of_a_run_trained_on_named_data(tiny_run, tiny_splits, tmp_path):
    with pytest.raises(xraykit.XrayError, match="validation images"):
        xraykit.evaluate(tiny_run, tiny_splits, out=tmp_path, threshold="youden", cam=False)
    m = xraykit.evaluate(tiny_run, tiny_splits, out=tmp_path, cam=False)  # calibration skipped, said in one line
    assert "temperature" not in m["calibration"] and "loaded in Python" in m["calibration"]["note"]
    assert not (tmp_path / "reliability.png").exists()
    assert m["calibration"]["note"] in evaluate_view(m)


def _validation_logits(run):
    splits = load_data(DATA, run.config.image_size)
    _, val, _ = choose_validation(splits, run.config.val_from_train, run.config.seed)
    model = run.load_model()
    logits = predict_logits(model, val.images, lambda x: to_input(x, run.backbone), 64, "cpu")
    return logits, val.labels


def test_threshold_and_temperature_come_from_the_validation_images_never_from_the_test_images(named_run, tmp_path):
    # float32, as the validation logits computed below
    first = xraykit.evaluate(named_run, ELSEWHERE, out=tmp_path / "a", threshold="youden", cam=False, precision="32")
    other = xraykit.evaluate(
        named_run, "synthetic:n=96,seed=6", out=tmp_path / "b", threshold="youden", cam=False, precision="32"
    )
    assert first["threshold"] == other["threshold"]  # other test images, the same choice
    assert first["calibration"]["temperature"] == other["calibration"]["temperature"]
    logits, labels = _validation_logits(named_run)
    assert first["threshold"] == pytest.approx(choose_threshold(logits.softmax(1)[:, 1], labels, "youden"))
    assert first["calibration"]["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-4)
    assert first["threshold_rule"] == "youden" and "validation" in first["threshold_chosen_on"]
    assert (tmp_path / "a" / "reliability.png").stat().st_size > 0
    assert len(first["calibration"]["bins"]["after"]) == 10


def test_the_threshold_decides_the_test_predictions(named_run, tmp_path):
    m = xraykit.evaluate(named_run, ELSEWHERE, out=tmp_path, threshold="sensitivity=1", cam=False, precision="32")
    test = load_data(ELSEWHERE, 32)["test"]
    model = named_run.load_model()
    probs = predict_logits(model, test.images, lambda x: to_input(x, named_run.backbone), 64, "cpu").softmax(1)
    said = probs[:, 1] >= m["threshold"]
    sick = test.labels == 1
    assert m["sensitivity"] == pytest.approx(float((said & sick).sum() / sick.sum()))
    assert m["specificity"] == pytest.approx(float((~said & ~sick).sum() / (~sick).sum()))


def test_adaptation_is_reported_beside_the_plain_numbers_never_instead(named_run, tmp_path):
    plain = xraykit.evaluate(named_run, ELSEWHERE, out=tmp_path, cam=False)
    both = xraykit.evaluate(named_run, ELSEWHERE, out=tmp_path, cam=False, adapt=["adabn,prior"])
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "intervals"):
        assert both[key] == plain[key], key
    assert set(both["adapted"]) == {"adabn", "prior"}
    assert "intervals" in both["adapted"]["adabn"] and "accuracy" in both["adapted"]["prior"]
    assert sum(both["adapted"]["prior"]["estimated_prior"].values()) == pytest.approx(1.0, abs=1e-5)
    # The share comes from BBSE on the run's validation images, with an interval; re-weighting moves the
    # threshold and never the ranking.
    prior = both["adapted"]["prior"]
    assert prior["estimator"] == "bbse" and len(prior["estimated_share_interval"]) == 2
    assert prior["roc_auc"] == pytest.approx(both["roc_auc"], abs=1e-9)
    console = Console(width=120, record=True)
    for line in evaluate_view(both):
        console.print(line)
    header = next(line for line in console.export_text().splitlines() if "test images" in line)
    assert "after AdaBN" in header and "after prior adjustment" in header  # beside the plain numbers
    with pytest.raises(xraykit.XrayError, match="adabn, prior"):
        xraykit.evaluate(named_run, ELSEWHERE, out=tmp_path, adapt=["tent"])


def test_evaluate_on_other_data_starts_with_the_shift_verdicts_and_on_its_own_data_does_not(named_run, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(named_run.path), ELSEWHERE, "--out", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [" ".join(re.sub(r"[│┃|]", " ", line).split()) for line in lines]  # the table's rows as words
    assert lines[0].startswith("Shift: ") and any(row.startswith("accuracy ") for row in rows)
    assert "(" in next(row for row in rows if row.startswith("accuracy "))  # with its interval
    assert "calibration: temperature" in result.output and "reliability.png" in result.output
    own = CliRunner().invoke(app, ["evaluate", str(named_run.path), DATA, "--out", str(tmp_path / "own")], env=WIDE)
    assert own.exit_code == 0, own.output
    assert "Shift:" not in own.output
    assert "shift" not in json.loads((tmp_path / "own" / "metrics.json").read_text())


def test_the_shift_command_prints_its_verdicts_and_where_the_files_went(named_run, tmp_path):
    result = CliRunner().invoke(app, ["shift", str(named_run.path), ELSEWHERE, "--out", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Shift: ") and "shift.json" in result.output
    assert json.loads((tmp_path / "shift.json").read_text())["verdicts"]
    assert_one_line_error(CliRunner().invoke(app, ["shift", "/no/such/run", ELSEWHERE]), "/no/such/run")
    assert_one_line_error(CliRunner().invoke(app, ["shift", str(named_run.path), str(tmp_path / "nothing")]))


def test_predict_hints_that_a_photo_is_far_from_the_training_xrays(named_run, tiny_run, tmp_path):
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = tmp_path / "photo.jpg"
        photo.write_bytes(f.read())
    (result,) = xraykit.predict(named_run, [photo])
    assert result["far"] is True and result["unusual"] is True and result["percentile"] == 1.0
    shown = CliRunner().invoke(app, ["predict", str(named_run.path), str(photo)], env=WIDE)
    assert shown.exit_code == 0 and "a hint, not a verdict" in shown.output
    # A run whose training images cannot be found again: no hint, no failure.
    (plain,) = xraykit.predict(tiny_run, [photo])
    assert plain["far"] is None and plain["label"] in tiny_run.classes
    assert load_image(photo, 32).shape == (1, 32, 32)


def _task(accuracy, auc):
    return {
        "accuracy": accuracy,
        "balanced_accuracy": accuracy,
        "per_class_accuracy": {"NORMAL": accuracy, "PNEUMONIA": accuracy},
        "sensitivity": accuracy,
        "specificity": accuracy,
        "f1": accuracy,
        "roc_auc": auc,
        "classes": ["NORMAL", "PNEUMONIA"],
        "data": "x",
        "confusion_matrix": [[1, 0], [0, 1]],
        "majority_baseline": {"class": "PNEUMONIA", "accuracy": 0.625},
        "trainable_parameters": 11_170_000,
        "total_parameters": 11_170_000,
        "seconds_per_epoch": 1.0,
        "weights": "none",
        "intervals": {
            "accuracy": [accuracy - 0.02, accuracy + 0.02],
            "balanced_accuracy": [accuracy - 0.03, accuracy + 0.03],
            "sensitivity": [accuracy - 0.03, accuracy + 0.03],
            "specificity": [accuracy - 0.04, accuracy + 0.04],
            "per_class_accuracy": {"NORMAL": [0.8, 0.9], "PNEUMONIA": [0.85, 0.95]},
            "roc_auc": [auc - 0.02, auc + 0.015],
        },
    }


PAIRED = {
    "a": "Task 1.1: scratch",
    "b": "Task 1.2: finetune",
    "images": 624,
    "only_a": 10,
    "only_b": 21,
    "difference": 0.0176,
    "interval": [-0.003, 0.038],
    "mcnemar_p": 0.07,
}


def test_compare_shows_intervals_and_the_paired_difference_readably_at_100_columns(tmp_path):
    from rich.console import Console

    from xraykit.cli_views import paired_line

    summary = {"tasks": {"Task 1.1: scratch": _task(0.912, 0.951), "Task 1.2: finetune": _task(0.93, 0.96)}}
    summary["paired"] = PAIRED
    console = Console(width=100, record=True)
    console.print(results_table(summary))
    text = console.export_text()
    assert "91.2% (89.2-93.2)" in text and "0.951 (0.931-0.966)" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    line = paired_line(summary)
    assert line is not None
    assert "+1.8 points (95% interval -0.3 to +3.8)" in line and "McNemar's exact p = 0.07" in line

    class FakeRun:
        class config:
            backbone, task, lr, batch_size, epochs, image_size, recipe, seed = "r", "t", 1e-3, 8, 1, 32, "report", 0

        class record:
            validation = "validation: 10 images"

        path = "runs/x"

    write_report(tmp_path / "report.md", "t", {"a": FakeRun()}, summary["tasks"], [], [], paired=PAIRED)
    page = (tmp_path / "report.md").read_text()
    assert "| accuracy | 91.2% (89.2-93.2) | 93.0% (91.0-95.0) |" in page
    assert "Task 1.2 minus Task 1.1 in accuracy" in page and "McNemar" in page


def test_compare_shows_the_other_checkpoint_beside_the_chosen_one(tmp_path, tiny_splits, fake_imagenet_file):
    """The report recipe keeps the last epoch; a bad last epoch should not read as a broken model, so the
    table also gives the best-validation checkpoint's accuracy (the same number evaluate --which best gives)."""
    from rich.console import Console

    summary = xraykit.compare(
        tiny_splits, out=tmp_path, epochs=2, batch_size=16, image_size=32, quiet=True,
        finetune_weights=str(fake_imagenet_file),
    )  # fmt: skip
    for label, m in summary["tasks"].items():
        other = m["other_checkpoint"]
        run = xraykit.Run(tmp_path / ("task1.1-scratch" if "1.1" in label else "task1.2-finetune"))
        assert other["which"] == "best" and 1 <= other["epoch"] <= 2
        again = xraykit.evaluate(run, tiny_splits, which="best", out=tmp_path / "again" / label[:8], quiet=True)
        assert other["accuracy"] == pytest.approx(again["accuracy"])
        assert other["interval"][0] <= other["accuracy"] <= other["interval"][1]
    console = Console(width=100, record=True)
    console.print(results_table(summary))
    assert "accuracy, best checkpoint (epoch)" in console.export_text()
    assert "best checkpoint (epoch)" in (tmp_path / "report.md").read_text()
