"""One table of metrics: the terminal tables of ``evaluate`` and ``compare``, ``report.md`` and a notebook's
view all render the rows of ``xraykit.tables.ROWS``, so they show the same numbers, and a metric added
as one row appears in all four."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from xraykit import tables
from xraykit.cli_views import evaluate_view, results_table
from xraykit.report import write_report
from xraykit.tables import Metrics, Row, metric_rows

share = st.one_of(st.none(), st.floats(0, 1))


@st.composite
def metrics(draw):
    m = {
        "accuracy": draw(st.floats(0, 1)),
        "balanced_accuracy": draw(share),
        "per_class_accuracy": {"NORMAL": draw(share), "PNEUMONIA": draw(share)},
        "sensitivity": draw(share),
        "specificity": draw(share),
        "f1": draw(share),
        "roc_auc": draw(share),
        "majority_baseline": {"accuracy": 0.625, "class": "PNEUMONIA"},
        "classes": ["NORMAL", "PNEUMONIA"],
        "confusion_matrix": [[1, 2], [3, 4]],
        "data": "d",
    }
    if draw(st.booleans()):
        m["intervals"] = {"accuracy": [max(0.0, m["accuracy"] - 0.1), min(1.0, m["accuracy"] + 0.1)]}
    return m


class FakeRun:
    path = "runs/x"

    class config:
        backbone, task, lr, batch_size, epochs, image_size, recipe, seed = "r", "t", 1e-3, 8, 1, 32, "report", 0

    class record:
        validation = "validation: 10 images"


def words(text: str) -> str:
    return " ".join(re.sub(r"[│┃|<>/]", " ", text).split())


def views(m: dict, tmp_path) -> dict[str, str]:
    """The same metrics as each view shows them, as plain words."""
    console = Console(width=200, record=True)
    for line in evaluate_view(m):
        console.print(line)
    evaluate_text = console.export_text()
    console = Console(width=200, record=True)
    console.print(results_table({"tasks": {"A": m}}))
    write_report(tmp_path / "report.md", "t", {"A": FakeRun()}, {"A": m}, [], [])
    html = re.sub(r"<[^>]+>", " ", Metrics(m)._repr_html_())
    texts = {
        "evaluate": evaluate_text,
        "compare": console.export_text(),
        "report.md": (tmp_path / "report.md").read_text(),
        "notebook": html,
    }
    return {name: words(text) for name, text in texts.items()}


@given(metrics())
def test_every_view_shows_every_row_with_the_same_cell(tmp_path_factory, m):
    shown = views(m, tmp_path_factory.mktemp("report"))
    for label, (cell,) in metric_rows([m]):
        for name, text in shown.items():
            assert words(f"{label} {cell}") in text, (name, label)


def test_a_metric_added_as_one_row_appears_in_every_view(tmp_path, monkeypatch):
    m = {"accuracy": 0.9, "per_class_accuracy": {"NORMAL": 0.8}, "classes": ["NORMAL"], "data": "d", "brier": 0.123}
    m["confusion_matrix"] = [[1]]
    monkeypatch.setattr(tables, "ROWS", (*tables.ROWS, Row("Brier score", "brier", lambda m: f"{m['brier']:.3f}")))
    for name, text in views(m, tmp_path).items():
        assert "Brier score 0.123" in text, name


def test_a_row_is_shown_only_when_the_metrics_hold_its_key():
    labels = [label for label, _ in metric_rows([{"accuracy": 0.5}])]
    assert labels == ["accuracy"]


@pytest.mark.parametrize("which", ["best", "last"])
def test_the_other_checkpoints_row_names_which_checkpoint_it_is(which):
    m = {"accuracy": 0.5, "other_checkpoint": {"which": which, "epoch": 3, "accuracy": 0.75, "interval": [0.5, 0.9]}}
    assert (f"accuracy, {which} checkpoint (epoch)", ["75.0% (50.0-90.0) (3)"]) in metric_rows([m])
