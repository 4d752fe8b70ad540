"""The teaching strategies: "scratch" trains everything, "finetune" only the head, "finetune-all" every layer
of pretrained weights.

A frozen backbone stays frozen: its parameters AND its BatchNorm running statistics are
bit-identical after fine-tuning steps, checked for every registered backbone.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from xraykit import plugins
from xraykit.inference import to_input
from xraykit.loop import Callbacks, set_train_mode, train_one_epoch

from helpers import BACKBONES, NO_SHRINK


@pytest.fixture(params=BACKBONES)
def backbone(request):
    return plugins.get("backbone", request.param)


def take_steps(model, backbone, strategy, steps: int, batch: int, seed: int, size: int = 32):
    """Freeze as the strategy says, then ``steps`` batches of random images through the trainer's own epoch."""
    strategy.freeze(model, backbone)
    optimizer = strategy.optimizer([p for p in model.parameters() if p.requires_grad], lr=strategy.lr)
    g = torch.Generator().manual_seed(seed)
    num_classes = model.get_submodule(backbone.head).out_features
    images = torch.randint(0, 256, (steps * batch, 1, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(num_classes, (steps * batch,), generator=g)
    set_train_mode(model)
    train_one_epoch(
        model,
        images,
        labels,
        torch.arange(len(labels)),
        partial(to_input, backbone=backbone),
        optimizer,
        nn.CrossEntropyLoss(),
        batch,
        "cpu",
        Callbacks(),
    )
    return optimizer


def snapshot(model) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (BatchNorm running mean, variance and batch count included)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def is_head(key: str, backbone) -> bool:
    return key.startswith(backbone.head + ".")


def test_the_teaching_strategies_have_the_documented_defaults():
    scratch, finetune = plugins.get("strategy", "scratch"), plugins.get("strategy", "finetune")
    full = plugins.get("strategy", "finetune-all")
    assert (scratch.optimizer, scratch.lr, scratch.weights) == (torch.optim.Adam, 1e-3, None)
    assert (finetune.optimizer, finetune.lr, finetune.weights) == (torch.optim.Adam, 1e-4, "imagenet")
    assert (full.optimizer, full.lr, full.weights) == (torch.optim.Adam, 1e-4, "imagenet")
    entries = plugins.entries("strategy")
    assert {entries[name].plugin for name in ("scratch", "finetune", "finetune-all")} == {"xraykit.builtin.strategies"}


def test_finetune_leaves_only_the_head_trainable(backbone):
    model = backbone.build(2)
    plugins.get("strategy", "finetune").freeze(model, backbone)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    head = {f"{backbone.head}.{name}" for name, _ in model.get_submodule(backbone.head).named_parameters()}
    assert trainable == head and head


def test_the_finetune_optimizer_holds_only_head_parameters(backbone):
    model = backbone.build(2)
    optimizer = take_steps(model, backbone, plugins.get("strategy", "finetune"), steps=1, batch=2, seed=0)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in model.get_submodule(backbone.head).parameters()}


@settings(max_examples=4, phases=NO_SHRINK)
@given(steps=st.integers(2, 4), batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_finetune_steps_keep_every_backbone_parameter_and_buffer_bit_identical(backbone, steps, batch, seed):
    torch.manual_seed(seed)
    model = backbone.build(2)
    before = snapshot(model)
    take_steps(model, backbone, plugins.get("strategy", "finetune"), steps, batch, seed)
    after = snapshot(model)
    frozen = [k for k in before if not is_head(k, backbone)]
    assert any("running_mean" in k for k in frozen) or not any("running" in k for k in before)
    changed = [k for k in frozen if not torch.equal(before[k], after[k])]
    assert changed == [], f"frozen tensors changed: {changed[:5]}"
    assert any(not torch.equal(before[k], after[k]) for k in before if is_head(k, backbone)), "the head did not learn"


def test_plain_train_mode_would_let_frozen_batchnorm_statistics_drift():
    """Why ``set_train_mode`` exists: ``model.train()`` updates running statistics of frozen layers."""
    backbone = plugins.get("backbone", "resnet18")
    model = backbone.build(2)
    plugins.get("strategy", "finetune").freeze(model, backbone)
    before = model.bn1.running_mean.clone()
    model.train()
    model(torch.randn(2, 1, 32, 32))
    assert not torch.equal(before, model.bn1.running_mean)


@settings(max_examples=3, phases=NO_SHRINK)
@given(seed=st.integers(0, 2**16), name=st.sampled_from(["scratch", "finetune-all"]))
def test_scratch_and_full_fine_tuning_train_every_parameter(backbone, seed, name):
    torch.manual_seed(seed)
    model = backbone.build(2)
    before = dict(model.named_parameters())
    before = {k: v.detach().clone() for k, v in before.items()}
    optimizer = take_steps(model, backbone, plugins.get("strategy", name), steps=2, batch=4, seed=seed)
    assert all(p.requires_grad for p in model.parameters())
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(before)
    unchanged = [k for k, p in model.named_parameters() if torch.equal(before[k], p.detach())]
    assert unchanged == [], f"parameters that did not train: {unchanged[:5]}"
