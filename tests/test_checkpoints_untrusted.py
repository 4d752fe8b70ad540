"""Checkpoints are untrusted input: a file that would run code is refused, and never runs.

A ``.pt``/``.pth`` file is a pickle; unpickling one can call any Python function. Every
weights file xraykit opens (``--weights PATH``, a run's ``checkpoints/*.pt``) is loaded
with ``weights_only=True``: tensors and plain values, nothing else. The hostile files
below would write a file when unpickled: the file must never appear. A checkpoint that
loads but does not fit the backbone names the first tensor that does not fit.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app
from xraykit.errors import CheckpointError
from xraykit.io import read_json, write_json
from xraykit.weights import safe_load

from helpers import assert_one_line_error, write_folder

runner = CliRunner()


class WritesAFile:
    """Unpickling this calls ``exec``, which writes ``target``: what a malicious checkpoint does."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({str(self.target)!r}, 'w').write('pwned')",))


def hostile_files(folder: Path, marker: Path) -> dict[str, Path]:
    """The same payload in each form a checkpoint comes in."""
    folder.mkdir(parents=True, exist_ok=True)
    state = torchvision.models.resnet18(num_classes=2).state_dict()
    state["layer1.0.conv1.weight"] = WritesAFile(marker)
    files = {
        "torch.save of a dict": folder / "zip.pt",
        "torch.save of a state dict with one poisoned entry": folder / "state_dict.pth",
        "legacy (pre-1.6) torch.save format": folder / "legacy.pth",
        "plain pickle.dump": folder / "plain.pkl.pt",
    }
    torch.save({"model": WritesAFile(marker)}, files["torch.save of a dict"])
    torch.save(state, files["torch.save of a state dict with one poisoned entry"])
    torch.save(state, files["legacy (pre-1.6) torch.save format"], _use_new_zipfile_serialization=False)
    with open(files["plain pickle.dump"], "wb") as f:
        pickle.dump(WritesAFile(marker), f)
    return files


FORMS = [
    "torch.save of a dict",
    "torch.save of a state dict with one poisoned entry",
    "legacy (pre-1.6) torch.save format",
    "plain pickle.dump",
]


def test_the_hostile_payload_really_runs_when_unpickled_without_protection(tmp_path):
    """The control experiment: without weights_only the file is written, so the tests below can fail."""
    marker = tmp_path / "pwned.txt"
    files = hostile_files(tmp_path / "files", marker)
    torch.load(files["torch.save of a dict"], weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("form", FORMS)
def test_safe_load_refuses_a_pickle_that_would_run_code(tmp_path, form):
    marker = tmp_path / "pwned.txt"
    path = hostile_files(tmp_path / "files", marker)[form]
    with pytest.raises(CheckpointError, match="refused to load") as exc:
        safe_load(path)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)
    assert not marker.exists()


@pytest.mark.parametrize("form", FORMS)
def test_train_with_hostile_weights_is_refused_and_runs_nothing(tmp_path, form):
    marker = tmp_path / "pwned.txt"
    path = hostile_files(tmp_path / "files", marker)[form]
    data = write_folder(tmp_path / "DATA")
    result = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--weights",
            str(path),
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert_one_line_error(result, f"Error: {path}: refused to load")
    assert not marker.exists()


@pytest.fixture
def poisoned_run(tiny_run, tmp_path):
    """A copy of a real run whose checkpoints were replaced by hostile files."""
    marker = tmp_path / "pwned.txt"
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    hostile = hostile_files(tmp_path / "files", marker)["torch.save of a dict"]
    for name in ("last.pt", "best.pt"):
        shutil.copy(hostile, run / "checkpoints" / name)
    image = tmp_path / "xray.png"
    Image.new("L", (32, 32), 90).save(image)
    return run, marker, image


@pytest.mark.parametrize("command", ["evaluate", "predict", "explain", "resume"])
def test_a_run_with_hostile_checkpoints_is_refused_by_every_command(poisoned_run, tmp_path, command):
    run, marker, image = poisoned_run
    data = write_folder(tmp_path / "DATA", splits=("test",))
    args = {
        "evaluate": ["evaluate", str(run), str(data), "--out", str(tmp_path / "eval")],
        "predict": ["predict", str(run), str(image)],
        "explain": ["explain", str(run), str(image), "--out", str(tmp_path / "explain")],
        "resume": ["train", "--resume", str(run), "--quiet"],
    }[command]
    if command == "resume":  # the run was trained in memory; point it at a folder so that only the checkpoint is wrong
        config = read_json(run / "config.json")
        config["data"] = str(write_folder(tmp_path / "TRAIN", n=12))
        write_json(run / "config.json", config)
    result = runner.invoke(app, args)
    assert_one_line_error(result, "refused to load", "checkpoints")
    assert not marker.exists()


def test_create_backbone_refuses_hostile_weights(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = hostile_files(tmp_path / "files", marker)["plain pickle.dump"]
    with pytest.raises(CheckpointError, match="refused to load"):
        xraykit.create_backbone("resnet18", weights=str(path))
    assert not marker.exists()


# ----------------------------------------------------------------------------- files that load but do not fit


def test_weights_of_the_wrong_shape_name_the_first_tensor_that_does_not_fit(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 1, 1)  # the model needs (128, 64, 3, 3)
    state["layer4.1.bn2.weight"] = torch.zeros(7)  # a later mismatch: not the one named
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as exc:
        xraykit.create_backbone("resnet18", weights=str(path))
    message = str(exc.value)
    assert message.startswith(str(path)) and "'layer2.0.conv1.weight'" in message
    assert "(128, 64, 1, 1)" in message and "(128, 64, 3, 3)" in message
    assert "layer4" not in message


def test_weights_missing_a_tensor_name_it(tmp_path):
    state = torchvision.models.resnet18().state_dict()
    del state["layer3.1.bn1.running_var"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"no tensor 'layer3\.1\.bn1\.running_var'"):
        xraykit.create_backbone("resnet18", weights=str(path))


def test_a_run_checkpoint_whose_head_does_not_fit_its_config_is_an_error_not_a_random_head(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    config = read_json(run / "config.json")
    config.update(num_classes=3, classes=["A", "B", "C"])
    write_json(run / "config.json", config)
    with pytest.raises(CheckpointError, match=r"'fc\.weight' has shape \(2, 512\).*needs \(3, 512\)"):
        xraykit.Run(run).load_model()


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "not a readable PyTorch weights file"),
        (b"these are not weights\n", "not a readable PyTorch weights file"),
        (b"not weights", "not a readable PyTorch weights file"),  # 'n' parses as a pickle opcode: still not "hostile"
        (None, "a folder"),
    ],
)
def test_a_weights_path_that_is_not_a_weights_file_is_one_clear_line(tmp_path, content, words):
    path = tmp_path / "weights.pth"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as exc:
        xraykit.create_backbone("resnet18", weights=str(path))
    assert str(exc.value).startswith(f"{path}: ") and words in str(exc.value) and "\n" not in str(exc.value)


def test_a_file_of_plain_values_but_no_tensors_is_refused_clearly(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="no state dict of tensors"):
        xraykit.create_backbone("resnet18", weights=str(path))
