"""No command writes inside a data set it reads, over one of its own inputs, or into another run's folder.

A figure written into ``DATA/test/PNEUMONIA`` becomes a test image of the next evaluation; a
``checkpoints/`` folder written into ``DATA/train`` becomes a class of the next training. Each is
refused before anything is written, in one line naming both folders. The ``good_run`` fixture
(``tests/conftest.py``) is a finished run trained once for this file.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from xraykit.cli import app

from helpers import TINY, assert_one_line_error, data_folder, write_folder

runner = CliRunner()


def xraykit(*args):
    return runner.invoke(app, [str(a) for a in args])


def files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("inside", ["train", "train/NORMAL", "."])
def test_train_refuses_an_out_inside_its_data(tmp_path, inside):
    data = data_folder(tmp_path)
    before = files_under(data)
    result = xraykit("train", data, "--out", data / inside / "run", *TINY)
    assert_one_line_error(result, "inside the data", str(data))
    assert files_under(data) == before


@pytest.mark.parametrize("command", ["evaluate", "shift"])
def test_evaluate_and_shift_refuse_an_out_inside_the_test_images(good_run, tmp_path, command):
    test = write_folder(tmp_path / "new", splits=("test",))
    before = files_under(test)
    result = xraykit(command, good_run, test, "--out", test / "test" / "PNEUMONIA")
    assert_one_line_error(result, "inside the data")
    assert files_under(test) == before


def test_explain_refuses_an_out_in_an_image_folder_of_a_data_set(good_run, tmp_path):
    """Its figures are PNGs: inside a class folder they would be read as X-rays of that class."""
    data = data_folder(tmp_path)
    image = next((data / "test" / "NORMAL").glob("*.png"))
    result = xraykit("explain", good_run, image, "--out", data / "test" / "NORMAL")
    assert_one_line_error(result, "class folder")


def test_explain_never_writes_a_figure_over_one_of_its_input_images(good_run, tmp_path):
    scan, other = tmp_path / "scan.png", tmp_path / "scan_cam.png"
    for path, shade in ((scan, 60), (other, 180)):
        Image.new("L", (32, 32), shade).save(path)
    before = other.read_bytes()
    result = xraykit("explain", good_run, scan, other, "--out", tmp_path)
    assert_one_line_error(result, "scan_cam.png", "input")
    assert other.read_bytes() == before


def test_evaluate_refuses_to_write_into_another_runs_folder(good_run, tmp_path):
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"backbone": "resnet18"}))
    (other / "metrics.json").write_text('{"accuracy": 0.9}')
    test = write_folder(tmp_path / "new", splits=("test",))
    result = xraykit("evaluate", good_run, test, "--out", other)
    assert_one_line_error(result, "another run")
    assert json.loads((other / "metrics.json").read_text()) == {"accuracy": 0.9}


def test_an_out_beside_the_data_is_fine(good_run, tmp_path):
    test = write_folder(tmp_path / "new", splits=("test",))
    result = xraykit("evaluate", good_run, test, "--out", tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "metrics.json").is_file()
