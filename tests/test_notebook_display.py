"""In a notebook, a run and its metrics show as small tables, not as walls of text."""

import json
import re

import xraykit


def cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>.*?</t[dh]>", html, flags=re.S)]


def test_a_run_shows_its_task_recipe_and_last_epoch_as_a_table(tiny_run):
    html = xraykit.Run(tiny_run.path)._repr_html_()
    shown = cells(html)
    assert html.lstrip().startswith("<table")
    assert tiny_run.config.task in shown and tiny_run.config.recipe in shown
    last = tiny_run.history[-1]
    assert f"{last['val_loss']:.4f}" in " ".join(shown)


def test_evaluate_returns_a_dict_that_shows_each_number_with_its_interval(tiny_run, tiny_splits):
    metrics = xraykit.evaluate(tiny_run, tiny_splits, quiet=True)
    assert json.loads(json.dumps(metrics))["accuracy"] == metrics["accuracy"]  # still a plain mapping
    shown = " ".join(cells(metrics._repr_html_()))
    low, high = metrics["intervals"]["accuracy"]
    assert f"{100 * metrics['accuracy']:.1f}% ({100 * low:.1f}-{100 * high:.1f})" in shown
    for name in metrics["per_class_accuracy"]:
        assert name in shown
