"""Every registered backbone: one-channel images of any size in, ``(batch, num_classes)`` logits out.

Parametrized over the registry, so a backbone plugin is held to the same laws the day it
is installed.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import xraykit
from xraykit import plugins

from helpers import BACKBONES, NO_SHRINK


@pytest.fixture(params=BACKBONES)
def backbone(request):
    return plugins.get("backbone", request.param)


def test_resnet18_is_registered_by_the_builtin_plugin():
    entry = plugins.entries("backbone")["resnet18"]
    assert entry.plugin == "xraykit.builtin.resnet"
    assert (entry.obj.head, entry.obj.stem, entry.obj.cam_layer) == ("fc", "conv1", "layer4")


@settings(max_examples=8, phases=NO_SHRINK)
@given(batch=st.integers(1, 4), num_classes=st.integers(2, 5), size=st.integers(32, 96))
def test_logits_are_batch_by_num_classes_for_any_image_size(backbone, batch, num_classes, size):
    model = backbone.build(num_classes).eval()
    with torch.no_grad():
        logits = model(torch.randn(batch, 1, size, size))
    assert logits.shape == (batch, num_classes)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


@settings(max_examples=4, phases=NO_SHRINK)
@given(num_classes=st.integers(2, 5))
def test_the_named_head_is_a_module_with_num_classes_outputs(backbone, num_classes):
    head = backbone.build(num_classes).get_submodule(backbone.head)
    assert isinstance(head, nn.Module)
    assert head.out_features == num_classes


def test_the_stem_takes_one_channel(backbone):
    stem = backbone.build(2).get_submodule(backbone.stem)
    assert stem.weight.shape[1] == 1


def test_the_cam_layer_gives_spatial_feature_maps(backbone):
    """CAM needs a (batch, channels, h, w) feature map to weigh; a backbone without one declares none."""
    if backbone.cam_layer is None:
        pytest.skip(f"{backbone.name} declares no CAM layer")
    model = backbone.build(2).eval()
    seen = []
    model.get_submodule(backbone.cam_layer).register_forward_hook(lambda m, args, out: seen.append(out))
    with torch.no_grad():
        model(torch.randn(2, 1, 64, 64))
    assert len(seen) == 1 and seen[0].dim() == 4 and seen[0].shape[0] == 2


def test_create_backbone_builds_a_fresh_model_without_weights(backbone):
    model = xraykit.create_backbone(backbone.name, num_classes=3)
    assert model.get_submodule(backbone.head).out_features == 3
    assert all(p.requires_grad for p in model.parameters())
