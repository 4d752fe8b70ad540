"""Nothing lost: a run killed at any moment leaves a folder that loads, and resumes to the same weights.

Every output file is written under a temporary name and renamed over the old one
(:mod:`xraykit.io`), so a reader sees either the old file or the new one, never half of
one. A training run killed with SIGKILL in the middle of an epoch (no handler, no
cleanup) leaves ``config.json``, ``history.json`` and ``checkpoints/last.pt`` loadable,
and ``xraykit train --resume RUN`` finishes with exactly the weights of a run that was
never interrupted (CPU, same seed).
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app
from xraykit.io import atomic_path, read_json, save_torch, write_text
from xraykit.weights import safe_load

from helpers import write_folder
from histories import without_timings

runner = CliRunner()
SRC = Path(xraykit.__file__).parent
TRAIN_ARGS = ["--epochs", "3", "--batch-size", "8", "--image-size", "32", "--seed", "0", "--quiet"]


def subprocess_env() -> dict:
    """The child computes with as many threads as this process: float sums then agree to the bit."""
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONWARNINGS": "ignore"}


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended (exit {proc.returncode}) before it could be killed:\n"
                f"{proc.stdout.read() if proc.stdout else ''}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.01)


def epochs_saved(run: Path) -> int:
    try:
        return len(read_json(run / "history.json"))
    except (FileNotFoundError, ValueError):
        return 0


def start_training(data: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xraykit", "train", str(data), "--out", str(out), *TRAIN_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(),
    )


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def data(module_tmp) -> Path:
    """16 images of 32 px, no val/: validation (2 images) is carved from train by the seed; batches of 8 and 6.

    Tiny on purpose: a step of ResNet-18 costs its 11 M parameters' worth whatever the image size.
    """
    return write_folder(module_tmp / "kill" / "DATA", n=8)


@pytest.fixture(scope="module")
def uninterrupted(data, module_tmp) -> Path:
    out = module_tmp / "full" / "run"
    result = runner.invoke(app, ["train", str(data), "--out", str(out), *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    return out


def assert_same_training(run: Path, reference: Path) -> None:
    got, want = safe_load(run / "checkpoints" / "last.pt"), safe_load(reference / "checkpoints" / "last.pt")
    assert got["epoch"] == want["epoch"] == 3
    assert got["model"].keys() == want["model"].keys()
    for key in want["model"]:
        assert torch.equal(got["model"][key], want["model"][key]), key
    assert without_timings(read_json(run / "history.json")) == without_timings(read_json(reference / "history.json"))


# ----------------------------------------------------------------------------- killing a training run


def test_a_run_killed_mid_epoch_loads_and_resumes_to_the_uninterrupted_weights(data, uninterrupted, tmp_path):
    run = tmp_path / "run"
    proc = start_training(data, run)
    wait_for(lambda: epochs_saved(run) >= 1, proc)  # epoch 1 is saved: epoch 2 is under way
    kill(proc)

    # What a killed run leaves behind loads, file by file.
    loaded = xraykit.Run(run)
    assert loaded.config.seed == 0 and loaded.config.epochs == 3
    assert 1 <= len(loaded.history) < 3
    assert loaded.load_checkpoint("last")["epoch"] == len(loaded.history)
    loaded.load_model("last")

    half_written = run / "checkpoints" / ".last.pt.k1ll3d.tmp"  # what a kill during a save leaves
    half_written.write_bytes(b"PK\x03\x04 half a zip")
    result = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert_same_training(run, uninterrupted)
    assert not half_written.exists()


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(data, uninterrupted, tmp_path):
    run = tmp_path / "run"
    proc = start_training(data, run)
    wait_for(lambda: (run / "config.json").is_file(), proc)
    kill(proc)
    xraykit.Run(run)  # config.json loads

    result = runner.invoke(app, ["train", "--resume", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert_same_training(run, uninterrupted)


def test_resume_with_more_epochs_extends_a_finished_run(tmp_path):
    data, run = write_folder(tmp_path / "DATA", n=6), tmp_path / "run"
    args = ["--batch-size", "8", "--image-size", "32", "--quiet"]
    assert runner.invoke(app, ["train", str(data), "--out", str(run), "--epochs", "1", *args]).exit_code == 0
    result = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert [h["epoch"] for h in read_json(run / "history.json")] == [1, 2]
    assert read_json(run / "config.json")["epochs"] == 2


# ----------------------------------------------------------------------------- atomic writes


def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "history.json"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half of the ne")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_a_checkpoint_being_rewritten_when_the_process_is_killed_still_loads(tmp_path):
    """A child rewrites one 8 MB checkpoint in a loop; killed at whatever moment, the file is one whole version."""
    path = tmp_path / "last.pt"
    child = textwrap.dedent(f"""
        import torch
        from xraykit.io import save_torch
        for i in range(1_000_000):
            save_torch({str(path)!r}, {{"epoch": i, "model": {{"w": torch.full((2_000_000,), float(i))}}}})
            if i == 0:
                print("saved", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert proc.stdout.readline().strip() == "saved"
    time.sleep(0.3)
    kill(proc)
    state = safe_load(path)
    assert torch.equal(state["model"]["w"], torch.full((2_000_000,), float(state["epoch"])))


# The decode cache does its own temporary-and-rename (without fsync) and checks entries on reading.
ALLOWED_FILES = {"io.py", "data/cache.py"}


def _direct_write(call: ast.Call) -> bool:
    """A call that writes a file other than the temporary path ``atomic_path`` hands out (named ``tmp``)."""
    func = call.func
    args = [ast.unparse(a) for a in call.args]
    if isinstance(func, ast.Name):  # xraykit.io's own write_text(path, text) is the right way, not a match
        name = func.id if func.id == "open" else ""
    else:
        name = func.attr if isinstance(func, ast.Attribute) else ""
    if name in ("write_text", "write_bytes"):
        return ast.unparse(func.value) != "tmp"
    if name in ("save", "savefig"):  # torch.save(obj, path), np.save(path, a), image.save(path), fig.savefig(path)
        return "tmp" not in args
    if name == "dump" and ast.unparse(func.value) in ("json", "pickle"):
        return True
    if name in ("open", "fdopen"):
        mode = (
            args[1] if len(args) > 1 else next((ast.unparse(k.value) for k in call.keywords if k.arg == "mode"), "'r'")
        )
        return any(c in mode for c in "wax+") and (not args or args[0] != "tmp")
    return False


def writes_outside_io(package: Path) -> list[str]:
    """Calls outside io.py that open a file for writing, save a figure, tensor, array or image, or write text
    or bytes, except into the temporary path of ``with atomic_path(dst) as tmp``."""
    offenders = []
    for file in sorted(package.rglob("*.py")):
        rel = file.relative_to(package).as_posix()
        if rel in ALLOWED_FILES:
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _direct_write(node):
                offenders.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return offenders


def test_every_output_file_is_written_through_xraykit_io():
    assert writes_outside_io(SRC) == []


@pytest.mark.parametrize(
    "line",
    [
        "Path(out).write_text(report)",
        'fig.savefig(out / "a.png")',
        "torch.save(state, path)",
        'with open(path, "w") as f: pass',
        'img.save(out / "x.png")',
        "json.dump(d, f)",
        'open(path, mode="ab")',
    ],
)
def test_the_write_detector_catches_a_direct_write(tmp_path, line):
    (tmp_path / "report.py").write_text(f"def f():\n    {line}\n")
    assert len(writes_outside_io(tmp_path)) == 1


@pytest.mark.parametrize(
    "line",
    [
        "tmp.write_text(report)",
        'fig.savefig(tmp, format="png")',
        "open(path)",
        'open(path, "rb")',
        'msg = "save with torch.save(model.state_dict(), PATH)"',
    ],
)
def test_the_write_detector_lets_reads_and_atomic_writes_pass(tmp_path, line):
    (tmp_path / "report.py").write_text(f"def f():\n    {line}\n")
    assert writes_outside_io(tmp_path) == []


def test_save_torch_output_loads_with_weights_only(tmp_path):
    save_torch(tmp_path / "c.pt", {"model": {"w": torch.ones(2)}, "history": [{"epoch": 1}], "epoch": 1})
    assert safe_load(tmp_path / "c.pt")["history"] == [{"epoch": 1}]
