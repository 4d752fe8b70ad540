"""How commands write their files, and what they check before writing any.

``evaluate`` and ``explain`` given an ``--out`` that cannot be made (below a file) say so in
one line; ``explain`` writes one figure per image even when two images share a file name.
``compare`` names a mistyped data path, then missing ImageNet weights for Task 1.2, before it
trains Task 1.1. Every file goes through :mod:`xraykit.io`: a full disk while saving a
checkpoint is one line and leaves no partial file, files follow the umask, and JSON is strict
(NaN and infinity are written as ``null``). The ``good_run`` fixture (``tests/conftest.py``)
is a finished run trained once for this file.
"""

from __future__ import annotations

import json
import math
import os
import stat

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit import io as xio
from xraykit.cli import app
from xraykit.errors import XrayError

from helpers import TINY, a_file, assert_one_line_error, data_folder, write_folder

runner = CliRunner()


def test_explain_on_two_images_with_one_stem_writes_two_figures(good_run, tmp_path):
    for cls, shade in (("NORMAL", 40), ("PNEUMONIA", 200)):
        (tmp_path / cls).mkdir()
        Image.new("L", (32, 32), shade).save(tmp_path / cls / "x.png")
    written = xraykit.explain(
        good_run, [tmp_path / "NORMAL" / "x.png", tmp_path / "PNEUMONIA" / "x.png"], out=tmp_path / "e"
    )
    assert len({p.name for p in written}) == 2 and all(p.is_file() for p in written)
    again = xraykit.explain(good_run, [tmp_path / "NORMAL" / "x.png"] * 2, out=tmp_path / "f")
    assert len({p.name for p in again}) == 2


@pytest.mark.parametrize("command", ["evaluate", "explain"])
def test_an_out_that_is_a_file_is_one_line_for_evaluate_and_explain(good_run, tmp_path, command):
    blocker = a_file(tmp_path)
    image = tmp_path / "x.png"
    Image.new("L", (32, 32), 90).save(image)
    target = str(write_folder(tmp_path / "d", splits=("test",))) if command == "evaluate" else str(image)
    result = runner.invoke(app, [command, str(good_run), target, "--out", str(blocker / "sub")])
    assert_one_line_error(result, "cannot write")


def test_compare_checks_task_1_2s_weights_before_training_task_1_1(tmp_path):
    data = data_folder(tmp_path)
    result = runner.invoke(app, ["compare", str(data), "--out", str(tmp_path / "c"), *TINY])
    assert_one_line_error(result, "ImageNet weights")
    assert not (tmp_path / "c" / "task1.1-scratch").exists()


def test_compare_names_a_wrong_data_path_before_the_missing_weights(tmp_path):
    # Offline and with a typo in the path: the typo is what the user can fix now, so it is what they hear.
    result = runner.invoke(app, ["compare", str(tmp_path / "chest_xary"), "--out", str(tmp_path / "c"), *TINY])
    assert_one_line_error(result, "chest_xary: no such folder")


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    def full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/3")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(XrayError, match="cannot write this file.*is the disk full"):
        xio.save_torch(tmp_path / "x.pt", {"a": torch.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        xio.write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        xio.write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_json_is_strict_nan_and_infinity_become_null(tmp_path):
    xio.write_json(tmp_path / "h.json", [{"loss": math.nan, "auc": math.inf, "ok": 0.5, "n": [1.0, -math.inf]}])
    text = (tmp_path / "h.json").read_text()
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert parsed == [{"loss": None, "auc": None, "ok": 0.5, "n": [1.0, None]}]
