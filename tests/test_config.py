"""Every option is checked once, where the config is made: a bad value is one XrayError naming the option,
before any image is loaded or any folder made, from Python, the command line and ``--resume`` alike."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import xraykit
from xraykit import training
from xraykit.cli import app
from xraykit.config import RunRecord, TrainConfig

from helpers import assert_one_line_error

OLD_RUN = (
    Path(__file__).parent / "fixtures" / "old_run"
)  # config.json and history.json as the code of issue 12 wrote them

# option -> values it must refuse
INVALID = {
    "schedule": st.sampled_from(["cosin", "Cosine", "", "linear"]),
    "select": st.sampled_from(["Best", "first", ""]),
    "class_weights": st.sampled_from(["balanced", "Auto", ""]),
    "recipe": st.sampled_from(["reports", "STRONG", ""]),
    "epochs": st.one_of(st.integers(max_value=0), st.just(2.5), st.just("ten")),
    "batch_size": st.one_of(st.integers(max_value=0), st.just("32")),
    "image_size": st.one_of(st.integers(max_value=15), st.integers(min_value=1025), st.just(64.0)),
    "lr": st.one_of(st.floats(max_value=0), st.just(math.inf), st.just(math.nan), st.just("fast")),
    "val_from_train": st.one_of(st.floats(min_value=1), st.floats(max_value=0), st.just(math.nan)),
    "seed": st.one_of(st.integers(max_value=-1), st.just(1.5), st.just("0")),
    "device": st.sampled_from(["gpu", "cuda:x", "", "CPU"]),
}


@pytest.fixture
def no_images(monkeypatch):
    """Loading data fails the test: validation must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("an image was loaded before the options were checked")

    monkeypatch.setattr(training, "load_data", refuse)


def test_a_misspelt_schedule_names_the_option_and_the_allowed_words_before_any_image_loads(no_images, tmp_path):
    with pytest.raises(xraykit.XrayError, match=r"^schedule 'cosin' is not one of: constant, cosine$"):
        xraykit.train("synthetic", schedule="cosin", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_cli_prints_that_one_line_with_exit_code_2(no_images, tmp_path):
    result = CliRunner().invoke(app, ["train", "synthetic", "--schedule", "cosin", "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "schedule 'cosin' is not one of: constant, cosine")


@given(st.data())
def test_any_invalid_option_is_an_xray_error_and_no_run_starts(no_images, tmp_path, data):
    option = data.draw(st.sampled_from(sorted(INVALID)))
    value = data.draw(INVALID[option])
    out = tmp_path / "run"
    with pytest.raises(xraykit.XrayError) as raised:
        xraykit.train("synthetic", out=out, quiet=True, **{option: value})
    assert str(raised.value).startswith(option) and "\n" not in str(raised.value)
    assert not out.exists()


def test_a_validation_fraction_outside_0_1_never_reaches_the_split(no_images, tmp_path):
    result = CliRunner().invoke(app, ["train", "synthetic", "--val-from-train", "1.5", "--out", str(tmp_path / "r")])
    assert_one_line_error(result, "val_from_train 1.5", "between 0 and 1")


def test_compare_checks_its_options_before_loading_anything(monkeypatch, tmp_path):
    from xraykit import comparing

    monkeypatch.setattr(comparing, "load_data", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(xraykit.XrayError, match="^recipe 'best' is not one of: report, strong$"):
        xraykit.compare("synthetic", out=tmp_path, recipe="best")


def test_a_recipe_fills_only_the_options_not_given():
    config = TrainConfig.for_recipe("strong", schedule="constant", select="best")
    assert (config.schedule, config.select, config.augment, config.class_weights) == (
        "constant",
        "best",
        "strong",
        "auto",
    )
    assert config.normalize == "equalize" and config.label_smoothing == 0.1  # the rest from the recipe


def test_an_old_run_folder_with_extra_still_loads_its_config_and_record(tmp_path):
    run = xraykit.Run(shutil.copytree(OLD_RUN, tmp_path / "old"))
    assert "extra" in json.loads((OLD_RUN / "config.json").read_text())
    assert (run.config.task, run.config.epochs, run.config.image_size, run.classes) == (
        "scratch",
        1,
        32,
        ("NORMAL", "PNEUMONIA"),
    )
    assert isinstance(run.record, RunRecord)
    assert (run.record.train_images, run.record.val_images) == (14, 2)
    assert run.record.trainable_parameters == run.record.total_parameters == 11171266
    assert run.record.weights_loaded == "random initialisation" and run.record.versions["xraykit"] == "0.1.0"
    assert [h["epoch"] for h in run.history] == [1]


def test_a_new_run_writes_its_record_under_record(tiny_run):
    written = json.loads((tiny_run.path / "config.json").read_text())
    assert "extra" not in written and written["record"]["train_images"] == tiny_run.record.train_images > 0
    assert TrainConfig.from_dict(written) == tiny_run.config


@pytest.mark.parametrize("key, value", [("epochs", "ten"), ("lr", "fast"), ("seed", None), ("schedule", "cosin")])
def test_a_config_json_value_of_the_wrong_kind_names_the_file_and_the_key(tmp_path, key, value):
    folder = shutil.copytree(OLD_RUN, tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(xraykit.XrayError) as raised:
        xraykit.Run(folder)
    assert str(raised.value).startswith(f"{folder / 'config.json'}: {key} ")
    result = CliRunner().invoke(app, ["train", "--resume", str(folder)])
    assert_one_line_error(result, "config.json", key)


def test_resume_checks_a_new_number_of_epochs_like_train(tmp_path):
    folder = shutil.copytree(OLD_RUN, tmp_path / "old")
    result = CliRunner().invoke(app, ["train", "--resume", str(folder), "--epochs", "0"])
    assert_one_line_error(result, "epochs 0 is not a whole number of at least 1")
