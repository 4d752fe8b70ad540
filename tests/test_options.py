"""Each training option is declared once, as a field of TrainConfig with its default, help and choices:
``xraykit train`` and ``xraykit compare`` list exactly those options with those defaults, the command line
and the Python API make the same config from the same options, and a recipe fills only what is not given."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import xraykit
from xraykit import comparing
from xraykit.cli import app
from xraykit.config import RECIPES, TrainConfig, option_names, recipe_fields

COMMANDS = typer.main.get_command(app).commands
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def cli_options(command: str) -> dict:
    """A command's options by their Python name (``--batch-size`` is ``batch_size``)."""
    return {p.name: p for p in COMMANDS[command].params if p.param_type_name == "option"}


def test_train_offers_every_option_a_user_sets_and_compare_the_ones_both_tasks_share():
    assert set(option_names()) <= set(cli_options("train"))
    assert set(option_names(per_task=False)) <= set(cli_options("compare"))
    assert {"task", "lr"}.isdisjoint(cli_options("compare"))  # each task has its own
    assert {"data", "classes", "num_classes", "record"}.isdisjoint(cli_options("train"))  # xraykit fills these


@pytest.mark.parametrize("name", option_names())
def test_each_train_option_has_its_fields_default_or_none_where_a_recipe_or_task_decides(name):
    option = cli_options("train")[name]
    decided_elsewhere = FIELDS[name].metadata["recipe"] or name == "epochs"  # epochs: --resume keeps the run's
    assert option.default == (None if decided_elsewhere else FIELDS[name].default)
    assert FIELDS[name].metadata["help"] in option.help


@pytest.mark.parametrize("name", [n for n in option_names() if FIELDS[n].metadata["choices"]])
def test_help_lists_the_choices_of_each_option_that_has_them(name):
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert "[" + "|".join(FIELDS[name].metadata["choices"]) + "]" in result.output


def test_each_recipe_sets_exactly_the_options_declared_as_its_own():
    for recipe, values in RECIPES.items():
        assert set(values) == set(recipe_fields()), recipe
    assert RECIPES["report"] == {name: FIELDS[name].default for name in recipe_fields()}


def test_an_unknown_keyword_is_one_error_naming_it_and_the_options():
    with pytest.raises(xraykit.XrayError, match=r"^'epoch' is not a training option; options: task, backbone"):
        xraykit.train("synthetic", epoch=3)


def test_compare_refuses_an_option_each_task_sets_for_itself():
    with pytest.raises(xraykit.XrayError, match="compare trains each task with its own lr"):
        xraykit.compare("synthetic", lr=0.1)


class Made(Exception):
    """Raised with the config a command made, before anything is loaded."""


@pytest.fixture
def made_config(monkeypatch):
    """``training.train`` stops as soon as its config is complete and hands it over in :class:`Made`."""
    original = TrainConfig.with_task_defaults

    def stop(self, weights, lr):
        raise Made(original(self, weights, lr))

    monkeypatch.setattr(TrainConfig, "with_task_defaults", stop)


def config_from(call) -> TrainConfig:
    with pytest.raises(Made) as made:
        call()
    return made.value.args[0]


OPTION_VALUES = {
    "epochs": st.integers(1, 30),
    "batch_size": st.integers(1, 64),
    "image_size": st.integers(16, 256),
    "seed": st.integers(0, 10**6),
    "lr": st.floats(1e-6, 1.0),
    "label_smoothing": st.floats(0, 0.45),
    "val_from_train": st.floats(0.05, 0.5),
    "balanced_sampler": st.booleans(),
    "feature_cache": st.booleans(),
    "weights": st.sampled_from(["none", "imagenet"]),
    **{
        name: st.sampled_from(FIELDS[name].metadata["choices"])
        for name in option_names()
        if FIELDS[name].metadata["choices"]
    },
}


def as_arguments(options: dict) -> list[str]:
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        args += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return args


@given(st.fixed_dictionaries({}, optional=OPTION_VALUES))
def test_the_command_line_and_the_python_api_make_the_same_config_from_the_same_options(made_config, options):
    from_api = config_from(lambda: xraykit.train("synthetic", "scratch", **options))
    result = CliRunner().invoke(app, ["train", "synthetic", *as_arguments(options)], catch_exceptions=True)
    assert isinstance(result.exception, Made), result.output
    assert result.exception.args[0] == from_api


def test_compare_passes_its_options_to_both_tasks(monkeypatch):
    seen = []

    def fake_train(data, task, **options):
        seen.append((task, options))
        raise Made()

    monkeypatch.setattr(comparing, "load_data", lambda data, size: {"test": object()})
    monkeypatch.setattr(comparing, "held_out_test", lambda splits, name: None)
    monkeypatch.setattr(comparing, "train", fake_train)
    with pytest.raises(Made):
        xraykit.compare("synthetic", out="unused", epochs=3, augment="light", finetune_weights="none")
    task, options = seen[0]
    assert task == "scratch" and options["epochs"] == 3 and options["augment"] == "light"
