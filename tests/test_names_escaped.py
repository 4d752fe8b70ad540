"""File, folder and class names are text wherever they go: the terminal, report.md, figure titles.

Rich reads ``[viral]`` as a style and ``[/x]`` as a closing tag, Markdown reads ``<img ...>`` as
HTML, matplotlib reads ``$...$`` as mathematics. A name is none of these: it is printed, written
and drawn as it is. The ``good_run`` fixture (``tests/conftest.py``) is a finished run trained
once for this file.
"""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import numpy as np
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app
from xraykit.report import write_report

from helpers import TINY

runner = CliRunner()
HOSTILE = "PNEUMONIA [viral] <img src=x onerror=alert(1)>"


def hostile_folder(root):
    """Two classes, NORMAL and one whose folder name is Rich markup and HTML at once; four images each."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, cls in enumerate(("NORMAL", HOSTILE)):
            (root / split / cls).mkdir(parents=True)
            for i in range(6):
                pixels = rng.integers(0, 120, (32, 32)) + 100 * c
                Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / split / cls / f"p{c}{i}_{split}.png")
    return root


def test_class_and_folder_names_reach_the_terminal_and_report_md_as_they_are(tmp_path):
    data = hostile_folder(tmp_path / "scans [v2]" / "d[" / "x]")  # the path holds "[/x]", a closing tag to Rich
    wide = {"COLUMNS": "300"}  # rich wraps long paths at 80 columns when it cannot see a terminal
    trained = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), *TINY[:-1]], env=wide)
    assert trained.exit_code == 0, trained.output
    assert "scans [v2]/d[/x]" in trained.output
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), str(data), "--out", str(tmp_path / "m")], env=wide)
    assert result.exit_code == 0, result.output
    assert "accuracy on PNEUMONIA [viral] <img src=x onerror=alert(1)>" in result.output

    metrics = xraykit.evaluate(tmp_path / "run", data, out=tmp_path / "m2", quiet=True, cam=False)
    run = xraykit.Run(tmp_path / "run")
    write_report(tmp_path / "report.md", "t", {"Task": run}, {"Task": metrics}, [], [])
    page = (tmp_path / "report.md").read_text()
    assert "<img" not in page  # shown as text, not made an element
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_plugin_description_with_markup_prints_as_it_is(monkeypatch):
    from xraykit import plugins

    real = plugins.entries

    def described(kind):
        shown = SimpleNamespace(description="a [/x] description [bold]")
        return {name: dataclasses.replace(e, obj=shown, plugin="p[v2]") for name, e in real(kind).items()}

    monkeypatch.setattr(plugins, "entries", described)
    result = runner.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "a [/x] description [bold]" in result.output and "p[v2]" in result.output


def test_an_image_named_like_mathematics_is_drawn_with_its_name(good_run, tmp_path):
    image = tmp_path / "a$\\foo$.png"
    Image.new("L", (32, 32), 90).save(image)
    result = runner.invoke(app, ["explain", str(good_run), str(image), "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert re.search(r"_cam\.png", result.output)
