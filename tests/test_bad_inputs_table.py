"""The table of every bad input the project knows (``scripts/bad_inputs_table.py``), run as a test.

Each row runs the real ``xraykit`` command in a process of its own (forked from one that imported
torch once: ``scripts/cli_launcher.py``); the table must show 0 tracebacks and 0 silent wrong
results (a bad input accepted, a valid one refused, a skip not made).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bad_inputs_table.py"
sys.path.insert(0, str(SCRIPT.parent))
from cli_launcher import Launcher  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 70 commands, most of them a tiny training: minutes, not seconds
@pytest.mark.skipif(shutil.which("xraykit") is None, reason="the xraykit command is not installed")
def test_the_bad_inputs_table_has_no_traceback_and_no_silent_wrong_result():
    spec = importlib.util.spec_from_file_location("bad_inputs_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = table  # its dataclass looks its module up by name
    spec.loader.exec_module(table)
    results, summary = table.table(jobs=min(4, os.cpu_count() or 1))
    failures = [
        f"{row.label}: exit {code}, {seen} ({verdict})" for row, code, seen, _, verdict in results if verdict != "ok"
    ]
    assert not failures, "\n".join(failures)
    assert summary.endswith("0 tracebacks, 0 silent wrong results"), summary
    assert len(results) >= 60, summary


@pytest.mark.skipif(shutil.which("xraykit") is None, reason="the xraykit command is not installed")
def test_a_command_forked_by_the_launcher_reports_what_a_fresh_process_reports(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "1000"}
    cases = [["--version"], ["train", str(tmp_path / "missing")], ["predict"], ["evaluate", str(tmp_path), "x"]]
    launcher = Launcher(env)
    try:
        for args in cases:
            fresh = subprocess.run(["xraykit", *args], capture_output=True, env=env)
            expected = (fresh.returncode, fresh.stdout.decode(), fresh.stderr.decode())
            assert launcher.run(args) == expected, args
    finally:
        launcher.close()
    assert launcher.server.returncode == 0
