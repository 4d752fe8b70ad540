"""The ``xraykit`` command line: a thin layer over the Python API (``xraykit/__init__.py`` names it).

Bad input (a missing folder, a corrupt image, an unknown name) is reported in one line
naming the file and the problem, with exit code 2 and no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.text import Text

from . import cli_views
from . import variants as variant_text
from .cli_options import field_option, given_options, refuse_options_with_resume, with_training_options
from .cli_views import console, friendly
from .errors import XrayError

# Each command imports what it needs (torch among it) when it runs: `xraykit --help`,
# `xraykit COMMAND --help` and `xraykit --version` answer at once (benchmarks/cli_startup.py).

# The --which of every command that reads one checkpoint of a run.
WHICH_HELP = "Checkpoint: 'last', 'best' or 'averaged' (a run trained with --select averaged). Default: its --select."

app = typer.Typer(
    help="Learn, teach and practise deep learning on chest X-rays (ResNet-18 from scratch and fine-tuned, CAM).",
    no_args_is_help=True,
    add_completion=True,  # xraykit --install-completion: Tab completes commands and options (docs/install.md)
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"xraykit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print xraykit's version and exit."
    ),
) -> None:
    """Learn, teach and practise deep learning on chest X-rays (ResNet-18 from scratch and fine-tuned, CAM)."""


@app.command()
@friendly
def demo(
    out: Optional[Path] = typer.Option(
        None, help="Run folder to write. Default: xraykit-demo, or xraykit-demo-2, -3, ... if taken."
    ),
    n: int = typer.Option(640, help="Synthetic training images (val and test get n/4 each)."),
    image_size: int = typer.Option(64, help="Image size in pixels."),
    epochs: int = typer.Option(10, help="Epochs for each task."),
    seed: int = typer.Option(0, help="Random seed."),
    precision: str = field_option("precision"),
    quiet: bool = typer.Option(False, help="No progress bars."),
):
    """Run Task 1.1 and Task 1.2 on built-in synthetic X-rays and write a complete run folder."""
    from . import comparing

    summary = comparing.demo(
        out, n=n, image_size=image_size, epochs=epochs, seed=seed, precision=precision, quiet=quiet
    )
    out = Path(summary["out"])
    console.print(cli_views.results_table(summary))
    paired = cli_views.paired_line(summary)
    if paired:
        console.print(paired)
    console.print(
        Text.assemble(
            f"Done in {summary['seconds']:.0f} s. Open ",
            (str(out / "report.md"), "bold"),
            f"; the folder {out}/ holds loss_curves.png, metrics.json, misclassified.png, cam.png and both runs.",
        )
    )


@app.command()
@friendly
@with_training_options(epochs={"default": None, "more_help": "Default: 10; with --resume, the new total (the run's)."})
def train(
    ctx: typer.Context,
    data: Optional[str] = typer.Argument(
        None, help="Folder in the Kaggle layout, a MedMNIST .npz, 'sample' or 'synthetic'."
    ),
    out: Optional[Path] = typer.Option(None, help="Run folder. Default: runs/TASK-TIMESTAMP."),
    skip_bad: bool = typer.Option(False, help="Warn about unreadable images and train on the rest."),
    resume: Optional[Path] = typer.Option(
        None,
        help="Continue this run folder from its last checkpoint (on the data it recorded; "
        "give DATA only if it was trained on data loaded in Python).",
    ),
    quiet: bool = typer.Option(False, help="No progress bars."),
    **options: Any,
):
    """Train ResNet-18 (or another backbone) from scratch or by fine-tuning."""
    from . import distributed, training

    if resume is not None:  # DATA only for runs trained on data loaded in Python
        refuse_options_with_resume(ctx, resume)
        run = training.resume(resume, epochs=options["epochs"], quiet=quiet, data=data)
    else:
        if data is None:
            raise XrayError("give a DATA folder (or 'synthetic'), or --resume RUN")
        run = training.train(data, out=out, skip_bad=skip_bad, quiet=quiet, **given_options(options))
    if not distributed.is_main():  # under torchrun, rank 0 reports for all
        return
    for line in cli_views.train_summary(run, resumed=resume is not None):
        console.print(line)


@app.command()
@friendly
def evaluate(
    run: Path = typer.Argument(..., help="Run folder made by `xraykit train`."),
    data: str = typer.Argument(..., help="Test folder (DATA/test), a data folder with test/, an .npz, or 'synthetic'."),
    which: Optional[str] = typer.Option(None, help=WHICH_HELP),
    out: Optional[Path] = typer.Option(None, help="Where to write metrics.json and figures. Default: the run folder."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    precision: str = field_option("precision"),
    skip_bad: bool = typer.Option(False, help="Warn about unreadable images and evaluate the rest."),
    threshold: str = typer.Option(
        "0.5",
        help="Call PNEUMONIA at or above this probability: a number, 'youden' or 'sensitivity=0.95' "
        "(a rule is applied on the run's validation images, never on the test images).",
    ),
    adapt: List[str] = typer.Option(
        [], help="Also report the numbers after label-free adaptation: 'adabn', 'prior' (repeatable or a comma list)."
    ),
    tta: bool = typer.Option(
        False, help="Average the probabilities over views that keep the anatomy (test-time augmentation)."
    ),
):
    """Test accuracy overall and per class, sensitivity, specificity, ROC AUC, each with its 95% interval;
    calibration, misclassified images, and how far the test images are from the training ones."""
    from . import evaluation

    metrics = evaluation.evaluate(
        run,
        data,
        which=which,
        out=out,
        device=device,
        precision=precision,
        skip_bad=skip_bad,
        threshold=threshold,
        adapt=adapt,
        tta=tta,
    )
    for line in cli_views.evaluate_view(metrics):
        console.print(line)
    files = ["metrics.json", *(["shift.json"] if "verdicts" in metrics.get("shift", {}) else []), *metrics["figures"]]
    console.print(f"Wrote {out or run}/{', '.join(files)}")


@app.command()
@friendly
@with_training_options(per_task=False)
def compare(
    data: str = typer.Argument(..., help="Folder in the Kaggle layout (with test/), an .npz, or 'synthetic'."),
    out: Path = typer.Option(Path("runs/compare"), help="Folder for both runs and report.md."),
    finetune_weights: Optional[str] = typer.Option(
        None, "--weights", help="Task 1.2's starting weights: 'imagenet' (default) or PATH."
    ),
    quiet: bool = typer.Option(False, help="No progress bars."),
    **options: Any,
):
    """Both tasks on the same data and split, then one page comparing them (report.md)."""
    from . import comparing

    summary = comparing.compare(data, out=out, finetune_weights=finetune_weights, quiet=quiet, **given_options(options))
    console.print(cli_views.results_table(summary))
    paired = cli_views.paired_line(summary)
    if paired:
        console.print(paired)
    console.print(Text.assemble("Open ", (str(out / "report.md"), "bold")))


@app.command()
@friendly
def predict(
    run: Path = typer.Argument(..., help="Run folder."),
    images: List[Path] = typer.Argument(..., help="Image files."),
    which: Optional[str] = typer.Option(None, help=WHICH_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    precision: str = field_option("precision"),
    tta: bool = typer.Option(
        False, help="Average the probabilities over views that keep the anatomy (test-time augmentation)."
    ),
):
    """Label and probability for each image."""
    from . import predicting

    results = predicting.predict(run, images, which=which, precision=precision, tta=tta)
    cli_views.print_predictions(results, as_json)


@app.command()
@friendly
def explain(
    run: Path = typer.Argument(..., help="Run folder."),
    images: List[Path] = typer.Argument(..., help="Image files."),
    method: str = typer.Option("cam", help="Explainer (see `xraykit plugins`)."),
    target: str = typer.Option("predicted", help="Class to explain: a class name or 'predicted'."),
    out: Optional[Path] = typer.Option(None, help="Folder for the figures. Default: RUN/explain."),
    option: List[str] = typer.Option(
        [], "--option", "-o", help="An explainer option KEY=VALUE, e.g. patch=16 (repeatable)."
    ),
    precision: str = field_option("precision"),
):
    """Original beside its heatmap overlay, for each image."""
    from . import explaining, shift_report

    options: dict[str, Any] = dict(variant_text.parse_option(o) for o in option)
    for path in explaining.explain(run, images, method=method, target=target, out=out, precision=precision, **options):
        console.print(f"wrote {path}")
    for path, hint in zip(images, shift_report.familiarity_of_files(run, images)):
        if hint and hint["far"]:
            console.print(f"{path}: {cli_views.familiarity_hint(hint)}")


@app.command("explain-score")
@friendly
def explain_score(
    run: Path = typer.Argument(..., help="Run folder."),
    data: str = typer.Argument(
        ..., help="Data with lesion masks: a folder written by `xraykit synth`, or 'synthetic[:n=...,seed=...]'."
    ),
    methods: Optional[str] = typer.Option(
        None, help="Comma-separated explainers. Default: every one that works for the run's backbone."
    ),
    limit: Optional[int] = typer.Option(None, help="Score only the first N lesioned test images."),
    out: Optional[Path] = typer.Option(None, help="Folder for explain_score.json. Default: the run folder."),
    which: Optional[str] = typer.Option(None, help=WHICH_HELP),
    option: List[str] = typer.Option(
        [], "--option", "-o", help="METHOD.KEY=VALUE, e.g. occlusion.patch=16 (repeatable)."
    ),
):
    """Score explainers on lesions whose outline is known: pointing game and share inside the mask."""
    from . import explaining

    options = variant_text.method_options(option)
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    summary = explaining.explain_score(run, data, methods=chosen, limit=limit, out=out, which=which, options=options)
    cli_views.print_explain_scores(summary, out or run)


@app.command("explain-gallery")
@friendly
def explain_gallery(
    run: Path = typer.Argument(..., help="Run folder."),
    data: str = typer.Argument(
        ..., help="Test images: a folder, 'sample', or 'synthetic[:n=...]' (with lesion masks, each method is scored)."
    ),
    variant: List[str] = typer.Option(
        [],
        "--variant",
        help="METHOD or METHOD:KEY=VALUE,... e.g. cam:align=receptive-field (repeatable). "
        "Default: cam, cam:align=receptive-field, guided-gradcam, occlusion, integrated-gradients.",
    ),
    per_kind: int = typer.Option(1, help="Images of each kind (each class, right and wrong)."),
    limit: Optional[int] = typer.Option(None, help="Score on only the first N lesioned test images."),
    out: Optional[Path] = typer.Option(None, help="Folder for explain_gallery.png/.json. Default: the run folder."),
    which: Optional[str] = typer.Option(None, help=WHICH_HELP),
):
    """The same test images under several explainers side by side, each with its pointing game."""
    from . import gallery

    variants = variant or list(gallery.GALLERY_VARIANTS)
    summary = gallery.explain_gallery(
        run, data, variants=variants, per_kind=per_kind, limit=limit, out=out, which=which
    )
    cli_views.print_gallery(summary, out or run)


@app.command()
@friendly
def shift(
    run: Path = typer.Argument(..., help="Run folder made by `xraykit train`."),
    data: str = typer.Argument(..., help="New X-rays: a folder (with test/, or the test folder itself), an .npz."),
    which: Optional[str] = typer.Option(None, help=WHICH_HELP),
    out: Optional[Path] = typer.Option(None, help="Where to write shift.json and figures. Default: the run folder."),
    split: str = typer.Option("test", help="Which split of DATA to compare."),
):
    """Are these X-rays like the ones the run learned from? Measured without their labels."""
    from . import shift_report

    report = shift_report.shift(run, data, which=which, out=out, split=split)
    for line in cli_views.shift_lines(report):
        console.print(line)
    where = out or run
    console.print(f"Wrote {where}/shift.json, shift.png (feature distances), shift_unusual.png")


@app.command()
@friendly
def ensemble(
    runs: List[Path] = typer.Argument(..., help="Two or more run folders (one recipe, several seeds)."),
    out: Path = typer.Option(..., help="The ensemble's folder (new)."),
):
    """Several runs as one: evaluate and predict take the folder and answer the mean of their probabilities."""
    from . import ensembles

    made = ensembles.ensemble(runs, out=out)
    console.print(f"Wrote {made.path}/ ({len(runs)} members). Next: xraykit evaluate {made.path} DATA")


@app.command()
@friendly
def synth(
    out: Path = typer.Argument(..., help="Folder to write (Kaggle layout: train/val/test/{NORMAL,PNEUMONIA})."),
    n: int = typer.Option(200, help="Training images; val and test get n/4 each."),
    size: int = typer.Option(224, help="Image size in pixels."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same images."),
    contrast: float = typer.Option(0.35, help="Lesion contrast: lower is harder."),
):
    """Write synthetic chest X-rays, with their lesion masks in OUT/masks/."""
    from .data import synthetic

    synthetic.synth(out, n=n, size=size, seed=seed, lesion_contrast=contrast)
    console.print(f"Wrote {n} + {n // 4} + {n // 4} images to {out}/ (masks in {out}/masks/)")


@app.command("plugins")
@friendly
def plugins_command():
    """Every registered backbone, strategy, dataset and explainer, with the plugin that provides it."""
    cli_views.print_plugins()


def main() -> None:
    cli_views.prepare_process()
    app()
