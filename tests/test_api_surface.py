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


def test_every_public_function_documents_each_of_its_parameters():
    """The reference renders a Parameters table from each docstring's Google-style ``Args:`` section: every
    public function has one, with an entry for each parameter (``**options`` too) and none for a parameter
    it does not take."""

    def args_entries(doc: str) -> list[str] | None:
        lines = doc.splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
        if start is None:
            return None
        indent = len(lines[start]) - len(lines[start].lstrip())
        entries, entry_indent = [], None
        for line in lines[start + 1 :]:
            if not line.strip():
                continue
            depth = len(line) - len(line.lstrip())
            if depth <= indent:
                break
            if entry_indent is None:
                entry_indent = depth
            match = re.match(r"^\s+\*{0,2}(\w+)(\s*\(.*?\))?:", line)
            if depth == entry_indent and match:
                entries.append(match.group(1))
        return entries

    problems = []
    for name in xraykit.__all__:
        fn = getattr(xraykit, name)
        if name == "hookimpl" or not inspect.isfunction(fn):
            continue
        entries = args_entries(inspect.getdoc(fn) or "")
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        where = "no Args: section" if entries is None else "not in its Args: section"
        problems += [f"{name}({p}): {where}" for p in params if p not in (entries or [])]
        problems += [f"{name}({e}): in its Args: section, not a parameter" for e in entries or [] if e not in params]
    assert problems == [], "\n".join(problems)
