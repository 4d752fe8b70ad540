"""The command line's helpers: one-line errors and what it prints (tables and
summary lines built from what the Python API returns)."""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import XrayError
from .tables import INTERVALS_NOTE, metric_rows, paired_sentence, percent

if TYPE_CHECKING:
    from .runs import Run

# This module is imported to build the command line, before any command runs: the registry of
# plugins (which imports torch) it imports inside the one function that uses it.


def _width() -> Optional[int]:
    """80 where ``COLUMNS`` says a width no table fits in (``COLUMNS=0`` would print nothing at all);
    else ``None``: Rich reads ``COLUMNS`` or asks the terminal."""
    columns = os.environ.get("COLUMNS", "").strip()
    return 80 if columns.isdigit() and int(columns) < 20 else None


# Markup off: what is printed holds file, folder and class names ("[v2]", "[/x]"), never Rich markup;
# the few styled words are Text objects. Training's progress lines print through the same console.
console = Console(highlight=False, markup=False, width=_width())
err_console = Console(stderr=True, highlight=False, markup=False, width=_width())
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn xraykit's own errors, and any error raised in an outside plugin's code, into one line on stderr and
    exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except XrayError as exc:
            err_console.print(f"Error: {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("Interrupted.")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except (Exception, SystemExit) as exc:  # from a plugin's code: one line naming it, like a failed import
            registry = sys.modules.get("xraykit.plugins")
            who = registry.blame(exc) if registry is not None else None
            if who is None:
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            err_console.print(
                f"Error: plugin '{who}' failed: {type(exc).__name__}{': ' if first else ''}{first}", soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature Typer reads


def train_summary(run: Run, resumed: bool) -> list[Union[str, Text]]:
    """What ``train`` says at the end: skipped files (a new run), the run folder, and the command to run next."""
    lines: list[Union[str, Text]] = []
    skipped = run.record.skipped_files
    if skipped and not resumed:
        count = f"{len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''}"
        lines.append(f"Skipped {count} (listed in {run.path / 'log.txt'}).")
    last = run.history[-1] if run.history else {}
    lines.append(
        Text.assemble(
            "Run folder: ",
            (str(run.path), "bold"),
            f" (val loss {last.get('val_loss', float('nan')):.4f}, "
            f"val accuracy {last.get('val_accuracy', float('nan')):.3f}). "
            f"Next: xraykit evaluate {shlex.quote(str(run.path))} {run.data_argument or 'DATA/test'}",
        )
    )
    return lines


def metrics_table(columns: dict[str, dict[str, Any]], title: Optional[str] = None) -> Table:
    """One column of numbers per metrics dict (a task, a checkpoint, an adaptation), one row per metric
    (:data:`xraykit.tables.ROWS`): how ``evaluate`` and ``compare`` print their results."""
    intervals = "intervals" in next(iter(columns.values()))
    table = Table(title=title, caption=INTERVALS_NOTE if intervals else None)
    table.add_column("metric")
    for label in columns:
        table.add_column(label, justify="right")
    for label, cells in metric_rows(list(columns.values())):
        table.add_row(label, *cells)
    return table


def results_table(summary: dict[str, Any]) -> Table:
    """``compare``'s and ``demo``'s test results, one column per task; 95% intervals in brackets."""
    return metrics_table(summary["tasks"], title="Test results")


def paired_line(summary: dict[str, Any]) -> str | None:
    """The paired comparison of ``compare``: Task 1.2 minus Task 1.1 in accuracy on the same test images."""
    paired = summary.get("paired")
    return None if not paired else paired_sentence(paired)


ADAPTED = {"adabn": "after AdaBN", "prior": "after prior adjustment"}


def evaluate_view(m: dict[str, Any]) -> list[Union[str, Table]]:
    """What ``evaluate`` prints: first how far the test images are from the training ones (when the data is
    not the run's own), then the metrics table (a column per label-free adaptation asked for, beside the
    plain numbers), then the threshold and the calibration."""
    lines: list[Union[str, Table]] = list(shift_lines(m["shift"])) if "shift" in m else []
    lines += m.get("left_out", [])
    copies = m.get("copies_of_training_images")
    if copies:
        lines.append(
            f"warning: {copies} of the {m['n']} test images are copies of the run's training or validation "
            "images (the same pixels): on them the numbers measure what the model memorised, not what it learned"
        )
    columns = {"test images": m, **{ADAPTED[name]: numbers for name, numbers in m.get("adapted", {}).items()}}
    lines.append(metrics_table(columns))
    rule = m.get("threshold_rule")
    if rule not in (None, "fixed") or (m.get("threshold") not in (None, 0.5)):
        where = m.get("threshold_chosen_on")
        chosen = f", chosen by '{rule}' on {where}" if where else ""
        lines.append(f"threshold: {m['positive_class']} when its probability >= {m['threshold']:.3f}{chosen}")
    calibration = m.get("calibration")
    if calibration and "temperature" in calibration:
        before, after = calibration["ece_before"], calibration["ece_after"]
        ece = "n/a" if before is None or after is None else f"{before:.3f} -> {after:.3f}"
        lines.append(
            f"calibration: temperature {calibration['temperature']:.2f} fitted on {calibration['fitted_on']}; "
            f"expected calibration error on the test images {ece} (reliability.png)"
        )
    elif calibration and "note" in calibration:
        lines.append(calibration["note"])
    prior = m.get("adapted", {}).get("prior")
    if prior:
        pos = m.get("positive_class") or list(prior["estimated_prior"])[-1]
        est, assumed = prior["estimated_prior"][pos], prior["model_prior"][pos]
        interval = prior.get("estimated_share_interval")
        how = f" ({percent(interval[0])}-{percent(interval[1])}, BBSE)" if interval else " (EM)"
        lines.append(
            f"prior adjustment (label-free): {pos} share of the test images estimated {percent(est)}{how}, "
            f"the model assumed {percent(assumed)}"
        )
    if "adabn" in m.get("adapted", {}):
        lines.append("AdaBN (label-free): BatchNorm statistics recomputed on the test images.")
    return lines


def shift_lines(shift: dict[str, Any]) -> list[str]:
    """The shift report's verdicts, as ``xraykit shift`` and ``xraykit evaluate`` print them."""
    if "note" in shift:
        return [shift["note"]]
    lines = [
        f"Shift: {percent(shift['unusual_share'])} of the {shift['images']} images lie beyond 95% of the run's "
        f"validation images in what the network sees (expected about {percent(shift['expected_unusual_share'])}), "
        f"{percent(shift['far_share'])} far beyond all of them."
    ]
    lines += [f"  - {v}" for v in shift["verdicts"]]
    return lines


def print_predictions(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(results))
        return
    table = Table()
    table.add_column("image")
    table.add_column("label")
    table.add_column("probability", justify="right")
    hinted = any(r.get("percentile") is not None for r in results)
    if hinted:
        table.add_column("unusual?", justify="right")
    for r in results:
        row = [r["path"], r["label"], f"{r['probability']:.3f}"]
        if hinted:
            row.append(familiarity_hint(r))
        table.add_row(*row)
    console.print(table)
    if hinted:
        console.print(
            "unusual?: the share of the run's validation images closer to the training images than this one; "
            "far: well beyond all of them (a hint, not a verdict)."
        )


def familiarity_hint(r: dict[str, Any]) -> str:
    """``far from the training images (a hint, not a verdict; ...)``, ``unusual (percentile 97)`` or the percentile."""
    if r.get("percentile") is None:
        return ""
    where = f"percentile {100 * r['percentile']:.0f}"
    if r.get("far"):
        return f"far from the training images (a hint, not a verdict; {where})"
    return f"unusual ({where})" if r.get("unusual") else where


def print_explain_scores(s: dict[str, Any], where: Union[str, Path]) -> None:
    table = Table(title=f"Where the explanations point: {s['images']} {s['target']} test images with known lesions")
    for col in ("method", "pointing game", "inside share", "chance", "ideal on its grid", "s / image"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=col == "method")
    chance = f"{s['chance']['mask_area_fraction']:.3f}"
    for name, m in s["methods"].items():
        ideal = m["ideal"]
        ceiling = "-"
        if ideal:
            grid = f"{ideal['grid'][0]}x{ideal['grid'][1]}"
            ceiling = f"{ideal['pointing_game']:.3f} / {ideal['inside_share']:.3f} on {grid}"
        seconds = f"{m['seconds_per_image']:.3f}"
        table.add_row(name, f"{m['pointing_game']:.3f}", f"{m['inside_share']:.3f}", chance, ceiling, seconds)
    console.print(table)
    console.print(
        "Chance: the lesions' share of the image, what a map drawn at random scores. Ideal: the pointing game "
        "and inside share of a perfect map on the method's grid, the most that grid allows."
    )
    console.print(
        f"The model called {s['predicted_as_target']:.0%} of these images {s['target']}. "
        f"Wrote {where}/explain_score.json"
    )


def print_gallery(s: dict[str, Any], where: Union[str, Path]) -> None:
    scored = s["images_scored"]
    title = f"Pointing game on {scored} lesioned {s['target']} test images" if scored else "No lesion masks: not scored"
    table = Table(title=title)
    for col in ("variant", "pointing game", "inside share", "chance"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    chance = "-" if s["chance"] is None else f"{s['chance']:.3f}"
    for row in s["variants"]:
        numbers = [row[k] for k in ("pointing_game", "inside_share")]
        table.add_row(row["variant"], *("-" if x is None else f"{x:.3f}" for x in numbers), chance)
    console.print(table)
    kinds = ", ".join(f"{'right' if p['correct'] else 'wrong'} {p['true']}" for p in s["images"])
    console.print(f"Images shown: {kinds}. Wrote {where}/explain_gallery.png and explain_gallery.json")


def print_plugins() -> None:
    """Every registered backbone, strategy, dataset and explainer, then any plugin that failed."""
    from . import plugins

    table = Table(title="xraykit plugins")
    for col in ("kind", "name", "plugin", "description"):
        table.add_column(col)
    for kind in plugins.KINDS:
        for entry in plugins.entries(kind).values():
            table.add_row(kind, entry.name, entry.plugin, getattr(entry.obj, "description", ""))
    console.print(table)
    failed = plugins.failures()
    if failed:
        ft = Table(title="failed plugins")
        ft.add_column("plugin")
        ft.add_column("reason")
        for f in failed:  # a reason is an exception's text: printed as it is (the console reads no markup)
            ft.add_row(f.plugin, f.reason)
        console.print(ft)


def prepare_process() -> None:
    """What the command line sets up before any command runs."""
    import signal
    import sys
    import warnings

    # A file name that is not UTF-8 must print as \udcff, not end the program with UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # Pillow's warnings about odd metadata (corrupt EXIF, skipped TIFF tags) are noise to a CLI user.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    # SIGTERM (a scheduler's stop, `kill`) ends a command as Ctrl-C does: one line, checkpoints kept, resumable.
    signal.signal(signal.SIGTERM, _stop)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
