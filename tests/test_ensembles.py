"""An ensemble: several runs answering as one, by the mean of their probabilities.

``xraykit ensemble RUN RUN ... --out DIR`` writes a folder that ``evaluate`` and ``predict`` take
like any run. Its members must agree on what they answer (classes, image size, backbone); the
ensemble keeps each member's checkpoint digest and refuses to answer when one has changed since.
Its validation images are the members' own when they share them (data with its own val/ split);
members validated on different images leave the ensemble without any it may fit a threshold on.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app
from xraykit.errors import XrayError
from xraykit.inference import predict_proba
from xraykit.metrics import compute_metrics

from helpers import TINY, assert_one_line_error

runner = CliRunner()


@pytest.fixture(scope="module")
def members(module_tmp):
    """Two runs of Task 1.1 on the built-in sample (its own val/ split: both validate on the same images)."""
    return [
        xraykit.train("sample", "scratch", epochs=1, image_size=32, batch_size=16, seed=seed,
                      out=module_tmp / f"m{seed}", quiet=True)
        for seed in (0, 1)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def joined(members, module_tmp):
    return xraykit.ensemble(members, out=module_tmp / "ensemble")


def test_an_ensemble_answers_the_mean_of_its_members_probabilities(members, joined, tmp_path):
    test = xraykit.load_data("sample", 32)["test"]
    metrics = xraykit.evaluate(joined, "sample", cam=False, quiet=True, out=tmp_path)
    mean = torch.stack([predict_proba(m.load_model(), test.images, m.backbone) for m in members]).mean(0)
    expected = compute_metrics(mean, test.labels, joined.classes)
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-6)
    assert metrics["ensemble"] == [str(m.path.resolve()) for m in members]
    assert "temperature" in metrics["calibration"]  # shared validation images: calibrated on them
    shown = runner.invoke(app, ["evaluate", str(joined.path), "sample", "--out", str(tmp_path / "cli")])
    assert shown.exit_code == 0, shown.output  # the misclassified gallery without CAM: maps belong to one network
    assert (tmp_path / "cli" / "misclassified.png").is_file()
    assert not (tmp_path / "cli" / "misclassified_cam.png").exists()


def test_predict_on_an_ensemble_gives_the_mean_probability(members, joined, tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(xraykit.load_data("sample", 32)["test"].images[3, 0].numpy(), mode="L").save(image)
    got = xraykit.predict(joined, [image])[0]["probabilities"]
    each = [xraykit.predict(m, [image])[0]["probabilities"] for m in members]
    for name in joined.classes:
        assert got[name] == pytest.approx(sum(p[name] for p in each) / len(each), abs=1e-5)


def test_a_member_changed_since_is_refused_in_one_line(members, module_tmp, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(members[1].path, copy)
    made = xraykit.ensemble([members[0], copy], out=tmp_path / "e")
    state = torch.load(copy / "checkpoints" / "last.pt", weights_only=True)
    state["model"]["fc.bias"] += 1.0
    torch.save(state, copy / "checkpoints" / "last.pt")
    with pytest.raises(XrayError, match="changed since the ensemble was made"):
        xraykit.evaluate(made, "sample", cam=False, quiet=True, out=tmp_path / "m")


def test_members_that_answer_differently_are_refused(members, module_tmp, tmp_path):
    other = xraykit.train("sample", "scratch", epochs=1, image_size=48, batch_size=16, out=tmp_path / "big", quiet=True)
    with pytest.raises(XrayError, match="image size"):
        xraykit.ensemble([members[0], other], out=tmp_path / "e")
    with pytest.raises(XrayError, match="at least two"):
        xraykit.ensemble([members[0]], out=tmp_path / "e1")


def test_members_validated_on_different_images_leave_the_ensemble_without_validation(tmp_path):
    from helpers import write_folder

    data = write_folder(tmp_path / "data", splits=("train", "test"), n=10)
    runs = []
    for seed in (0, 1):  # carved validation: each seed holds out other images
        result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / f"r{seed}"), *TINY[:-3],
                                     "--seed", str(seed), "--quiet"])  # fmt: skip
        assert result.exit_code == 0, result.output
        runs.append(tmp_path / f"r{seed}")
    made = runner.invoke(app, ["ensemble", *map(str, runs), "--out", str(tmp_path / "e")])
    assert made.exit_code == 0, made.output
    metrics = xraykit.evaluate(tmp_path / "e", data, cam=False, quiet=True)
    assert "validated on different images" in metrics["calibration"]["note"]
    refused = runner.invoke(app, ["evaluate", str(tmp_path / "e"), str(data), "--threshold", "youden"])
    assert_one_line_error(refused, "validated on different images")
    image = next((data / "test" / "NORMAL").glob("*.png"))
    assert_one_line_error(runner.invoke(app, ["explain", str(tmp_path / "e"), str(image)]), "an ensemble")
    resumed = runner.invoke(app, ["train", "--resume", str(tmp_path / "e"), "--epochs", "2", "--quiet"])
    assert_one_line_error(resumed, "an ensemble")
    assert not (tmp_path / "e" / "checkpoints").exists()  # nothing trained into the ensemble's folder
