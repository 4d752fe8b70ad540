"""Each bad input a command can be given is one error line, and a failed set-up leaves nothing behind.

Each row of ``CASES`` is one bad input (a damaged PNG in the training folder, a weights file
holding a NaN, an infinity or a tensor that is not floating point, a PneumoniaMNIST file with
one class, empty images or an empty split, an option value out of range, an ``--out`` that
cannot be written, a ``synth`` target that is a file or already a data set), the command that
meets it, and the fragments its error line must hold: exit code 2, one line on stderr, no
traceback, and for ``train`` no run folder left to block the rerun. A bad tensor in the
classification head is never loaded (the head is new), so that row trains. Under
``--skip-bad`` a damaged PNG is skipped instead, and the run records it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

import xraykit
from xraykit import runs
from xraykit.cli import app

from helpers import TINY, a_file, assert_one_line_error, data_folder
from test_bad_images import header_claiming, idat_flipped

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bad_inputs_table  # noqa: E402  (the one table of bad inputs; its file makers serve these tests too)

runner = CliRunner()


def with_bad(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = data_folder(tmp)
        (root / "train" / "PNEUMONIA" / name).write_bytes(content)
        return root

    return make


def npz(tmp: Path, **arrays) -> Path:
    """A small PneumoniaMNIST-like file, ``arrays`` replacing its parts: the table script's own maker."""
    return bad_inputs_table.npz(tmp / "pneumoniamnist.npz", **arrays)


def weights_file(tmp: Path, change: Callable[[dict], None]) -> Path:
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    change(state)
    path = tmp / "weights.pth"
    torch.save(state, path)
    return path


def set_(key: str, value) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        state[key] = value(state[key]) if callable(value) else value

    return change


def nan_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone(memory_format=torch.contiguous_format)  # a bf16 run's weights are channels-last
    t.view(-1)[3] = math.nan
    return t


def inf_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone(memory_format=torch.contiguous_format)
    t.view(-1)[0] = math.inf
    return t


def train_cmd(make_data: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["train", str(make_data(tmp)), "--out", str(tmp / "run"), *TINY, *extra]


def with_weights(change) -> Callable[[Path], list[str]]:
    return lambda tmp: [
        "train", str(data_folder(tmp)), "--out", str(tmp / "run"), *TINY, "--weights", str(weights_file(tmp, change)),
    ]  # fmt: skip


# (id, build the command in a temporary folder, fragments the one error line must hold)
CASES: list[tuple[str, Callable[[Path], list[str]], tuple[str, ...]]] = [
    ("png-idat-flipped", train_cmd(with_bad("flip.png", idat_flipped())), ("flip.png",)),
    ("png-header-2000x2000", train_cmd(with_bad("big.png", header_claiming(2000, 2000))), ("big.png",)),
    ("weights-nan", with_weights(set_("layer1.0.conv1.weight", nan_at)), ("'layer1.0.conv1.weight'", "1 NaN")),
    ("weights-inf", with_weights(set_("bn1.bias", inf_at)), ("'bn1.bias'", "infinite")),
    ("weights-int", with_weights(set_("conv1.weight", lambda t: t.long())), ("'conv1.weight'", "torch.int64")),
    ("weights-bool", with_weights(set_("fc.weight", lambda t: t > 0)), ()),  # the head is new: not loaded
    ("weights-bool-body", with_weights(set_("bn1.weight", lambda t: t > 0)), ("'bn1.weight'", "torch.bool")),
    ("npz-one-class", train_cmd(lambda t: npz(t, train_labels=np.zeros((12, 1), np.uint8))), ("one class",)),
    ("npz-0x0-images", train_cmd(lambda t: npz(t, train_images=np.zeros((12, 0, 0), np.uint8))), ("(0, 0) pixels",)),
    ("npz-empty-split", train_cmd(lambda t: npz(
        t, test_images=np.zeros((0, 28, 28), np.uint8), test_labels=np.zeros((0, 1), np.uint8))), ("empty test",)),
    ("npz-declares-52-GB", train_cmd(lambda t: bad_inputs_table.npz_declaring(t / "bomb.npz", (200_000, 512, 512))),
     ("train_images", "declares", "200000 x 512 x 512")),
    ("synthetic-n-0", train_cmd(lambda t: "synthetic:n=0"), ("n of at least 1",)),  # type: ignore[arg-type, return-value]
    ("device-foo", train_cmd(data_folder, "--device", "foo"), ("device 'foo'",)),
    ("lr-nan", train_cmd(data_folder, "--lr", "nan"), ("lr nan",)),
    ("lr-negative", train_cmd(data_folder, "--lr", "-1"), ("lr -1",)),
    ("batch-size-1-at-32px", train_cmd(data_folder, "--batch-size", "1"), ("batches of 1", "--batch-size")),
    ("train-out-is-a-file", lambda t: ["train", str(data_folder(t)), "--out", str(a_file(t)), *TINY], ("is a file",)),
    ("train-out-under-a-file",
     lambda t: ["train", str(data_folder(t)), "--out", str(a_file(t) / "run"), *TINY], ("is a file",)),
    ("train-out-under-proc",
     lambda t: ["train", str(data_folder(t)), "--out", "/proc/xraykit-no/run", *TINY], ("/proc/xraykit-no/run",)),
    ("synth-out-is-a-file", lambda t: ["synth", str(a_file(t)), "--n", "4", "--size", "16"], ("not a folder",)),
    ("synth-out-under-a-file",
     lambda t: ["synth", str(a_file(t) / "x"), "--n", "4", "--size", "16"], ("cannot write",)),
    ("synth-size-100000", lambda t: ["synth", str(t / "s"), "--size", "100000"], ("size from 16 to 1024",)),
    ("synth-contrast-nan", lambda t: ["synth", str(t / "s"), "--contrast", "nan"], ("contrast", "nan")),
    ("synth-into-a-data-set", lambda t: ["synth", str(data_folder(t)), "--n", "4", "--size", "16"], ("already holds",)),
]  # fmt: skip


@pytest.mark.parametrize("make, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_bad_input_is_one_error_line(tmp_path, make, fragments):
    args = make(tmp_path)
    result = runner.invoke(app, args)
    if args[0] == "train" and "--weights" in args and not fragments:  # a bad head is never loaded: trains
        assert result.exit_code == 0, result.output
        return
    assert_one_line_error(result, *fragments)
    if args[0] == "train":  # a failed set-up leaves no run folder behind to block the rerun
        out = Path(args[args.index("--out") + 1])
        assert not (out / "config.json").exists() and not (out / runs.RUN_MARKER).exists()


def test_a_corrupt_png_is_skipped_under_skip_bad_and_recorded(tmp_path):
    data = with_bad("flip.png", idat_flipped())(tmp_path)
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), *TINY, "--skip-bad"])
    assert result.exit_code == 0, result.output
    skipped = xraykit.Run(tmp_path / "run").record.skipped_files
    assert len(skipped) == 1 and "flip.png" in skipped[0]
