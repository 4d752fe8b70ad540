"""The shape of the package: the facade's ``__all__`` is what the reference documents, the core never
imports a built-in plugin, and importing xraykit picks no matplotlib backend."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import xraykit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "xraykit"
REFERENCE = ROOT / "docs" / "reference"


def documented_names() -> list[str]:
    """Every ``::: xraykit.NAME`` in the reference pages that names a function or class, not a module."""
    names = []
    for page in sorted(REFERENCE.glob("*.md")):
        for name in re.findall(r"^::: xraykit\.(\w+)\s*$", page.read_text(), flags=re.M):
            if not inspect.ismodule(getattr(xraykit, name, None)):
                names.append(name)
    return names


def test_the_api_reference_documents_exactly_the_public_api_once_each():
    documented = documented_names()
    assert sorted(documented) == sorted(set(documented)), "a name documented twice"
    assert sorted(documented) == sorted(xraykit.__all__)


def test_the_facades_map_of_the_house_names_every_module():
    """``xraykit/__init__.py``'s docstring is the map a newcomer reads first: no module missing from it."""
    doc = xraykit.__doc__ or ""
    modules = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    missing = [str(m) for m in modules if (m.name if m.parent.name != "builtin" else "builtin/") not in doc]
    assert missing == []


def test_every_public_name_is_importable_from_the_facade():
    assert all(hasattr(xraykit, name) for name in xraykit.__all__)


def test_no_core_module_imports_a_builtin_plugin():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "builtin" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                if "builtin" in module.split(".") or any(a.name == "builtin" for a in node.names):
                    offenders.append(f"{path.relative_to(PACKAGE)}: from {module} import ...")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(PACKAGE)}: import {a.name}" for a in node.names if ".builtin" in a.name
                ]
    assert offenders == []


def test_importing_xraykit_picks_no_matplotlib_backend():
    code = "import sys, xraykit, xraykit.cli; print('matplotlib.pyplot' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
