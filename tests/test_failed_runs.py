"""What a training run leaves in its ``--out`` folder when it fails or loses a race for it.

Two runs started into one ``--out`` at the same moment: one claims the folder, the other is
refused, and the folder holds the winner's config and checkpoint only. A set-up that fails (a
batch size too small, ``--device cuda`` without CUDA) or a crash in the first epoch leaves no
folder, so the rerun works. A loss that stops being finite stops the run with one line naming
the epoch (``train_one_epoch`` names the batch too) and keeps the last good checkpoint and
history.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import xraykit
from xraykit import loop, training
from xraykit.cli import app
from xraykit.errors import XrayError

from helpers import TINY, assert_one_line_error, data_folder

runner = CliRunner()


def test_two_runs_into_one_out_at_the_same_moment_one_wins_and_nothing_is_mixed(tmp_path):
    data = data_folder(tmp_path)
    out = tmp_path / "run"
    start = threading.Barrier(2)
    outcome: dict[int, object] = {}
    real_claim = training.claim_run_folder

    def claim_together(run_dir: Path) -> None:  # both have passed set-up; now they race for the folder
        start.wait(timeout=60)
        real_claim(run_dir)

    def one(seed: int) -> None:
        try:
            outcome[seed] = xraykit.train(
                str(data), epochs=1, image_size=32, batch_size=4, seed=seed, out=out, quiet=True
            )
        except XrayError as exc:
            outcome[seed] = exc

    training.claim_run_folder = claim_together  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        training.claim_run_folder = real_claim  # type: ignore[assignment]
    errors = [v for v in outcome.values() if isinstance(v, XrayError)]
    assert len(outcome) == 2 and len(errors) == 1, outcome
    assert "already holds a run" in str(errors[0])
    winner = next(seed for seed, v in outcome.items() if not isinstance(v, XrayError))
    assert json.loads((out / "config.json").read_text())["seed"] == winner
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["config"]["seed"] == winner


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_epoch_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    data = data_folder(tmp_path)
    out = tmp_path / "run"
    monkeypatch.setattr(loop, "learning_rate", lambda base, epoch, epochs, schedule="constant": 1e38 if epoch else base)
    with pytest.raises(XrayError) as exc:
        xraykit.train(str(data), epochs=3, image_size=32, batch_size=4, out=out, quiet=True)
    message = str(exc.value)
    assert "epoch 2" in message and "\n" not in message and "lower --lr" in message
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_train_one_epoch_names_the_batch_whose_loss_is_not_finite():
    calls = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        out = torch.zeros(len(x), 2, requires_grad=True)
        return out * math.nan if len(calls) == 2 else out

    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(XrayError, match=r"at epoch 4, batch 2"):
        loop.train_one_epoch(
            forward, torch.zeros(8, 1), torch.zeros(8, dtype=torch.long), torch.arange(8), lambda x: x,
            torch.optim.SGD([param], lr=0.1), torch.nn.CrossEntropyLoss(), 4, "cpu", loop.Callbacks(), epoch=4,
        )  # fmt: skip


def test_a_failed_setup_leaves_no_folder_and_the_rerun_works(tmp_path):
    data = data_folder(tmp_path)
    out = tmp_path / "run"
    assert_one_line_error(runner.invoke(app, ["train", str(data), "--out", str(out), *TINY, "--batch-size", "1"]))
    assert not out.exists()
    result = runner.invoke(app, ["train", str(data), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output


def test_a_crash_in_the_first_epoch_removes_the_claim(tmp_path, monkeypatch):
    data = data_folder(tmp_path)
    out = tmp_path / "run"

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training, "fit", boom)
    with pytest.raises(RuntimeError):
        xraykit.train(str(data), epochs=1, image_size=32, batch_size=4, out=out, quiet=True)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path):
    result = runner.invoke(
        app, ["train", str(data_folder(tmp_path)), "--out", str(tmp_path / "r"), *TINY, "--device", "cuda"]
    )
    assert_one_line_error(result, "--device cuda", "no CUDA")
    assert not (tmp_path / "r").exists()
