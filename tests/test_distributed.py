"""Scale-out with torchrun: N processes train the same model one process would, faster.

The end-to-end tests start real ``torchrun`` jobs of two CPU processes (gloo) on tiny
synthetic data; the laws about splitting a batch are checked in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xraykit import distributed
from xraykit.weights import safe_load

# A backbone without BatchNorm: with BatchNorm each process normalises over its own part of
# the batch (as DistributedDataParallel does on a CPU), which no single process reproduces.
PLUGIN = textwrap.dedent("""
    from collections import OrderedDict

    from torch import nn

    from xraykit.hookspecs import hookimpl
    from xraykit.interfaces import Backbone


    def build(num_classes):
        return nn.Sequential(OrderedDict(
            stem=nn.Conv2d(1, 8, 3, stride=2, padding=1), relu1=nn.ReLU(),
            conv2=nn.Conv2d(8, 16, 3, stride=2, padding=1), relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(16, num_classes)))


    @hookimpl
    def register_backbones(register):
        register(Backbone(name="tiny-no-bn", build=build, head="fc", stem="stem", cam_layer="conv2"))
""")


def start_training(out, *args, nproc: int = 1, env=None) -> subprocess.Popen:
    """Start ``xraykit train`` on 57 training and 7 validation images at 32 px, alone or under torchrun."""
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "-m", "xraykit"]
        if nproc > 1
        else [sys.executable, "-m", "xraykit"]
    )
    command = launcher + ["train", "synthetic:n=64", "--image-size", "32", "--out", str(out), "--quiet", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finished(process: subprocess.Popen) -> str:
    """Its standard output, once it has ended well."""
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stdout + stderr
    return stdout


def xraykit_train(out, *args, nproc: int = 1, env=None) -> str:
    return finished(start_training(out, *args, nproc=nproc, env=env))


def test_two_processes_train_one_run_that_rank_0_writes(tmp_path):
    """ResNet-18, Task 1.2: each process computes the cached features of half the images."""
    out = tmp_path / "run"
    stdout = xraykit_train(
        out, "--task", "finetune", "--weights", "none", "--epochs", "2", "--batch-size", "16", nproc=2
    )
    for name in ("config.json", "history.json", "log.txt", "loss_curves.png", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    assert stdout.count("Run folder") == 1  # one report, from rank 0
    assert stdout.count("features once") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_two_processes_learn_the_same_weights_as_one(tmp_path):
    """Same seed, same --batch-size: the world size changes who computes, not what is learnt."""
    plugin = tmp_path / "tiny_no_bn.py"
    plugin.write_text(PLUGIN)
    # float32: the tolerances below are float32's summation order, not bfloat16's rounding
    args = ["--backbone", "tiny-no-bn", "--task", "scratch", "--epochs", "2", "--batch-size", "16", "--precision", "32"]
    env = {"XRAYKIT_PLUGINS": str(plugin)}
    alone, together = (
        start_training(tmp_path / "one", *args, env=env),
        start_training(tmp_path / "two", *args, nproc=2, env=env),
    )
    try:
        finished(alone), finished(together)
    finally:
        for process in (alone, together):
            if process.poll() is None:
                process.kill()

    one, two = (safe_load(tmp_path / name / "checkpoints" / "last.pt") for name in ("one", "two"))
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-4, atol=1e-6, msg=key)
    for a, b in zip(one["history"], two["history"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert b["val_accuracy"] == a["val_accuracy"]


@given(batch=st.integers(1, 40), world=st.integers(1, 5), seed=st.integers(0, 1000))
def test_weighted_process_means_average_to_the_batch_mean(monkeypatch, batch, world, seed):
    """What DDP computes from the parts (the mean of the weighted means) is the whole batch's mean."""
    losses = torch.rand(batch, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    idx = torch.randperm(batch, generator=torch.Generator().manual_seed(seed))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    ddp_average, covered = 0.0, []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        part, share = distributed.batch_part(idx)
        assert len(part) >= 1  # every process joins every gradient average
        ddp_average += share * losses[part].mean().item() / world
        covered += part.tolist() if share else []
    assert sorted(covered) == sorted(idx.tolist())
    assert ddp_average == pytest.approx(losses.mean().item(), rel=1e-12)


def test_a_single_process_is_left_alone(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    idx = torch.arange(7)
    part, share = distributed.batch_part(idx)
    assert part is idx and share == 1.0
    assert distributed.is_main() and not distributed.is_distributed()
    assert distributed.sum_over_ranks(3.0, 4) == [3.0, 4]
    assert torch.equal(distributed.in_parts(lambda x: x * 2, idx), idx * 2)
    assert distributed.wrap(torch.nn.Linear(2, 2)).__class__ is torch.nn.Linear
