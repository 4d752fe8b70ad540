"""``--seed`` makes a CPU run repeatable bit for bit, and the run says what it ran with.

The seed fixes the validation split, the initial weights, the order of the images in each
epoch and every random augmentation. Two runs of ``xraykit train --recipe strong`` (the
recipe with the most randomness: augmentation, class weights, cosine schedule, best-val
checkpoint) with the same seed end with identical tensors and identical histories (all
but the seconds); ``config.json`` records the seed and the library versions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from xraykit.cli import app
from xraykit.io import read_json
from xraykit.weights import safe_load

from helpers import write_folder
from histories import without_timings

runner = CliRunner()


@pytest.fixture(scope="module")
def data(module_tmp) -> Path:
    return write_folder(module_tmp / "determinism" / "DATA", n=6)


def train(data: Path, out: Path, seed: int) -> Path:
    result = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--recipe",
            "strong",
            "--seed",
            str(seed),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--image-size",
            "32",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def twins(data, module_tmp) -> tuple[Path, Path]:
    root = module_tmp / "twins"
    return train(data, root / "a", seed=7), train(data, root / "b", seed=7)


def model_tensors(run: Path, which: str) -> dict[str, torch.Tensor]:
    return safe_load(run / "checkpoints" / f"{which}.pt")["model"]


def without_seconds(run: Path) -> list[dict]:
    return without_timings(read_json(run / "history.json"))


@pytest.mark.parametrize("which", ["last", "best"])
def test_the_same_seed_gives_identical_weights(twins, which):
    a, b = (model_tensors(run, which) for run in twins)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_same_seed_gives_identical_histories_and_optimizer_state(twins):
    a, b = twins
    assert without_seconds(a) == without_seconds(b)
    opt_a, opt_b = (safe_load(run / "checkpoints" / "last.pt")["optimizer"]["state"] for run in twins)
    assert all(torch.equal(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"]) for k in opt_a)


def test_the_same_seed_gives_the_same_split(twins):
    a, b = (read_json(run / "config.json")["record"] for run in twins)
    for key in ("validation", "train_class_counts", "val_class_counts"):
        assert a[key] == b[key], key


def test_another_seed_gives_other_weights(twins, data, tmp_path):
    """The control: if the seed were ignored, or everything constant, the tests above would pass vacuously."""
    other = model_tensors(train(data, tmp_path / "c", seed=8), "last")
    same = model_tensors(twins[0], "last")
    assert not torch.equal(other["conv1.weight"], same["conv1.weight"])


def test_the_run_records_its_seed_and_library_versions(twins):
    config = read_json(twins[0] / "config.json")
    assert config["seed"] == 7 and config["recipe"] == "strong" and config["augment"] == "strong"
    versions = config["record"]["versions"]
    for library in ("xraykit", "torch", "torchvision", "numpy", "pillow", "python"):
        assert isinstance(versions.get(library), str) and versions[library], library
