"""The ``xraykit`` command line: a thin layer over the Python API in ``api.py``.

Bad input (a missing folder, a corrupt image, an unknown name) is reported in one line
naming the file and the problem, with exit code 2 and no traceback.
"""

from __future__ import annotations

import functools
import json
import shlex
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import api, distributed, plugins
from .errors import XrayError

app = typer.Typer(
    help="Learn, teach and practise deep learning on chest X-rays (ResNet-18 from scratch and fine-tuned, CAM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def friendly(fn):
    """Turn xraykit's own errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except XrayError as exc:
            err_console.print(f"Error: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("Interrupted.", markup=False)
            raise typer.Exit(130) from None

    return wrapper


def _results_table(summary: dict) -> Table:
    table = Table(title="Test results")
    tasks = summary["tasks"]
    table.add_column("metric")
    for label in tasks:
        table.add_column(label, justify="right")
    first = next(iter(tasks.values()))
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    rows = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy")]
    rows += [("sensitivity", "sensitivity"), ("specificity", "specificity")] if "sensitivity" in first else []
    for name, key in rows:
        table.add_row(name, *(pct(m[key]) for m in tasks.values()))
    for c in first["classes"]:
        table.add_row(f"accuracy on {c}", *(pct(m["per_class_accuracy"][c]) for m in tasks.values()))
    table.add_row("majority baseline", *(pct(m["majority_baseline"]["accuracy"]) for m in tasks.values()))
    table.add_row("trainable params", *(f"{m['trainable_parameters']:,}" for m in tasks.values()))
    table.add_row("s / epoch", *(f"{m['seconds_per_epoch']:.1f}" for m in tasks.values()))
    return table


@app.command()
@friendly
def demo(
    out: Optional[Path] = typer.Option(None, help="Run folder to write. Default: xraykit-demo, or xraykit-demo-2, -3, ... if taken."),
    n: int = typer.Option(640, help="Synthetic training images (val and test get n/4 each)."),
    image_size: int = typer.Option(64, help="Image size in pixels."),
    epochs: int = typer.Option(10, help="Epochs for each task."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, help="No progress bars."),
):
    """Run Task 1.1 and Task 1.2 on built-in synthetic X-rays and write a complete run folder."""
    summary = api.demo(out, n=n, image_size=image_size, epochs=epochs, seed=seed, quiet=quiet)
    out = Path(summary["out"])
    console.print(_results_table(summary))
    console.print(f"Done in {summary['seconds']:.0f} s. Open [bold]{out / 'report.md'}[/]; the folder {out}/ holds "
                  "loss_curves.png, metrics.json, misclassified.png, cam.png and both runs.")


@app.command()
@friendly
def train(
    data: Optional[str] = typer.Argument(None, help="Folder in the Kaggle layout, a MedMNIST .npz, or 'synthetic'."),
    task: str = typer.Option("scratch", help="Strategy: 'scratch' (Task 1.1) or 'finetune' (Task 1.2)."),
    backbone: str = typer.Option("resnet18", help="Registered backbone (see `xraykit plugins`)."),
    weights: Optional[str] = typer.Option(None, help="Starting weights: 'imagenet', 'none' or a file PATH. Default: the task's."),
    epochs: Optional[int] = typer.Option(None, help="Epochs to train [default: 10]; with --resume, the new total (default: the run's)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate. Default: the task's (1e-3 scratch, 1e-4 finetune)."),
    batch_size: int = typer.Option(32),
    image_size: int = typer.Option(224, help="Images are resized to SIZE x SIZE."),
    seed: int = typer.Option(0, help="Seed for init, data order, augmentation and the validation split."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    out: Optional[Path] = typer.Option(None, help="Run folder. Default: runs/TASK-TIMESTAMP."),
    recipe: str = typer.Option("report", help="'report' (the published recipe) or 'strong' (augmentation, class weights, cosine lr, best-val checkpoint)."),
    val_from_train: Optional[float] = typer.Option(None, help="Carve this fraction of train as validation, by patient. Default when val/ has < 100 images: 0.1."),
    class_weights: Optional[str] = typer.Option(None, help="'none' or 'auto' (weight classes by inverse frequency)."),
    balanced_sampler: Optional[bool] = typer.Option(None, "--balanced-sampler/--no-balanced-sampler", help="Sample classes equally often."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Random small rotations, shifts, zooms, brightness."),
    schedule: Optional[str] = typer.Option(None, help="'constant' or 'cosine' learning rate."),
    select: Optional[str] = typer.Option(None, help="Checkpoint used for evaluation: 'last' or 'best' (lowest val loss)."),
    feature_cache: bool = typer.Option(True, help="Train a frozen backbone's head on cached features (exact)."),
    skip_bad: bool = typer.Option(False, help="Warn about unreadable images and train on the rest."),
    resume: Optional[Path] = typer.Option(None, help="Continue this run folder from its last checkpoint (on the data it recorded; give DATA only if it was trained on data loaded in Python)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
):
    """Train ResNet-18 (or another backbone) from scratch or by fine-tuning."""
    if resume is not None:
        run = api.resume(resume, epochs=epochs, quiet=quiet, data=data)  # DATA only for runs trained on loaded data
    else:
        if data is None:
            raise XrayError("give a DATA folder (or 'synthetic'), or --resume RUN")
        if class_weights not in (None, "none", "auto"):
            raise XrayError(f"--class-weights must be 'none' or 'auto', got '{class_weights}'")
        if schedule not in (None, "constant", "cosine"):
            raise XrayError(f"--schedule must be 'constant' or 'cosine', got '{schedule}'")
        if select not in (None, "last", "best"):
            raise XrayError(f"--select must be 'last' or 'best', got '{select}'")
        run = api.train(data, task, backbone=backbone, weights=weights, epochs=10 if epochs is None else epochs, lr=lr,
                        batch_size=batch_size,
                        image_size=image_size, seed=seed, device=device, recipe=recipe, out=out,
                        val_from_train=val_from_train, class_weights=class_weights, balanced_sampler=balanced_sampler,
                        augment=augment, schedule=schedule, select=select, feature_cache=feature_cache,
                        skip_bad=skip_bad, quiet=quiet)
    if not distributed.is_main():  # under torchrun, rank 0 reports for all
        return
    skipped = run.config.extra.get("skipped_files") or []
    if skipped and resume is None:
        console.print(f"Skipped {len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''} "
                      f"(listed in {run.path / 'log.txt'}).", markup=False)
    last = run.history[-1] if run.history else {}
    console.print(f"Run folder: [bold]{run.path}[/] (val loss {last.get('val_loss', float('nan')):.4f}, "
                  f"val accuracy {last.get('val_accuracy', float('nan')):.3f}). "
                  f"Next: xraykit evaluate {shlex.quote(str(run.path))} {run.data_argument or 'DATA/test'}")


@app.command()
@friendly
def evaluate(
    run: Path = typer.Argument(..., help="Run folder made by `xraykit train`."),
    data: str = typer.Argument(..., help="Test folder (DATA/test), a data folder with test/, an .npz, or 'synthetic'."),
    which: Optional[str] = typer.Option(None, help="Checkpoint: 'best' or 'last'. Default: the run's recipe."),
    out: Optional[Path] = typer.Option(None, help="Where to write metrics.json and figures. Default: the run folder."),
    device: str = typer.Option("auto"),
    skip_bad: bool = typer.Option(False, help="Warn about unreadable images and evaluate the rest."),
):
    """Test accuracy overall and per class, sensitivity, specificity, ROC AUC; misclassified images."""
    m = api.evaluate(run, data, which=which, out=out, device=device, skip_bad=skip_bad)
    where = out or run
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    per_class = ", ".join(f"{c} {pct(a)}" for c, a in m["per_class_accuracy"].items())
    console.print(f"accuracy {pct(m['accuracy'])} (majority baseline {pct(m['majority_baseline']['accuracy'])}), "
                  f"balanced {pct(m['balanced_accuracy'])}; per class: {per_class}")
    if "sensitivity" in m:
        console.print(f"sensitivity {pct(m['sensitivity'])}, specificity {pct(m['specificity'])}, "
                      f"ROC AUC {m['roc_auc']:.3f}" if m["roc_auc"] is not None else "")
    console.print(f"Wrote {where}/metrics.json, confusion_matrix.png, misclassified.png")


@app.command()
@friendly
def compare(
    data: str = typer.Argument(..., help="Folder in the Kaggle layout (with test/), an .npz, or 'synthetic'."),
    out: Path = typer.Option(Path("runs/compare")),
    backbone: str = typer.Option("resnet18"),
    finetune_weights: Optional[str] = typer.Option(None, "--weights", help="Task 1.2's starting weights: 'imagenet' (default) or PATH."),
    epochs: int = typer.Option(10),
    batch_size: int = typer.Option(32),
    image_size: int = typer.Option(224),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    recipe: str = typer.Option("report"),
    val_from_train: Optional[float] = typer.Option(None),
    quiet: bool = typer.Option(False),
):
    """Both tasks on the same data and split, then one page comparing them (report.md)."""
    summary = api.compare(data, out=out, backbone=backbone, epochs=epochs, batch_size=batch_size, image_size=image_size,
                          seed=seed, device=device, recipe=recipe, finetune_weights=finetune_weights,
                          val_from_train=val_from_train, quiet=quiet)
    console.print(_results_table(summary))
    console.print(f"Open [bold]{out / 'report.md'}[/]")


@app.command()
@friendly
def predict(
    run: Path = typer.Argument(..., help="Run folder."),
    images: List[Path] = typer.Argument(..., help="Image files."),
    which: Optional[str] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Label and probability for each image."""
    results = api.predict(run, images, which=which)
    if as_json:
        console.print_json(json.dumps(results))
        return
    table = Table()
    table.add_column("image")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for r in results:
        table.add_row(r["path"], r["label"], f"{r['probability']:.3f}")
    console.print(table)


@app.command()
@friendly
def explain(
    run: Path = typer.Argument(..., help="Run folder."),
    images: List[Path] = typer.Argument(..., help="Image files."),
    method: str = typer.Option("cam", help="Explainer (see `xraykit plugins`)."),
    target: str = typer.Option("predicted", help="Class to explain: a class name or 'predicted'."),
    out: Optional[Path] = typer.Option(None, help="Folder for the figures. Default: RUN/explain."),
    option: List[str] = typer.Option([], "--option", "-o", help="An explainer option KEY=VALUE, e.g. patch=16 (repeatable)."),
):
    """Original beside its heatmap overlay, for each image."""
    options = dict(_parse_option(o) for o in option)
    for path in api.explain(run, images, method=method, target=target, out=out, **options):
        console.print(f"wrote {path}")


def _parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as an int, a float, true/false, or else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise XrayError(f"--option '{text}': expected KEY=VALUE, e.g. patch=16")
    value = value.strip()
    if value.lower() in ("true", "false"):
        return key.strip(), value.lower() == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


@app.command("explain-score")
@friendly
def explain_score(
    run: Path = typer.Argument(..., help="Run folder."),
    data: str = typer.Argument(..., help="Data with lesion masks: a folder written by `xraykit synth`, or 'synthetic[:n=...,seed=...]'."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated explainers. Default: every one that works for the run's backbone."),
    limit: Optional[int] = typer.Option(None, help="Score only the first N lesioned test images."),
    out: Optional[Path] = typer.Option(None, help="Folder for explain_score.json. Default: the run folder."),
    which: Optional[str] = typer.Option(None, help="Checkpoint: 'best' or 'last'. Default: the run's recipe."),
    option: List[str] = typer.Option([], "--option", "-o", help="METHOD.KEY=VALUE, e.g. occlusion.patch=16 (repeatable)."),
):
    """Score explainers on lesions whose outline is known: pointing game and share inside the mask."""
    if limit is not None and limit < 1:
        raise XrayError("--limit must be at least 1")
    options: dict = {}
    for text in option:
        method, dot, rest = text.partition(".")
        if not dot or "=" in method:
            raise XrayError(f"--option '{text}': expected METHOD.KEY=VALUE, e.g. occlusion.patch=16")
        key, value = _parse_option(rest)
        options.setdefault(method, {})[key] = value
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    s = api.explain_score(run, data, methods=chosen, limit=limit, out=out, which=which, options=options)
    table = Table(title=f"Where the explanations point: {s['images']} {s['target']} test images with known lesions")
    for col in ("method", "pointing game", "inside share", "chance", "ideal on its grid", "s / image"):
        table.add_column(col, justify="left" if col == "method" else "right")
    chance = f"{s['chance']['mask_area_fraction']:.3f}"
    for name, m in s["methods"].items():
        ideal = m["ideal"]
        ceiling = f"{ideal['pointing_game']:.3f} / {ideal['inside_share']:.3f} on {ideal['grid'][0]}x{ideal['grid'][1]}" if ideal else "-"
        table.add_row(name, f"{m['pointing_game']:.3f}", f"{m['inside_share']:.3f}", chance, ceiling, f"{m['seconds_per_image']:.3f}")
    console.print(table)
    console.print("Chance: the lesions' share of the image, what a map drawn at random scores. Ideal: the pointing game "
                  "and inside share of a perfect map on the method's grid, the most that grid allows.")
    console.print(f"The model called {s['predicted_as_target']:.0%} of these images {s['target']}. "
                  f"Wrote {out or run}/explain_score.json")


@app.command()
@friendly
def synth(
    out: Path = typer.Argument(..., help="Folder to write (Kaggle layout: train/val/test/{NORMAL,PNEUMONIA})."),
    n: int = typer.Option(200, help="Training images; val and test get n/4 each."),
    size: int = typer.Option(224, help="Image size in pixels."),
    seed: int = typer.Option(0),
    contrast: float = typer.Option(0.35, help="Lesion contrast: lower is harder."),
):
    """Write synthetic chest X-rays, with their lesion masks in OUT/masks/."""
    if n < 4 or size < 16:
        raise XrayError("--n must be at least 4 and --size at least 16")
    api.synth(out, n=n, size=size, seed=seed, lesion_contrast=contrast)
    console.print(f"Wrote {n} + {n // 4} + {n // 4} images to {out}/ (masks in {out}/masks/)")


@app.command("plugins")
@friendly
def plugins_command():
    """Every registered backbone, strategy, dataset and explainer, with the plugin that provides it."""
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
        for f in failed:  # a reason is an exception's text: print it as it is, never as rich markup
            ft.add_row(escape(f.plugin), escape(f.reason))
        console.print(ft)


def main() -> None:
    import sys
    import warnings

    # A file name that is not UTF-8 must print as \udcff, not end the program with UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # Pillow's warnings about odd metadata (corrupt EXIF, skipped TIFF tags) are noise to a CLI user.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    app()
