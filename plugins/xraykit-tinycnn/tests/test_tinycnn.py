"""The tinycnn plugin: installed through its entry point, a complete backbone, fast to train."""

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import xraykit
from xraykit import plugins
from xraykit_tinycnn import TINYCNN


def test_the_installed_package_registers_tinycnn_through_its_entry_point():
    entry = plugins.entries("backbone")["tinycnn"]
    assert entry.plugin == "tinycnn"
    assert entry.obj is TINYCNN
    assert not [f for f in plugins.failures() if f.plugin == "tinycnn"]


def test_declared_parts_exist_where_the_backbone_says():
    model = TINYCNN.build(2)
    stem = model.get_submodule(TINYCNN.stem)
    assert isinstance(stem, nn.Conv2d) and stem.in_channels == 1
    head = model.get_submodule(TINYCNN.head)
    assert isinstance(head, nn.Linear) and head.out_features == 2
    features = model.get_submodule(TINYCNN.cam_layer)(stem(torch.zeros(1, 1, 32, 32)))
    assert features.dim() == 4 and features.shape[-1] > 1, "the CAM layer must still be a spatial map"


@given(batch=st.integers(1, 4), size=st.sampled_from([16, 32, 40, 64]), classes=st.integers(2, 4))
def test_any_batch_and_image_size_gives_one_logit_per_class(batch, size, classes):
    model = TINYCNN.build(classes).eval()
    assert model(torch.zeros(batch, 1, size, size)).shape == (batch, classes)


def test_is_small_enough_for_a_classroom_cpu():
    total = sum(p.numel() for p in TINYCNN.build(2).parameters())
    assert total < 50_000


def test_finetune_trains_only_the_head():
    model = TINYCNN.build(2)
    plugins.get("strategy", "finetune").freeze(model, TINYCNN)
    trainable, _ = xraykit.count_parameters(model)
    assert trainable == sum(p.numel() for p in model.fc.parameters())


def test_learns_synthetic_xrays_at_32_pixels_in_a_few_epochs(tiny_splits, tmp_path):
    run = xraykit.train(tiny_splits, "scratch", backbone="tinycnn", epochs=4, batch_size=16, image_size=32,
                        out=tmp_path / "run", quiet=True)
    losses = [h["train_loss"] for h in run.history]
    assert losses[-1] < losses[0]
    metrics = xraykit.evaluate(run, tiny_splits, out=tmp_path / "eval")
    assert metrics["accuracy"] > metrics["majority_baseline"]["accuracy"]


def test_cam_explains_it_at_the_input_size(tiny_splits):
    model = TINYCNN.build(2).eval()
    images = tiny_splits["test"].images[:3]
    maps = xraykit.explain_maps(model, TINYCNN, images, torch.tensor([1, 0, 1]), method="cam")
    assert maps.shape == (3, 32, 32)
    assert torch.isfinite(maps).all() and (maps >= 0).all()
