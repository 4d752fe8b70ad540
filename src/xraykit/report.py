"""``report.md``: one page with both tasks' numbers and figures, for a class to read."""

from __future__ import annotations

import html
import math
import shlex
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

from .io import write_text

CREDIT = (
    "Real chest X-rays: Kermany, Zhang and Goldbaum (2018), Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0."
)


def last_epoch_note(label: str, history: list[dict], select: str, run_path, data: str) -> str | None:
    """A warning when a run that keeps its last epoch (the report's recipe) ended far worse than its best.

    ``data`` is the DATA argument as the user would type it. The report's recipe scores the
    weights after the last epoch, whatever that epoch was; on small data one unlucky epoch can
    halve the test accuracy. The numbers are not hidden or replaced:
    the class is told, and shown the command that scores the best epoch instead.
    """
    finite = [(h["val_loss"], h["epoch"]) for h in history if math.isfinite(h["val_loss"])]
    if select != "last" or len(history) < 2 or not finite:
        return None
    best_loss, best_epoch = min(finite)
    last = history[-1]["val_loss"]
    if math.isfinite(last) and last <= 1.5 * best_loss:
        return None
    return (
        f"{label} keeps its last epoch (the report's recipe), whose validation loss ({last:.2f}) is far above "
        f"its best ({best_loss:.2f}, epoch {best_epoch}): its test numbers are that last epoch's. "
        f"`xraykit evaluate {shlex.quote(str(run_path))} {data} --which best --out {shlex.quote(f'{run_path}/best')}` "
        f"scores the best epoch, beside these numbers; `--recipe strong` keeps it."
    )


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
        rows = [
            ("accuracy", with_interval(self, "accuracy")),
            ("balanced accuracy", with_interval(self, "balanced_accuracy")),
        ]
        rows += [(f"{c}", with_interval(self, "per_class_accuracy", c)) for c in self.get("per_class_accuracy", {})]
        for key in ("sensitivity", "specificity", "roc_auc"):
            if key in self:
                rows.append((key.replace("roc_auc", "ROC AUC"), with_interval(self, key)))
        if "majority_baseline" in self:
            rows.append(("majority baseline", percent(self["majority_baseline"]["accuracy"])))
        return html_table(rows, "In brackets: 95% intervals." if "intervals" in self else "")


def _class_accuracy(m: dict[str, Any], c: str) -> str:
    return with_interval(m, "per_class_accuracy", c)


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


def checkpoint_accuracy(o: Optional[dict[str, Any]]) -> str:
    """The other checkpoint's test accuracy (``compare``'s ``other_checkpoint``) with its interval, or ``""``."""
    return "" if not o else format_interval(o["accuracy"], tuple(o["interval"]))


def _other_checkpoint(m: dict[str, Any]) -> str:
    o = m.get("other_checkpoint")
    return "" if not o else f"{checkpoint_accuracy(o)} ({o['epoch']})"


def write_report(
    path: Path,
    title: str,
    runs: dict,
    results: dict,
    notes: list[str],
    figures: list[tuple[str, str]],
    paired: dict[str, Any] | None = None,
) -> None:
    first = next(iter(results.values()))
    classes = first["classes"]
    lines = [f"# {title}", ""]
    if notes:
        lines += [f"> **Note.** {n}" for n in notes] + [""]
    lines += [f"Data: `{first['data']}`. {next(iter(runs.values())).record.validation}.", ""]
    lines += ["## Test results", "", "| | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("accuracy", lambda m: with_interval(m, "accuracy")),
        ("balanced accuracy", lambda m: with_interval(m, "balanced_accuracy")),
    ]
    if "other_checkpoint" in first:
        rows.append((f"accuracy, {first['other_checkpoint']['which']} checkpoint (epoch)", _other_checkpoint))
    rows += [(f"accuracy on {c}", partial(_class_accuracy, c=c)) for c in classes]
    if "sensitivity" in first:
        rows += [
            ("sensitivity", lambda m: with_interval(m, "sensitivity")),
            ("specificity", lambda m: with_interval(m, "specificity")),
            ("F1", lambda m: percent(m["f1"])),
        ]
    rows += [
        ("ROC AUC", lambda m: with_interval(m, "roc_auc")),
        (
            "majority baseline",
            lambda m: f"{percent(m['majority_baseline']['accuracy'])} (always {m['majority_baseline']['class']})",
        ),
        ("trainable / total parameters", lambda m: f"{m['trainable_parameters']:,} / {m['total_parameters']:,}"),
        ("seconds per epoch", lambda m: f"{m['seconds_per_epoch']:.1f}"),
        ("starting weights", lambda m: m["weights"]),
    ]
    for name, fmt in rows:
        lines.append(f"| {name} | " + " | ".join(fmt(m) for m in results.values()) + " |")
    if "intervals" in first:
        lines += [
            "",
            "In brackets: 95% intervals; exact binomial for proportions of images, a bootstrap over test "
            "images (1000 resamples) for balanced accuracy and ROC AUC. Two numbers whose intervals overlap "
            "may not differ at all.",
        ]
    if paired:
        lines += ["", f"**Paired on the same images.** {paired_sentence(paired)}."]
    lines += ["", "Confusion matrices (rows: true class, columns: predicted; order " + ", ".join(classes) + "):", ""]
    for label, m in results.items():
        lines.append(f"- {label}: `{m['confusion_matrix']}`")
    lines += ["", "## Runs", ""]
    for label, run in runs.items():
        c = run.config
        lines.append(
            f"- {label}: `{run.path}` ({c.backbone}, {c.task}, lr {c.lr:g}, batch {c.batch_size}, "
            f"{c.epochs} epochs, {c.image_size} px, recipe {c.recipe}, seed {c.seed})"
        )
    lines.append("")
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    lines += ["---", "", f"Made by xraykit. {CREDIT}", ""]
    write_text(path, "\n".join(lines))
