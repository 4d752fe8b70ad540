"""Shared fixtures: tiny synthetic data, tiny trained runs, and a fake ImageNet file.

Everything runs offline on a CPU: no test downloads anything. Pretrained weights are
stood in for by a checkpoint the tests make themselves, in torchvision's format.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# A Rich console made while COLUMNS and LINES are set keeps that size for good, and pytest-xdist's workers
# start with COLUMNS=80 and LINES=24. So both go, and xraykit's consoles are made now, before any test
# runs: each test's output is then as wide as the COLUMNS that test sets (CliRunner's env), as in a shell.
for name in ("COLUMNS", "LINES"):
    os.environ.pop(name, None)

import xraykit  # noqa: E402
import xraykit.cli_views  # noqa: F401, E402
import xraykit.progress  # noqa: F401, E402
from xraykit import weights as weights_module  # noqa: E402
from xraykit.data.synthetic import synthetic_splits  # noqa: E402

# Torch calls are slow next to hypothesis' 200 ms deadline; examples are fixed per run in CI.
settings.register_profile(
    "xraykit",
    deadline=None,
    max_examples=12,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "xraykit"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores. Two torch processes that each take every core slow each
    # other 10-50x, so each worker, and each command it starts, computes on one thread.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """No test reaches the network; torch's weights cache and xraykit's decode cache are empty folders per test."""

    def refuse(url, dst):
        raise OSError(f"network disabled in tests (asked for {url})")

    monkeypatch.setattr(weights_module, "download", refuse)
    torch_home, decode_cache = tmp_path_factory.mktemp("torch_home"), tmp_path_factory.mktemp("xraykit_cache")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("XRAYKIT_CACHE_DIR", str(decode_cache))
    yield
    for folder in (torch_home, decode_cache):  # a cached ResNet-18 is 45 MB: one kept per test would fill a disk
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """A folder for one test file's shared runs and data, removed when that file's tests have ended.

    A trained ResNet-18 run folder is about 270 MB; kept to the end of the suite, every file's runs add up
    to gigabytes. The folder stays when a test of the file failed, to be looked at.
    """
    failed = request.session.testsfailed
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield folder
    if request.session.testsfailed == failed:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def good_run(module_tmp) -> Path:
    """A finished one-epoch run at 32 px, trained with ``xraykit train`` on a small train/test image folder.

    Trained once per test file that asks for it, in that file's ``module_tmp``; copy it before changing it.
    """
    from typer.testing import CliRunner

    from xraykit.cli import app

    from helpers import write_folder

    tmp = module_tmp / "good"
    out = tmp / "run"
    data = write_folder(tmp / "data", splits=("train", "test"))
    tiny = ["--epochs", "1", "--image-size", "32", "--batch-size", "4", "--seed", "0", "--quiet"]
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(out), *tiny])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_splits():
    """Synthetic train/val/test at 32 px: 96 / 24 / 24 images."""
    return synthetic_splits(n=96, size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_splits):
    """A Task 1.1 run of two epochs on ``tiny_splits`` (shared, treat as read-only)."""
    out = tmp_path_factory.mktemp("runs") / "scratch"
    return xraykit.train(tiny_splits, "scratch", epochs=2, batch_size=16, image_size=32, out=out, quiet=True)


@pytest.fixture
def fake_imagenet_file(tmp_path):
    """A torchvision-format ResNet-18 state dict (3-channel conv1, 1000-class fc), random but fixed."""
    import torchvision

    torch.manual_seed(1234)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18-fake-imagenet.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def imagenet_in_cache(fake_imagenet_file, monkeypatch, tmp_path):
    """Place the fake ImageNet file where torchvision's cache keeps the real one."""
    import torchvision

    filename = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    home = tmp_path / "torch_home_with_weights"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(fake_imagenet_file, home / "hub" / "checkpoints" / filename)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home / "hub" / "checkpoints" / filename
