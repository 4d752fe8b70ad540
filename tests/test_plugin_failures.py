"""A broken plugin never breaks xraykit: it is listed as failed, with the reason, and everything else works.

Plugins come from installed packages (entry points, group ``xraykit``) and from files or
modules named in ``XRAYKIT_PLUGINS``. One that raises on import (even ``SystemExit``), or
registers a name another plugin already has, is recorded in ``plugins.failures()`` and
shown by ``xraykit plugins``; the built-ins and the healthy plugins stay usable. A
duplicate name keeps the first registration and the failure names both plugins.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import xraykit
from xraykit import plugins
from xraykit.cli import app
from xraykit.errors import XrayError

from helpers import TINY, assert_one_line_error, write_folder

runner = CliRunner()
WIDE = {"COLUMNS": "300"}  # rich wraps tables at 80 columns when it cannot see a terminal

RAISES_ON_IMPORT = "raise ImportError('needs scipy>=99 (install xraykit-broken[extra])')\n"
EXITS_ON_IMPORT = "import sys\nsys.exit('plugin gave up')\n"
GOOD = textwrap.dedent("""
    import torch.nn as nn
    import xraykit

    def build(num_classes):
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
        return net

    @xraykit.hookimpl
    def register_backbones(register):
        register(xraykit.Backbone(name="{name}", build=build, head="3", stem="0", cam_layer=None))
""")
SHADOWS_RESNET = textwrap.dedent("""
    import xraykit

    @xraykit.hookimpl
    def register_backbones(register):
        register(xraykit.Backbone(name="resnet18", build=lambda n: None, head="fc", stem="conv1", cam_layer=None))
""")


@pytest.fixture
def fresh(monkeypatch):
    """A plugin manager that reloads from this test's XRAYKIT_PLUGINS and sys.path; the usual one afterwards."""
    monkeypatch.delenv("XRAYKIT_PLUGINS", raising=False)
    plugins.reset()
    yield monkeypatch
    plugins.reset()


def plugin_files(tmp_path: Path, **sources: str) -> str:
    """Write ``name.py`` files; return them as an XRAYKIT_PLUGINS value."""
    paths = []
    for name, source in sources.items():
        (tmp_path / f"{name}.py").write_text(source)
        paths.append(str(tmp_path / f"{name}.py"))
    return ",".join(paths)


def install_entry_point(site: Path, module: str, source: str) -> None:
    """A distribution on ``site`` whose entry point (group ``xraykit``) is ``module``: a pip install in miniature."""
    (site / f"{module}.py").write_text(source)
    dist = site / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[xraykit]\n{module} = {module}\n")


def failure_of(plugin: str) -> str:
    found = [f.reason for f in plugins.failures() if f.plugin == plugin]
    assert len(found) == 1, plugins.failures()
    return found[0]


# ----------------------------------------------------------------------------- plugins that fail to import


def test_an_installed_plugin_that_raises_on_import_is_recorded_with_its_reason(fresh, tmp_path):
    install_entry_point(tmp_path, "xraykit_broken_ep", RAISES_ON_IMPORT)
    fresh.syspath_prepend(str(tmp_path))
    assert (
        failure_of("xraykit_broken_ep")
        == "failed to load: ImportError: needs scipy>=99 (install xraykit-broken[extra])"
    )
    assert "resnet18" in xraykit.list_plugins("backbone")


def test_a_plugin_file_that_raises_on_import_is_recorded_and_the_others_still_load(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, broken=RAISES_ON_IMPORT, good=GOOD.format(name="good")))
    assert "needs scipy>=99" in failure_of(str(tmp_path / "broken.py"))
    assert {"resnet18", "good"} <= set(xraykit.list_plugins("backbone"))
    xraykit.create_backbone("good", num_classes=2)


def test_a_plugin_that_calls_sys_exit_on_import_does_not_end_the_program(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, quitter=EXITS_ON_IMPORT))
    assert failure_of(str(tmp_path / "quitter.py")) == "failed to load: SystemExit: plugin gave up"
    assert "resnet18" in xraykit.list_plugins("backbone")


def test_a_missing_plugin_file_or_module_is_recorded(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", f"{tmp_path / 'nowhere.py'},no_such_module_xyz")
    assert "no such file" in failure_of(str(tmp_path / "nowhere.py"))
    assert "ModuleNotFoundError" in failure_of("no_such_module_xyz")


def test_an_unknown_name_says_that_some_plugins_failed(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, broken=RAISES_ON_IMPORT))
    with pytest.raises(
        XrayError, match=r"Unknown backbone 'mynet'\. Known: .*resnet18.*1 plugin failed .*xraykit plugins"
    ):
        xraykit.create_backbone("mynet")


# ----------------------------------------------------------------------------- duplicate names


def test_a_duplicate_name_keeps_the_first_and_the_failure_names_both_plugins(fresh, tmp_path):
    fresh.setenv(
        "XRAYKIT_PLUGINS", plugin_files(tmp_path, first=GOOD.format(name="twin"), second=GOOD.format(name="twin"))
    )
    first, second = str(tmp_path / "first.py"), str(tmp_path / "second.py")
    assert plugins.entries("backbone")["twin"].plugin == first
    reason = failure_of(second)
    assert f"backbone 'twin' is already registered by plugin '{first}'" in reason and second in reason


def test_a_plugin_cannot_take_over_a_built_in_name(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, shadow=SHADOWS_RESNET))
    assert plugins.entries("backbone")["resnet18"].plugin == "xraykit.builtin.resnet"
    assert "already registered by plugin 'xraykit.builtin.resnet'" in failure_of(str(tmp_path / "shadow.py"))
    assert xraykit.create_backbone("resnet18").fc.out_features == 2


# ----------------------------------------------------------------------------- the command line


def test_xraykit_plugins_lists_the_failed_plugins_with_their_reasons(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, broken=RAISES_ON_IMPORT, shadow=SHADOWS_RESNET))
    result = runner.invoke(app, ["plugins"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "failed plugins" in result.stdout
    assert "ImportError: needs scipy>=99 (install xraykit-broken[extra])" in result.stdout  # [extra] is not markup
    assert "backbone 'resnet18' is already registered by plugin 'xraykit.builtin.resnet'" in result.stdout
    assert "resnet18" in result.stdout and "xraykit.builtin.resnet" in result.stdout


def test_other_commands_work_beside_a_broken_plugin(fresh, tmp_path, tiny_run):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, broken=RAISES_ON_IMPORT))
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (32, 32), 80).save(image)
    result = runner.invoke(app, ["predict", str(tiny_run.path), str(image), "--json"])
    assert result.exit_code == 0, result.output
    assert '"label"' in result.stdout


def test_the_installed_command_survives_a_broken_plugin_file(tmp_path):
    """End to end, in a fresh process, as a student would meet it."""
    env = {
        **os.environ,
        "XRAYKIT_PLUGINS": plugin_files(tmp_path, broken=RAISES_ON_IMPORT),
        "COLUMNS": "300",
        "PYTHONWARNINGS": "ignore",
    }
    result = subprocess.run(
        [sys.executable, "-m", "xraykit", "plugins"], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "broken.py") in result.stdout and "needs scipy>=99" in result.stdout


def test_reset_forgets_plugins_registered_by_hand(fresh):
    class Extra:
        @xraykit.hookimpl
        def register_strategies(self, register):
            register(xraykit.Strategy(name="extra", freeze=lambda model, backbone: None, lr=1e-3, weights=None))

    plugins.register(Extra(), name="extra")
    assert "extra" in xraykit.list_plugins("strategy")
    plugins.reset()
    assert "extra" not in xraykit.list_plugins("strategy")


# ----------------------------------------------------------------------------- plugins that fail later

HOOK_EXITS = textwrap.dedent("""
    import sys
    import xraykit

    @xraykit.hookimpl
    def register_backbones(register):
        sys.exit(3)
""")
BUILD_RAISES = textwrap.dedent("""
    import xraykit

    def build(num_classes):
        raise RuntimeError("weights server unreachable")

    @xraykit.hookimpl
    def register_backbones(register):
        register(xraykit.Backbone(name="fragile", build=build, head="fc", stem="conv1", cam_layer=None))
""")
CAN_LOAD_RAISES = textwrap.dedent("""
    import xraykit

    class Picky:
        name = "picky"
        description = "reads nothing"

        def can_load(self, location):
            raise KeyError(location)

        def load(self, location, image_size, skip_bad=False, on_skip=None):
            raise AssertionError("never reached")

    @xraykit.hookimpl
    def register_datasets(register):
        register(Picky())
""")


def test_a_hook_that_calls_sys_exit_is_recorded_and_every_command_still_works(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, quitter=HOOK_EXITS))
    assert "SystemExit" in failure_of(str(tmp_path / "quitter.py"))
    result = runner.invoke(app, ["plugins"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "resnet18" in result.stdout


def test_a_backbone_whose_build_raises_is_one_line_naming_the_plugin(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, fragile=BUILD_RAISES))
    data = write_folder(tmp_path / "data")
    result = runner.invoke(app, ["train", str(data), "--backbone", "fragile", "--out", str(tmp_path / "r"), *TINY])
    assert_one_line_error(result, str(tmp_path / "fragile.py"), "RuntimeError: weights server unreachable")


def test_a_dataset_source_whose_can_load_raises_is_one_line_naming_the_plugin(fresh, tmp_path):
    fresh.setenv("XRAYKIT_PLUGINS", plugin_files(tmp_path, picky=CAN_LOAD_RAISES))
    result = runner.invoke(app, ["train", "nothing:here", "--out", str(tmp_path / "r"), *TINY])
    assert_one_line_error(result, str(tmp_path / "picky.py"), "KeyError")


def test_an_entry_point_named_like_a_built_in_plugin_is_listed_as_not_loaded(fresh, tmp_path):
    install_entry_point(tmp_path, "xraykit.builtin.resnet", GOOD.format(name="impostor"))
    fresh.syspath_prepend(str(tmp_path))
    assert "name of a plugin already registered" in failure_of("xraykit.builtin.resnet")
