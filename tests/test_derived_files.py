"""Every file made from another is keyed by what it was made from, so it cannot go stale.

The shift reference (``RUN/reference-<which>.pt``) is made from a checkpoint: a resumed run has a
new ``last.pt``, and its reference must be made again. A decoded image is made from a file's bytes:
rewritten in place with the same size and time, it must be decoded again. ``metrics.json`` names
the epoch of the checkpoint it scored, so a run evaluated while it trains says which epoch it saw.
"""

from __future__ import annotations

import json
import os
import time

import torch
from PIL import Image

import xraykit
from xraykit.data import cache
from xraykit.runs import Run
from xraykit.shift_report import run_reference


def test_a_resumed_run_gets_a_new_shift_reference(module_tmp):
    run = xraykit.train(
        "synthetic:n=96,seed=0", "scratch", epochs=1, batch_size=16, image_size=32, out=module_tmp / "r", quiet=True
    )
    first = run_reference(run)
    xraykit.resume(run.path, epochs=2, quiet=True)
    after = run_reference(Run.open(run.path))
    (run.path / "reference-last.pt").unlink()
    fresh = run_reference(Run.open(run.path))
    assert torch.equal(after.val_distances, fresh.val_distances)
    assert not torch.equal(first.val_distances, after.val_distances)


def test_metrics_name_the_epoch_of_the_checkpoint_they_scored(module_tmp):
    run = xraykit.train(
        "synthetic:n=96,seed=0", "scratch", epochs=2, batch_size=16, image_size=32, out=module_tmp / "e", quiet=True
    )
    metrics = xraykit.evaluate(run, "synthetic:n=96,seed=0", which="last", cam=False, quiet=True)
    assert metrics["checkpoint"] == "last.pt" and metrics["checkpoint_epoch"] == 2
    assert json.loads((run.path / "metrics.json").read_text())["checkpoint_epoch"] == 2


def test_an_image_rewritten_with_the_same_size_and_time_is_decoded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAYKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)  # cache even a file written a moment ago
    path = tmp_path / "x.png"
    Image.new("L", (32, 32), 50).save(path)
    stamp = path.stat()
    assert int(cache.load_image_cached(path, 16).float().mean()) == 50
    time.sleep(0.05)  # past the file system's clock tick
    Image.new("L", (32, 32), 60).save(path)  # same size in bytes, other pixels
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size and path.stat().st_mtime_ns == stamp.st_mtime_ns
    assert int(cache.load_image_cached(path, 16).float().mean()) == 60


def test_a_threshold_is_never_refitted_on_validation_images_other_than_the_runs(tmp_path):
    """The run records its validation images' fingerprint; a data folder changed since gives other images."""
    from typer.testing import CliRunner

    from xraykit.cli import app

    from helpers import TINY, assert_one_line_error, write_folder

    data = write_folder(tmp_path / "data", splits=("train", "test"), n=10)
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "r"), *TINY]).exit_code == 0
    for extra in sorted((data / "train" / "PNEUMONIA").glob("*.png"))[:3]:
        extra.unlink()  # the carve now takes other images
    result = runner.invoke(app, ["evaluate", str(tmp_path / "r"), str(data), "--threshold", "youden"])
    assert_one_line_error(result, "not those the run was trained with")
    plain = xraykit.evaluate(tmp_path / "r", data, cam=False, quiet=True)
    assert "not those the run was trained with" in plain["calibration"]["note"]
