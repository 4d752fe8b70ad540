"""--select averaged: the mean of the weights after each of a run's last epochs (stochastic weight averaging)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xraykit
from xraykit import averaging, plugins
from xraykit.data.synthetic import synthetic_splits
from xraykit.errors import XrayError
from xraykit.inference import to_input
from xraykit.runs import Run

from histories import StopAfter

TINY = dict(batch_size=32, image_size=32, device="cpu", quiet=True)


@pytest.fixture(scope="module")
def splits():
    return synthetic_splits(n=24, size=32, seed=5)


@given(st.integers(1, 200))
def test_the_last_thirty_percent_of_the_epochs_are_averaged_and_at_least_one(epochs):
    first = averaging.first_averaged_epoch(epochs)
    assert 0 <= first < epochs
    assert epochs - first == max(1, -(-3 * epochs // 10))  # ceil(0.3 * epochs)


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=8))
def test_the_running_mean_is_the_mean_of_the_weights_added(values):
    model = torch.nn.Linear(1, 1, bias=False)
    average = None
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
        average = averaging.add(average, model, start=0)
    assert average["count"] == len(values)
    assert float(average["weights"]["weight"]) == pytest.approx(sum(values) / len(values), abs=1e-4)


def test_an_averaged_run_saves_the_mean_of_its_last_epochs_weights(splits, tmp_path):
    """Four epochs: the weights after epochs 3 and 4 are averaged. The same weights come from a run stopped
    after 3 epochs and one resumed to 4 (the report recipe's learning rate does not depend on the length)."""
    averaged = xraykit.train(splits, out=tmp_path / "avg", epochs=4, select="averaged", **TINY)
    three = xraykit.train(splits, out=tmp_path / "three", epochs=3, **TINY)
    w3 = three.load_checkpoint("last")["model"]
    w4 = xraykit.resume(three, epochs=4, data=splits, quiet=True).load_checkpoint("last")["model"]
    mean = averaged.load_checkpoint()["model"]
    assert averaged.checkpoint_path().name == "averaged.pt"
    trainable = [name for name, _ in averaged.load_model().named_parameters()]
    for name in trainable:
        torch.testing.assert_close(mean[name], (w3[name] + w4[name]) / 2, rtol=1e-5, atol=1e-6)
    assert not torch.equal(mean["bn1.running_mean"], w4["bn1.running_mean"])  # measured again for the mean
    last = averaged.history[-1]
    assert 0 <= last["averaged_val_accuracy"] <= 1 and last["averaged_val_loss"] > 0
    assert last["averaged_epochs"] == 2


def test_an_averaged_run_stopped_and_resumed_saves_the_same_average(splits, tmp_path):
    straight = xraykit.train(splits, out=tmp_path / "straight", epochs=4, select="averaged", **TINY)
    with pytest.raises(KeyboardInterrupt):
        xraykit.train(splits, out=tmp_path / "stopped", epochs=4, select="averaged", callbacks=StopAfter(3), **TINY)
    resumed = xraykit.resume(tmp_path / "stopped", data=splits, quiet=True)
    a, b = resumed.load_checkpoint()["model"], straight.load_checkpoint()["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batchnorm_statistics_are_measured_again_over_all_the_images():
    """Equal batches: the new running mean of the first BatchNorm is the mean of what reaches it, over all images."""
    torch.manual_seed(0)
    backbone = plugins.backbone("resnet18")
    model = backbone.build(2).eval()
    images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    prepare = lambda x: to_input(x, backbone)  # noqa: E731
    layers = averaging.recompute_batchnorm(model, model, images, prepare, 4, "cpu")
    assert layers == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        direct = model.conv1(prepare(images)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(model.bn1.running_mean, direct, rtol=1e-4, atol=1e-5)
    assert not any(m.training for m in model.modules())  # left in the mode it came in


def test_frozen_batchnorm_keeps_its_statistics():
    torch.manual_seed(0)
    backbone = plugins.backbone("resnet18")
    model = backbone.build(2)
    plugins.strategy("finetune").freeze(model, backbone)
    before = model.bn1.running_mean.clone()
    images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    assert averaging.recompute_batchnorm(model, model, images, lambda x: to_input(x, backbone), 4, "cpu") == 0
    assert torch.equal(model.bn1.running_mean, before)


def test_asking_a_run_without_averaged_weights_for_them_is_refused_in_one_line(splits, tmp_path):
    run = xraykit.train(splits, out=tmp_path / "run", epochs=1, **TINY)
    with pytest.raises(XrayError, match="averaged") as err:
        Run(tmp_path / "run").load_model("averaged")
    assert "--select averaged" in str(err.value) and "\n" not in str(err.value)
    assert run.checkpoint_path().name == "last.pt"
