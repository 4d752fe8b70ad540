"""Plugins: a backbone registered through the hooks is usable by name, from the API and the CLI.

The test plugin is an object with one ``@xraykit.hookimpl``, registered for one test and
unregistered after it, exactly as a notebook or a plugin package would add one.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import xraykit
from xraykit import plugins
from xraykit.cli import app
from xraykit.data.synthetic import synthetic_splits

PLUGIN_NAME = "testtiny"
WIDE = {"COLUMNS": "250"}  # rich wraps tables at 80 columns when it cannot see a terminal


class TinyNet(nn.Module):
    """Two convolutions, a pool and a linear head: a backbone in a few hundred parameters."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.features = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.stem(x)).mean(dim=(2, 3)))


TINY = xraykit.Backbone("tiny", TinyNet, head="head", stem="stem", cam_layer="features", description="for plugin tests")


class TinyPlugin:
    @xraykit.hookimpl
    def register_backbones(self, register):
        register(TINY)


@pytest.fixture
def tiny_plugin():
    plugins.register(TinyPlugin(), name=PLUGIN_NAME)
    try:
        yield TINY
    finally:
        plugins.unregister(PLUGIN_NAME)


@pytest.fixture(scope="module")
def small_splits():
    return synthetic_splits(n=32, size=32, seed=0)


def test_builtins_are_registered_through_the_same_hooks_as_plugins():
    providers = {entry.plugin for kind in plugins.KINDS for entry in plugins.entries(kind).values()}
    assert set(plugins.DEFAULT_PLUGINS) <= providers
    assert {"resnet18"} <= set(xraykit.list_plugins("backbone"))
    assert {"scratch", "finetune"} <= set(xraykit.list_plugins("strategy"))
    assert {"cam"} <= set(xraykit.list_plugins("explainer"))
    assert {"synthetic", "folder"} <= set(xraykit.list_plugins("dataset"))


def test_a_registered_backbone_is_listed_with_its_plugin_and_gone_after_unregistering(tiny_plugin):
    entry = plugins.entries("backbone")["tiny"]
    assert entry.plugin == PLUGIN_NAME and entry.obj is TINY
    assert "tiny" in xraykit.list_plugins("backbone")
    plugins.unregister(PLUGIN_NAME)
    try:
        assert "tiny" not in xraykit.list_plugins("backbone")
    finally:
        plugins.register(TinyPlugin(), name=PLUGIN_NAME)


def test_a_plugin_backbone_is_created_by_name(tiny_plugin):
    model = xraykit.create_backbone("tiny", num_classes=3)
    assert isinstance(model, TinyNet)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 3)


def test_a_plugin_backbone_trains_by_name_from_the_api(tiny_plugin, small_splits, tmp_path):
    run = xraykit.train(
        small_splits,
        "scratch",
        backbone="tiny",
        epochs=1,
        batch_size=8,
        image_size=32,
        out=tmp_path / "run",
        quiet=True,
    )
    assert run.config.backbone == "tiny" and run.backbone is TINY
    assert isinstance(run.load_model(), TinyNet)
    metrics = xraykit.evaluate(run, small_splits, out=tmp_path / "eval")
    assert metrics["n"] == len(small_splits["test"])


def test_a_plugin_backbone_trains_by_name_from_the_cli(tiny_plugin, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "synthetic:n=32",
            "--backbone",
            "tiny",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["backbone"] == "tiny"
    assert (out / "checkpoints" / "last.pt").is_file()


def test_xraykit_plugins_lists_every_kind_with_the_plugin_that_provides_it(tiny_plugin):
    result = CliRunner().invoke(app, ["plugins"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if " tiny " in line]
    assert len(rows) == 1 and PLUGIN_NAME in rows[0] and "backbone" in rows[0]
    for kind in plugins.KINDS:
        for name, entry in plugins.entries(kind).items():
            assert any(name in line and entry.plugin in line for line in result.output.splitlines()), (kind, name)


@pytest.mark.parametrize("kind", sorted(plugins.KINDS))
def test_an_unknown_name_is_an_error_listing_the_known_names(kind):
    with pytest.raises(xraykit.XrayError) as caught:
        plugins.get(kind, "x")
    known = ", ".join(sorted(plugins.entries(kind)))
    assert str(caught.value) == f"Unknown {kind} 'x'. Known: {known}"


def test_an_unknown_backbone_or_task_fails_before_any_work(small_splits, tmp_path):
    with pytest.raises(xraykit.XrayError, match=r"^Unknown backbone 'resnet81'\. Known: .*resnet18"):
        xraykit.train(small_splits, backbone="resnet81", out=tmp_path / "a", quiet=True)
    with pytest.raises(xraykit.XrayError, match=r"^Unknown strategy 'finetuning'\. Known: finetune, .*scratch"):
        xraykit.train(small_splits, "finetuning", out=tmp_path / "b", quiet=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_cli_reports_an_unknown_backbone_in_one_line_with_exit_code_2(tmp_path):
    result = CliRunner().invoke(app, ["train", "synthetic:n=8", "--backbone", "x", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: Unknown backbone 'x'. Known: {', '.join(xraykit.list_plugins('backbone'))}"
    ]
    assert "Traceback" not in result.output


def test_a_name_registered_twice_keeps_the_first_and_records_the_second(tiny_plugin):
    class Copycat:
        @xraykit.hookimpl
        def register_backbones(self, register):
            register(TINY)

    plugins.register(Copycat(), name="copycat")
    try:
        assert plugins.entries("backbone")["tiny"].plugin == PLUGIN_NAME
        refused = [f for f in plugins.failures() if f.plugin == "copycat"]
        assert len(refused) == 1 and "'tiny' is already registered by plugin 'testtiny'" in refused[0].reason
    finally:
        plugins.unregister("copycat")


def test_a_plugin_whose_hook_raises_is_recorded_and_breaks_nothing():
    class Broken:
        @xraykit.hookimpl
        def register_backbones(self, register):
            raise RuntimeError("oops")

    plugins.register(Broken(), name="broken")
    try:
        assert "resnet18" in xraykit.list_plugins("backbone")
        assert any(f.plugin == "broken" and "RuntimeError: oops" in f.reason for f in plugins.failures())
    finally:
        plugins.unregister("broken")
