"""The frozen-feature cache: a frozen backbone runs once per image, and the head learns the same."""

from __future__ import annotations

import pytest
import torch

from xraykit import TrainConfig, plugins
from xraykit.loop import Callbacks, fit


class Recorder(Callbacks):
    """Messages, and how many images went through the backbone's stem during each epoch."""

    def __init__(self, model, backbone) -> None:
        self.messages: list[str] = []
        self.stem_images_per_epoch: list[int] = []
        self.stem_images = 0
        model.get_submodule(backbone.stem).register_forward_hook(self._count)

    def _count(self, module, args, output) -> None:
        self.stem_images += len(args[0])

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.stem_images = 0

    def on_epoch_end(self, record: dict) -> None:
        self.stem_images_per_epoch.append(self.stem_images)

    def message(self, text: str) -> None:
        self.messages.append(text)


@pytest.fixture(scope="module")
def small(tiny_splits):
    """48 training and 16 validation images of ``tiny_splits`` (32 px)."""
    return {"train": tiny_splits["train"].subset(range(48)), "val": tiny_splits["val"].subset(range(16))}


def train(splits, tmp_path, task="finetune", epochs=1, **options):
    """Fit a fresh ResNet-18 (the same init every call) on ``splits``; returns the model, history and recorder."""
    backbone = plugins.get("backbone", "resnet18")
    strategy = plugins.get("strategy", task)
    torch.manual_seed(0)
    model = backbone.build(2)
    recorder = Recorder(model, backbone)
    config = TrainConfig(task=task, epochs=epochs, batch_size=16, image_size=32, lr=1e-3, device="cpu", **options)
    strategy.freeze(model, backbone)
    history = fit(
        model,
        backbone,
        strategy,
        splits["train"],
        splits["val"],
        config,
        tmp_path / "run",
        recorder,
        device=torch.device("cpu"),
    )
    return model, history, recorder


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_cached_fine_tuning_learns_the_same_head_as_the_uncached_loop(precision, small, tmp_path):
    # In each precision the cache holds what the head would receive without it: under bf16-mixed the
    # backbone's one pass runs in bfloat16 too, as every uncached epoch does (a float32 cache would not).
    cached, cached_history, _ = train(small, tmp_path / "a", epochs=2, feature_cache=True, precision=precision)
    plain, plain_history, _ = train(small, tmp_path / "b", epochs=2, feature_cache=False, precision=precision)
    torch.testing.assert_close(cached.fc.weight, plain.fc.weight, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached.fc.bias, plain.fc.bias, rtol=1e-4, atol=1e-5)
    for c, p in zip(cached_history, plain_history):
        assert c["train_loss"] == pytest.approx(p["train_loss"], rel=1e-4)
        assert c["val_loss"] == pytest.approx(p["val_loss"], rel=1e-4)
        assert c["val_accuracy"] == p["val_accuracy"]


def test_a_frozen_backbone_is_cached_by_default_and_no_epoch_runs_it(small, tmp_path):
    _, _, recorder = train(small, tmp_path)
    assert recorder.stem_images_per_epoch == [0]
    assert any("features once" in m for m in recorder.messages)


def test_without_the_cache_every_epoch_runs_the_backbone(small, tmp_path):
    _, _, recorder = train(small, tmp_path, feature_cache=False)
    assert recorder.stem_images_per_epoch == [len(small["train"]) + len(small["val"])]


def test_augmentation_turns_the_cache_off_and_says_why(small, tmp_path):
    _, _, recorder = train(small, tmp_path, augment=True)
    assert recorder.stem_images_per_epoch[0] > 0
    assert any("Feature cache off" in m and "augmentation" in m for m in recorder.messages)


def test_cached_features_are_of_one_size_so_progressive_resizing_is_off_and_said(small, tmp_path):
    _, history, recorder = train(small, tmp_path, epochs=2, progressive=16)
    assert recorder.stem_images_per_epoch == [0, 0]
    assert any("Progressive resizing off" in m for m in recorder.messages)
    assert "image_size" not in history[0]


def test_a_backbone_that_trains_is_never_cached(small, tmp_path):
    _, _, recorder = train(small, tmp_path, task="scratch")
    assert recorder.stem_images_per_epoch[0] > 0
    assert not any("features once" in m or "Feature cache" in m for m in recorder.messages)


def test_the_one_off_feature_pass_is_counted_in_the_first_epochs_time(small, tmp_path):
    # Otherwise Task 1.2 would report 0.01 s per epoch and hide the pass that did the work.
    _, history, _ = train(small, tmp_path, epochs=2)
    first, second = history
    assert first["feature_seconds"] > 0 and "feature_seconds" not in second
    assert first["seconds"] >= first["feature_seconds"]
    _, uncached, _ = train(small, tmp_path / "plain", feature_cache=False)
    assert "feature_seconds" not in uncached[0]
