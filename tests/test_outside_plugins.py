"""The plugin packages in plugins/ are real outside packages: installable, discoverable, tested.

These checks need nothing installed: they read each package's pyproject.toml and load its
module by path, the way an entry point would. Once a package is installed
(``pip install -e plugins/NAME``, as CI does), the registry-wide tests in this folder
(test_backbones, test_strategies, test_explainers) hold its backbones to every law too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path

import pytest
import tomllib
import torch

import xraykit
from xraykit import plugins

PLUGINS = sorted(
    p for p in (Path(__file__).resolve().parent.parent / "plugins").iterdir() if (p / "pyproject.toml").is_file()
)


def _project(package: Path) -> dict:
    return tomllib.loads((package / "pyproject.toml").read_text())


@pytest.fixture(params=PLUGINS, ids=lambda p: p.name)
def package(request):
    return request.param


def test_there_are_at_least_two_outside_plugins():
    assert {p.name for p in PLUGINS} >= {"xraykit-tinycnn", "xraykit-densenet"}


def test_each_declares_an_entry_point_in_group_xraykit_and_depends_on_xraykit(package):
    project = _project(package)["project"]
    entry_points = project["entry-points"]["xraykit"]
    assert len(entry_points) == 1
    module = next(iter(entry_points.values()))
    assert (package / module).is_dir() or (package / f"{module}.py").is_file(), f"{module} is not in {package}"
    assert any(dep.split(">")[0].split("=")[0].strip() == "xraykit" for dep in project["dependencies"])


def test_each_has_its_own_tests(package):
    assert list((package / "tests").glob("test_*.py")), f"{package.name} has no tests/test_*.py"


def _load(package: Path):
    module_name = next(iter(_project(package)["project"]["entry-points"]["xraykit"].values()))
    sys.path.insert(0, str(package))
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(str(package))


def test_loaded_like_an_entry_point_each_registers_working_backbones(package):
    module = _load(package)
    pm = plugins.get_plugin_manager()
    before = set(plugins.entries("backbone"))
    name = None if pm.is_registered(module) else plugins.register(module, name=f"test:{package.name}")
    try:
        provided = [e for e in plugins.entries("backbone").values() if e.plugin in (name, pm.get_name(module))]
        assert provided, f"{package.name} registers no backbone"
        for entry in provided:
            model = entry.obj.build(2).eval()
            with torch.no_grad():
                assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 2)
            assert model.get_submodule(entry.obj.stem).weight.shape[1] == 1
            assert entry.obj.cam_layer is not None, "classroom backbones declare a CAM layer"
    finally:
        if name is not None:
            plugins.unregister(name)
    assert set(plugins.entries("backbone")) == before


def test_when_installed_the_entry_point_is_what_registers_it(package):
    ((ep_name, module_name),) = _project(package)["project"]["entry-points"]["xraykit"].items()
    found = [ep for ep in importlib.metadata.entry_points(group="xraykit") if ep.name == ep_name]
    if not found:
        pytest.skip(f"{package.name} is not installed here (python3 -m pip install -e plugins/{package.name})")
    assert found[0].value == module_name
    assert any(e.plugin == ep_name for e in plugins.entries("backbone").values())
    assert xraykit.list_plugins("backbone")
