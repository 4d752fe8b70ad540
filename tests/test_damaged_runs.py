"""A run folder is checked whenever it is read back, and ``--resume`` continues the run it recorded.

A checkpoint holding a NaN weight is refused by ``predict``, ``evaluate`` and ``explain``, with
one error line naming the tensor. Resuming a damaged run folder (a checkpoint without its
optimizer state, one from another backbone or holding a NaN, an unreadable ``history.json``, a
``config.json`` with a wrong value or that is not a mapping) is one error line naming the file.
``train --resume`` takes only ``--epochs``: any other option is refused by name, other data is
refused, and the run's own data given again is accepted. The ``good_run`` fixture
(``tests/conftest.py``) is a finished run trained once for this file; tests copy it before
damaging it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app

from helpers import assert_one_line_error, write_folder

runner = CliRunner()


def copy_run(good_run: Path, tmp: Path) -> Path:
    import shutil

    dst = tmp / "copy"
    shutil.copytree(good_run, dst)
    return dst


def edit_checkpoint(run: Path, change: Callable[[dict], None]) -> None:
    for ckpt in (run / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, weights_only=True)
        change(state)
        torch.save(state, ckpt)


def nan_weights(state: dict) -> None:
    state["model"]["layer2.0.conv1.weight"][0, 0, 0, 0] = math.nan


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain"])
def test_a_checkpoint_with_nan_weights_is_refused_by_every_command(good_run, tmp_path, command):
    run = copy_run(good_run, tmp_path)
    edit_checkpoint(run, nan_weights)
    image = [tmp_path / "x.png"]
    Image.new("L", (32, 32), 90).save(image[0])
    data = str(write_folder(tmp_path / "d", splits=("test",)))
    args = {"predict": [str(run), str(image[0])], "evaluate": [str(run), data], "explain": [str(run), str(image[0])]}
    result = runner.invoke(app, [command, *args[command]])
    assert_one_line_error(result, "'layer2.0.conv1.weight'", "NaN")


def resume_args(run: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run), "--epochs", "2", "--quiet", *extra]


def drop_optimizer(state: dict) -> None:
    del state["optimizer"]


def resnet34_model(state: dict) -> None:
    torch.manual_seed(0)
    state["model"] = torchvision.models.resnet34(num_classes=2).state_dict()


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (lambda run: edit_checkpoint(run, drop_optimizer), ("last.pt", "'optimizer' is missing")),
        (lambda run: edit_checkpoint(run, resnet34_model), ("last.pt", "resnet18")),
        (lambda run: edit_checkpoint(run, nan_weights), ("last.pt", "NaN")),
        (lambda run: (run / "history.json").write_text("[{"), ("history.json", "not readable JSON")),
        (lambda run: _set_config(run, epochs="ten"), ("config.json", "epochs 'ten'")),
        (lambda run: _set_config(run, lr="fast"), ("config.json", "lr 'fast'")),
        (lambda run: _set_config(run, seed=None), ("config.json", "seed None")),
        (lambda run: _set_config(run, image_size=-5), ("config.json", "image_size -5")),
        (lambda run: _set_config(run, schedule="zigzag"), ("config.json", "schedule 'zigzag'")),
        (lambda run: (run / "config.json").write_text("[1, 2]"), ("config.json", "mapping")),
    ],
    ids=[
        "no-optimizer-state", "another-backbones-checkpoint", "nan-checkpoint", "corrupt-history",
        "epochs-ten", "lr-fast", "seed-null", "image-size-minus-5", "schedule-zigzag", "config-a-list",
    ],
)  # fmt: skip
def test_a_damaged_run_folder_is_one_error_line_on_resume(good_run, tmp_path, damage, fragments):
    run = copy_run(good_run, tmp_path)
    damage(run)
    # A finished run resumed as it is reads its history for the summary; the others continue to epoch 2.
    finished = fragments[0] == "history.json"
    result = runner.invoke(app, ["train", "--resume", str(run), "--quiet"] if finished else resume_args(run))
    assert_one_line_error(result, *fragments)


def _set_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "options, named",
    [(["--lr", "0.5"], "--lr"), (["--seed", "9"], "--seed"), (["--batch-size", "2"], "--batch-size"),
     (["--task", "finetune"], "--task"), (["--recipe", "strong"], "--recipe")],
)  # fmt: skip
def test_options_given_with_resume_are_refused_by_name(good_run, options, named):
    result = runner.invoke(app, resume_args(good_run, *options))
    assert_one_line_error(result, named, "only --epochs")


def test_other_data_given_with_resume_is_refused(good_run, tmp_path):
    other = write_folder(tmp_path / "other")
    result = runner.invoke(app, ["train", str(other), "--resume", str(good_run), "--epochs", "2", "--quiet"])
    assert_one_line_error(result, "--resume trains on the data the run recorded", str(other))


def test_the_same_data_given_with_resume_is_accepted(good_run, tmp_path):
    run = copy_run(good_run, tmp_path)
    data = xraykit.Run(run).config.data
    result = runner.invoke(app, ["train", data, "--resume", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(xraykit.Run(run).history) == 2
