"""The command line answers ``--help`` and ``--version`` at once: nothing heavy (torch, matplotlib,
captum) is imported until a command runs. Timed in benchmarks/cli_startup.py, not here."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from xraykit.cli import app

HEAVY = ("torch", "torchvision", "matplotlib", "captum")
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def modules_loaded_by(args: list[str]) -> set[str]:
    code = (
        "import sys\nfrom xraykit.cli import main\n"
        f"sys.argv = ['xraykit', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (line,) = (line for line in result.stdout.splitlines() if line.startswith("loaded:"))
    return set(line.split()[1:])


@pytest.mark.parametrize("args", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)], ids=str)
def test_help_and_version_answer_without_importing_torch_or_matplotlib(args):
    assert modules_loaded_by(args) == set()


def test_importing_the_package_imports_nothing_heavy_until_a_name_is_used():
    code = "import sys, xraykit; print('torch' in sys.modules); xraykit.train; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_and_argument_of_every_command_has_a_help_text(command):
    cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    silent = [p.name for p in cmd.params if not getattr(p, "help", None)]
    assert silent == []
