"""``report.md``: one page with both tasks' numbers and figures, for a class to read (rows: :mod:`xraykit.tables`)."""

from __future__ import annotations

import html
import math
import re
import shlex
from pathlib import Path
from typing import Any

from .io import write_text
from .tables import metric_rows, paired_sentence

CREDIT = (
    "Real chest X-rays: Kermany, Zhang and Goldbaum (2018), Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0."
)


def md_text(text: str) -> str:
    """``text`` as Markdown shows it, letter for letter: a class folder named ``<img ...>`` or ``[v2]`` is a
    name, not HTML or a link."""
    return re.sub(r"([\\`*\[\]|])", r"\\\1", html.escape(str(text), quote=False))


def md_code(text: str) -> str:
    """``text`` as inline code, whatever backticks it holds."""
    fence = "``" if "`" in str(text) else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


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
    lines += [f"Data: {md_code(first['data'])}. {md_text(next(iter(runs.values())).record.validation)}.", ""]
    lines += ["## Test results", "", "| | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for name, cells in metric_rows(list(results.values())):
        lines.append(f"| {md_text(name)} | " + " | ".join(md_text(c) for c in cells) + " |")
    if "intervals" in first:
        lines += [
            "",
            "In brackets: 95% intervals; exact binomial for proportions of images, a bootstrap over test "
            "images (1000 resamples) for balanced accuracy and ROC AUC. Two numbers whose intervals overlap "
            "may not differ at all.",
        ]
    if paired:
        lines += ["", f"**Paired on the same images.** {paired_sentence(paired)}."]
    order = ", ".join(md_text(c) for c in classes)
    lines += ["", f"Confusion matrices (rows: true class, columns: predicted; order {order}):", ""]
    for label, m in results.items():
        lines.append(f"- {label}: `{m['confusion_matrix']}`")
    lines += ["", "## Runs", ""]
    for label, run in runs.items():
        c = run.config
        lines.append(
            f"- {label}: {md_code(run.path)} ({c.backbone}, {c.task}, lr {c.lr:g}, batch {c.batch_size}, "
            f"{c.epochs} epochs, {c.image_size} px, recipe {c.recipe}, seed {c.seed})"
        )
    lines.append("")
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    lines += ["---", "", f"Made by xraykit. {CREDIT}", ""]
    write_text(path, "\n".join(lines))
