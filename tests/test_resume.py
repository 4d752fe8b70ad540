"""A stopped run, resumed, ends exactly where the uninterrupted run ends (on the CPU).

Each epoch's sample order and augmentation are functions of (seed, epoch), and the last
checkpoint holds the model and optimizer state (the learning rate is a function of the epoch): so
stopping after an epoch and continuing must give bit-identical weights and the same history (apart from the timings).
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import xraykit
from xraykit import cli
from xraykit.data.synthetic import synthetic_splits
from xraykit.errors import XrayError
from xraykit.loop import learning_rate
from xraykit.runs import Run

from histories import StopAfter, without_timings

# One batch per epoch keeps every test to a handful of optimizer steps.
TINY = dict(batch_size=32, image_size=32, device="cpu", quiet=True)


@pytest.fixture(scope="module")
def splits():
    return synthetic_splits(n=24, size=32, seed=5)


def assert_same_run(resumed: Run, straight: Run) -> None:
    a, b = resumed.load_checkpoint("last"), straight.load_checkpoint("last")
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert without_timings(resumed.history) == without_timings(straight.history)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def interrupted_then_resumed(splits, tmp_path, **kwargs) -> Run:
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        xraykit.train(splits, out=out, epochs=3, callbacks=StopAfter(2), **TINY, **kwargs)
    assert len(Run(out).history) == 2
    return xraykit.resume(out, data=splits, quiet=True)


def test_finetune_resumed_after_a_stop_equals_the_uninterrupted_run(splits, tmp_path, fake_imagenet_file):
    kwargs = dict(task="finetune", weights=str(fake_imagenet_file))
    straight = xraykit.train(splits, out=tmp_path / "straight", epochs=3, **TINY, **kwargs)
    assert_same_run(interrupted_then_resumed(splits, tmp_path, **kwargs), straight)


def test_strong_recipe_resumed_after_a_stop_equals_the_uninterrupted_run(splits, tmp_path):
    # Augmentation draws and the cosine learning rate must both continue where they stopped.
    kwargs = dict(task="scratch", recipe="strong")
    straight = xraykit.train(splits, out=tmp_path / "straight", epochs=3, **TINY, **kwargs)
    assert straight.config.augment and straight.config.schedule == "cosine"
    assert_same_run(interrupted_then_resumed(splits, tmp_path, **kwargs), straight)


def test_a_cosine_run_extended_with_more_epochs_follows_the_cosine_of_its_new_length(splits, tmp_path):
    # Planned for 2 epochs, extended to 5: the learning rate goes on falling towards zero over
    # the new length instead of reaching zero at epoch 2 and climbing back up.
    run = xraykit.train(splits, "scratch", out=tmp_path / "run", epochs=2, schedule="cosine", **TINY)
    extended = xraykit.resume(run, epochs=5, data=splits, quiet=True)
    lrs = [h["lr"] for h in extended.history]
    assert lrs[:2] == [learning_rate(1e-3, e, 2, "cosine") for e in range(2)]
    assert lrs[2:] == [learning_rate(1e-3, e, 5, "cosine") for e in range(2, 5)]
    assert all(a > b > 0 for a, b in zip(lrs[2:], lrs[3:]))


def test_scratch_from_a_folder_extended_with_the_cli_equals_the_uninterrupted_run(tmp_path):
    data = xraykit.synth(tmp_path / "data", n=20, size=32, seed=2)
    runner = CliRunner()
    common = [str(data), "--task", "scratch", "--image-size", "32", "--batch-size", "32", "--device", "cpu", "--quiet"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for args in (
        [*common, "--epochs", "3", "--out", str(straight)],
        [*common, "--epochs", "2", "--out", str(stopped)],
        ["--resume", str(stopped), "--epochs", "3", "--quiet"],
    ):
        result = runner.invoke(cli.app, ["train", *args])
        assert result.exit_code == 0, result.output
    assert_same_run(Run(stopped), Run(straight))
    assert Run(stopped).config.epochs == 3


@pytest.mark.parametrize("args, epochs", [([], None), (["--epochs", "10"], 10), (["--epochs", "4"], 4)])
def test_train_resume_passes_on_exactly_the_epochs_given(monkeypatch, tmp_path, args, epochs):
    # 10 is also the default of --epochs: an explicit --epochs 10 must still extend the run.
    asked = []

    def fake_resume(run, epochs="not given", **_):
        asked.append(epochs)
        raise XrayError("stop here")

    monkeypatch.setattr(xraykit.training, "resume", fake_resume)
    result = CliRunner().invoke(cli.app, ["train", "--resume", str(tmp_path), *args])
    assert result.exit_code == 2 and asked == [epochs]


def test_resuming_a_finished_run_changes_nothing(splits, tmp_path):
    run = xraykit.train(splits, "scratch", out=tmp_path / "run", epochs=1, **TINY)
    before = run.load_checkpoint("last")["model"]["fc.weight"].clone()
    again = xraykit.resume(run, data=splits, quiet=True)
    assert torch.equal(again.load_checkpoint("last")["model"]["fc.weight"], before)
    assert len(again.history) == 1


def test_a_run_of_the_demo_extended_with_the_cli_equals_one_trained_that_long(tmp_path):
    # The demo trains on data it loaded itself; its runs still record which data that was
    # (synthetic:n=N,seed=S), so `xraykit train --resume RUN --epochs N` needs nothing more.
    runner = CliRunner()
    demo = ["demo", "--n", "24", "--image-size", "32", "--epochs", "2", "--seed", "5", "--quiet"]
    assert runner.invoke(cli.app, [*demo, "--out", str(tmp_path / "demo")]).exit_code == 0
    stopped = tmp_path / "demo" / "task1.1-scratch"
    assert Run(stopped).config.data == "synthetic:n=24,seed=5"
    result = runner.invoke(cli.app, ["train", "--resume", str(stopped), "--epochs", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    straight = xraykit.train("synthetic:n=24,seed=5", "scratch", out=tmp_path / "straight", epochs=3, seed=5, **TINY)
    assert_same_run(Run(stopped), straight)


def test_a_run_trained_on_data_in_memory_resumes_from_the_cli_when_given_the_data(splits, tmp_path):
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        xraykit.train(splits, out=out, epochs=3, seed=5, callbacks=StopAfter(2), **TINY)
    refused = CliRunner().invoke(cli.app, ["train", "--resume", str(out), "--quiet"])
    assert refused.exit_code == 2
    assert "xraykit train DATA --resume" in " ".join(refused.stderr.split())
    given = CliRunner().invoke(cli.app, ["train", "synthetic:n=24,seed=5", "--resume", str(out), "--quiet"])
    assert given.exit_code == 0, given.output
    straight = xraykit.train(splits, out=tmp_path / "straight", epochs=3, seed=5, **TINY)
    assert_same_run(Run(out), straight)


def test_an_interrupted_compare_continues_when_the_same_command_runs_again(splits, tmp_path, fake_imagenet_file):
    """Stopped after Task 1.1 (here: its Task 1.2 folder gone), the same compare continues: Task 1.1 is kept
    as it was, Task 1.2 is trained and the report written. Other options are refused, naming the first."""
    options = dict(epochs=1, finetune_weights=str(fake_imagenet_file), **TINY)
    xraykit.compare(splits, out=tmp_path, **options)
    first = (tmp_path / "task1.1-scratch" / "checkpoints" / "last.pt").read_bytes()
    import shutil

    shutil.rmtree(tmp_path / "task1.2-finetune")
    (tmp_path / "report.md").unlink()
    (tmp_path / "metrics.json").unlink()  # written last: a compare stopped before it is not finished
    summary = xraykit.compare(splits, out=tmp_path, **options)
    assert (tmp_path / "task1.1-scratch" / "checkpoints" / "last.pt").read_bytes() == first
    assert (tmp_path / "report.md").is_file() and set(summary["tasks"]) == {"Task 1.1: scratch", "Task 1.2: finetune"}
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(XrayError, match="other choices.*epochs"):
        xraykit.compare(splits, out=tmp_path, **{**options, "epochs": 2})
