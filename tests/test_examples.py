"""Each script in examples/ runs, at its --tiny size, as a user would run it: a fresh process, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, cwd: Path, torch_home: Path) -> str:
    # A closed local port as proxy: any download fails at once, as on a machine without network.
    # One thread: tiny runs gain nothing from a second, and on a busy machine it makes them crawl.
    env = {
        **os.environ,
        "TORCH_HOME": str(torch_home),
        "OMP_NUM_THREADS": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--tiny"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_every_example_is_tested_here():
    tested = {"scratch_vs_finetune.py", "custom_backbone.py", "explain_folder.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.slow
def test_scratch_vs_finetune_offline_fine_tunes_from_the_scratch_checkpoint_and_says_so(tmp_path):
    out = run_example("scratch_vs_finetune.py", tmp_path, tmp_path / "empty_torch_home")
    assert "ImageNet weights unavailable" in out and "scratch run's checkpoint" in out
    config = json.loads((tmp_path / "runs/scratch-vs-finetune/finetune/config.json").read_text())
    assert config["weights"].endswith("scratch/checkpoints/last.pt")
    assert config["record"]["trainable_parameters"] == 512 * 2 + 2
    assert "test accuracy" in out and "majority baseline" in out


@pytest.mark.slow
def test_scratch_vs_finetune_uses_imagenet_weights_from_torchs_cache(tmp_path, imagenet_in_cache):
    torch_home = imagenet_in_cache.parent.parent.parent
    out = run_example("scratch_vs_finetune.py", tmp_path, torch_home)
    assert "ImageNet weights unavailable" not in out
    config = json.loads((tmp_path / "runs/scratch-vs-finetune/finetune/config.json").read_text())
    assert config["weights"] == "imagenet"


@pytest.mark.slow
def test_custom_backbone_is_registered_trained_explained_and_unregistered(tmp_path):
    out = run_example("custom_backbone.py", tmp_path, tmp_path / "torch_home")
    assert "widecnn" in out.splitlines()[0]
    assert json.loads((tmp_path / "runs/widecnn/config.json").read_text())["backbone"] == "widecnn"
    assert "CAM at layer '1': (4, 32, 32)" in out


@pytest.mark.slow
def test_explain_folder_writes_one_figure_per_image_and_the_predictions(tmp_path):
    out = run_example("explain_folder.py", tmp_path, tmp_path / "torch_home")
    folder = tmp_path / "explain-folder-tiny/xrays/test/PNEUMONIA"
    explained = tmp_path / "explain-folder-tiny/xrays/test/PNEUMONIA-explained"
    images = sorted(folder.glob("*.png"))
    assert images
    assert sorted(p.name for p in explained.glob("*_cam.png")) == sorted(f"{p.stem}_cam.png" for p in images)
    predictions = json.loads((explained / "predictions.json").read_text())
    assert [p["path"] for p in predictions] == [str(p.relative_to(tmp_path)) for p in images]
    assert f"{len(images)} figures" in out
