"""Numbers as a class reads them, and the one table of metrics that every view renders.

A metric is one entry of :data:`ROWS`: its label, the key it reads from a metrics dict, and how
its cell is written. ``evaluate``'s and ``compare``'s terminal tables, ``report.md`` and a
notebook's view of the metrics all render these rows (:func:`metric_rows`), so a new metric
is one row here, and the four can never disagree. No torch here: the command line imports it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


def format_interval(
    value: Optional[float], interval: Optional[tuple[float, float]] = None, percent: bool = True
) -> str:
    """``91.2% (88.9-93.3)``, ``0.951 (0.930-0.968)``, or ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if percent:
        text = f"{100 * value:.1f}%"
        return text if interval is None else f"{text} ({100 * interval[0]:.1f}-{100 * interval[1]:.1f})"
    text = f"{value:.3f}"
    return text if interval is None else f"{text} ({interval[0]:.3f}-{interval[1]:.3f})"


def percent(x: float | None) -> str:
    """``0.625`` as ``62.5%``; a value that could not be computed as ``n/a``."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def with_interval(m: dict[str, Any], key: str, cls: str | None = None) -> str:
    """``m[key]`` (or ``m[key][cls]``) with its 95% interval when ``m`` holds one: ``91.2% (88.9-93.3)``;
    ROC AUC as ``0.951 (0.930-0.968)``."""
    value = m[key] if cls is None else m[key][cls]
    found = m.get("intervals", {}).get(key)
    interval = found.get(cls) if isinstance(found, dict) and cls is not None else found
    is_auc = key == "roc_auc"
    if value is None:
        return "n/a"
    if interval is None:
        return f"{value:.3f}" if is_auc else percent(value)
    return format_interval(value, tuple(interval), percent=not is_auc)


def checkpoint_accuracy(o: Optional[dict[str, Any]]) -> str:
    """The other checkpoint's test accuracy (``compare``'s ``other_checkpoint``) with its interval and epoch."""
    return "" if not o else f"{format_interval(o['accuracy'], tuple(o['interval']))} ({o['epoch']})"


def _baseline(m: dict[str, Any]) -> str:
    base = m["majority_baseline"]
    return percent(base["accuracy"]) + (f" (always {base['class']})" if base.get("class") else "")


def _interval(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda m: with_interval(m, key)


@dataclass(frozen=True)
class Row:
    """One metric: ``label`` in the first column, ``cell(metrics)`` in each results column. The row is
    shown when the metrics hold ``key``; a ``per_class`` row is shown once per class, ``{}`` in its label
    standing for the class name."""

    label: str
    key: str
    cell: Callable[..., str]
    per_class: bool = False


ROWS: tuple[Row, ...] = (
    Row("accuracy", "accuracy", _interval("accuracy")),
    Row("balanced accuracy", "balanced_accuracy", _interval("balanced_accuracy")),
    Row("accuracy on {}", "per_class_accuracy", lambda m, c: with_interval(m, "per_class_accuracy", c), True),
    Row("sensitivity", "sensitivity", _interval("sensitivity")),
    Row("specificity", "specificity", _interval("specificity")),
    Row("F1", "f1", lambda m: percent(m["f1"])),
    Row("ROC AUC", "roc_auc", _interval("roc_auc")),
    Row("majority baseline", "majority_baseline", _baseline),
    # compare's own rows: the checkpoint the recipe did not choose (so a bad last epoch reads as one), the cost
    Row("accuracy, other checkpoint (epoch)", "other_checkpoint", lambda m: checkpoint_accuracy(m["other_checkpoint"])),
    Row("trainable / total parameters", "trainable_parameters", lambda m: _parameters(m)),
    Row("seconds per epoch", "seconds_per_epoch", lambda m: f"{m['seconds_per_epoch']:.1f}"),
    Row("starting weights", "weights", lambda m: str(m["weights"])),
)


def metric_rows(results: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Each row of :data:`ROWS` that the first of ``results`` holds: its label and one cell per result
    (empty where a result lacks the key)."""
    if not results:
        return []
    first, rows = results[0], []
    for row in ROWS:
        if row.key not in first:
            continue
        if row.per_class:
            for c in first[row.key]:
                cells = [row.cell(m, c) if c in m.get(row.key, {}) else "" for m in results]
                rows.append((row.label.format(c), cells))
        else:
            label = row.label
            if row.key == "other_checkpoint" and first[row.key]:
                label = label.replace("other", first[row.key]["which"])
            rows.append((label, [row.cell(m) if row.key in m else "" for m in results]))
    return rows


INTERVALS_NOTE = "In brackets: 95% intervals."


def html_table(rows: list[tuple[str, str]], caption: str = "") -> str:
    """Two columns, name and value, as an HTML table: how a notebook shows a run or its metrics."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{title}{body}</table>"


class Metrics(dict):
    """``evaluate``'s numbers: a plain ``dict`` (JSON as it is) that a notebook shows as a small table."""

    def _repr_html_(self) -> str:
        rows = [(label, cells[0]) for label, cells in metric_rows([self])]
        return html_table(rows, INTERVALS_NOTE if "intervals" in self else "")


def paired_sentence(paired: dict[str, Any]) -> str:
    """``Task 1.2 minus Task 1.1 in accuracy, on the same 160 test images: +1.8 points (95% interval ...``."""
    diff, (lo, hi) = paired["difference"], paired["interval"]
    p = paired["mcnemar_p"]
    p_text = f"= {p:.2g}" if p >= 0.001 else "< 0.001"
    a, b = paired["a"].split(":")[0], paired["b"].split(":")[0]
    return (
        f"{b} minus {a} in accuracy, on the same {paired['images']} test images: {100 * diff:+.1f} points "
        f"(95% interval {100 * lo:+.1f} to {100 * hi:+.1f}); McNemar's exact p {p_text} "
        f"({paired['only_b']} images right only by {b}, {paired['only_a']} only by {a})"
    )


def _parameters(m: dict[str, Any]) -> str:
    total = m.get("total_parameters")
    return f"{m['trainable_parameters']:,}" + (f" / {total:,}" if total is not None else "")
