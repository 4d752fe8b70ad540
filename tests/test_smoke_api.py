"""The Python API end to end at a tiny size: train, evaluate, predict from a run folder."""

import json

import xraykit

from helpers import METRIC_KEYS


def test_a_trained_run_folder_holds_config_history_curves_and_checkpoints(tiny_run):
    for name in ("config.json", "history.json", "loss_curves.png", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (tiny_run.path / name).is_file(), name
    history = json.loads((tiny_run.path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) >= {"train_loss", "val_loss", "val_accuracy", "seconds"}


def test_evaluate_writes_metrics_with_plain_keys(tiny_run, tiny_splits, tmp_path):
    metrics = xraykit.evaluate(tiny_run, tiny_splits, out=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n"] == len(tiny_splits["test"])
    assert set(METRIC_KEYS) <= set(saved), set(METRIC_KEYS) - set(saved)
    assert sum(map(sum, saved["confusion_matrix"])) == saved["n"]
    assert metrics["accuracy"] == saved["accuracy"]
    assert (tmp_path / "misclassified.png").is_file()
