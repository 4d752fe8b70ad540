"""Starting weights: ImageNet from torch's cache (a clear error offline) or a file given with --weights.

The autouse ``offline`` fixture blocks every download and points torch's cache at an empty
folder; ``imagenet_in_cache`` places a fake ImageNet file where the real one would be.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision
from typer.testing import CliRunner

import xraykit
from xraykit import cli
from xraykit.errors import CheckpointError
from xraykit.weights import safe_load

IMAGENET_FILE = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
runner = CliRunner()


@pytest.fixture(scope="module")
def data(module_tmp) -> Path:
    """A tiny folder in the Kaggle layout (12 train, 3 val, 3 test images of 32 px)."""
    return xraykit.synth(module_tmp / "weights" / "DATA", n=12, size=32, seed=4)


def train_cli(*args: str):
    return runner.invoke(
        cli.app, ["train", *args, "--image-size", "32", "--batch-size", "32", "--device", "cpu", "--quiet"]
    )


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def assert_backbone_from(model_state: dict, source: dict) -> None:
    """Every tensor but the head equals the source's; the RGB stem is folded to one channel."""
    assert torch.equal(model_state["conv1.weight"], source["conv1.weight"].sum(dim=1, keepdim=True))
    for key, value in model_state.items():
        if key != "conv1.weight" and not key.startswith("fc."):
            assert torch.equal(value, source[key]), key


# ----------------------------------------------------------------------------- ImageNet


def test_offline_finetune_exits_2_naming_the_cache_file_and_the_weights_option(data, tmp_path):
    line = error_line(train_cli(str(data), "--task", "finetune", "--out", str(tmp_path / "run")))
    cache_file = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / IMAGENET_FILE
    assert str(cache_file) in line
    assert "--weights PATH" in line
    assert not (tmp_path / "run" / "config.json").exists()


def test_imagenet_weights_are_never_replaced_silently_by_random_ones(data, tmp_path):
    with pytest.raises(xraykit.WeightsUnavailableError):
        xraykit.create_backbone("resnet18", weights="imagenet")


def test_finetune_starts_from_the_cached_imagenet_file(data, tmp_path, imagenet_in_cache):
    result = train_cli(str(data), "--task", "finetune", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    run = xraykit.Run(tmp_path / "run")
    assert run.config.weights == "imagenet" and run.record.weights_loaded == "imagenet weights"
    trained = run.load_checkpoint("last")["model"]
    # Fine-tuning freezes the backbone (BatchNorm statistics included): after an epoch it is still ImageNet's.
    assert_backbone_from(trained, safe_load(imagenet_in_cache))
    assert trained["fc.weight"].shape == (2, 512) and trained["fc.bias"].shape == (2,)


# ----------------------------------------------------------------------------- --weights PATH


@pytest.mark.parametrize("fc_size", [1000, 7, 2])
def test_weights_path_takes_a_torchvision_state_dict_with_any_head(tmp_path, fc_size):
    torch.manual_seed(fc_size)
    state = torchvision.models.resnet18(num_classes=fc_size).state_dict()
    torch.save(state, tmp_path / "w.pth")
    model = xraykit.create_backbone("resnet18", num_classes=2, weights=str(tmp_path / "w.pth"))
    assert_backbone_from(model.state_dict(), state)
    assert model.fc.out_features == 2


def test_weights_path_takes_an_xraykit_checkpoint(tiny_run):
    path = tiny_run.path / "checkpoints" / "last.pt"
    model = xraykit.create_backbone("resnet18", num_classes=2, weights=str(path))
    saved = safe_load(path)["model"]
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, saved[key]), key


def test_train_with_weights_path_records_the_file(data, tmp_path, fake_imagenet_file):
    result = train_cli(
        str(data),
        "--task",
        "finetune",
        "--weights",
        str(fake_imagenet_file),
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.exit_code == 0, result.output
    run = xraykit.Run(tmp_path / "run")
    assert str(fake_imagenet_file) in run.record.weights_loaded
    assert_backbone_from(run.load_checkpoint("last")["model"], safe_load(fake_imagenet_file))


def test_a_file_whose_shapes_do_not_fit_names_the_first_mismatching_tensor(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    state["layer3.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth.*'layer2\.0\.conv1\.weight'.*\(128, 32, 3, 3\)"):
        xraykit.create_backbone("resnet18", weights=str(tmp_path / "bad.pth"))


def test_a_file_missing_a_tensor_names_it(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    del state["layer4.1.bn2.running_var"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"short\.pth.*'layer4\.1\.bn2\.running_var'"):
        xraykit.create_backbone("resnet18", weights=str(tmp_path / "short.pth"))


def test_another_architectures_weights_are_refused_naming_a_tensor_it_does_not_have(tmp_path):
    # ResNet-34 holds every ResNet-18 tensor with the same shape, plus more blocks: loading
    # it would silently build a different network, so the first extra tensor is named.
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match=r"resnet34\.pth.*'layer1\.2\."):
        xraykit.create_backbone("resnet18", weights=str(tmp_path / "resnet34.pth"))


def test_the_cli_reports_a_mismatching_weights_file_in_one_line(data, tmp_path):
    state = torchvision.models.resnet18().state_dict()
    state["layer1.0.bn1.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pth")
    line = error_line(
        train_cli(
            str(data), "--task", "finetune", "--weights", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "run")
        )
    )
    assert "bad.pth" in line and "layer1.0.bn1.weight" in line


def test_a_missing_weights_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.pth"):
        xraykit.create_backbone("resnet18", weights=str(tmp_path / "nothere.pth"))


def test_a_backbone_can_adapt_a_file_in_an_older_key_format_given_by_weights_path(tmp_path):
    # A plugin whose published weights use older key names (torchvision's DenseNet file does)
    # declares adapt_state_dict; xraykit applies it to every --weights PATH file before fitting.
    import dataclasses

    from xraykit.weights import load_weights

    resnet18 = xraykit.plugins.get("backbone", "resnet18")
    old = {f"old.{key}": value for key, value in torchvision.models.resnet18().state_dict().items()}
    torch.save(old, tmp_path / "old-format.pth")

    with pytest.raises(CheckpointError, match=r"old-format\.pth.*no tensor 'conv1\.weight'"):
        load_weights(resnet18.build(2), resnet18, str(tmp_path / "old-format.pth"))

    renamed = dataclasses.replace(
        resnet18, adapt_state_dict=lambda s: {k.removeprefix("old."): v for k, v in s.items()}
    )
    model = renamed.build(2)
    load_weights(model, renamed, str(tmp_path / "old-format.pth"))
    assert_backbone_from(model.state_dict(), {k.removeprefix("old."): v for k, v in old.items()})


def test_a_torch_home_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    """TORCH_HOME under a file: no traceback from mkdir, one line saying what to set."""
    from typer.testing import CliRunner

    from xraykit.cli import app

    from helpers import TINY, assert_one_line_error

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "torch"))
    result = CliRunner().invoke(
        app, ["train", "synthetic:n=32", "--task", "finetune", "--out", str(tmp_path / "r"), *TINY]
    )
    assert_one_line_error(result, "cannot be made", "TORCH_HOME")
