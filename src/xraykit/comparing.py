"""Task 1.1 beside Task 1.2: :func:`compare` trains both on one split and writes one teaching page;
:func:`demo` does it on built-in synthetic X-rays, in a few minutes on a CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from . import figures, plugins, report
from .config import TrainConfig, option_names
from .data.loading import DataLike, choose_validation, data_name, held_out_test, load_data
from .devices import resolve_precision
from .errors import WeightsUnavailableError, XrayError
from .evaluation import evaluate, misclassified, titles
from .explaining import choose_cam_setting, explain_maps, lesioned
from .inference import predict_proba
from .interfaces import XrayData
from .io import write_json
from .loop import Callbacks
from .progress import callbacks_for
from .runs import Run
from .training import resume, train
from .uncertainty import binomial_interval, paired_difference


def compare(
    data: DataLike,
    *,
    out: Union[str, Path] = "runs/compare",
    finetune_weights: Optional[str] = None,
    quiet: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Both tasks on the same data and split, evaluated on its test split, in one teaching page.

    One split and one set of options for both, so that a difference between the tasks is the tasks'.
    Everything that can be refused (options, ``out``, the data's name, Task 1.2's weights) is checked
    before Task 1.1 trains, so a mistake costs seconds, not a run.

    Args:
        data: what both tasks train and are tested on, as for :func:`xraykit.train`; it needs a test split.
        out: the folder of the page: ``report.md``, ``metrics.json``, the figures side by side, and each
            task's run in ``task1.1-scratch/`` and ``task1.2-finetune/``. One that holds a finished compare is
            refused; one that holds an interrupted compare is continued where it stopped, when the options
            are the same (the same command run again), and refused when they are not.
        finetune_weights: Task 1.2's starting weights, a name such as ``"imagenet"`` or a checkpoint file;
            ``None``: the finetune strategy's own (ImageNet's).
        quiet: messages only, no progress bars.
        **options: training options, the fields of TrainConfig (see the table 'Training options' above);
            e.g. epochs=3, image_size=64, recipe='strong'. All but ``task``, ``weights`` and ``lr``, which each
            task takes from its strategy.

    Returns:
        The summary that ``metrics.json`` holds: each task's test metrics under ``"tasks"``, the paired
            difference of their accuracies on the same images under ``"paired"``, and the ``"notes"`` said.

    Raises:
        XrayError: ``task``, ``weights`` or ``lr`` among the options, an option out of range, ``out`` holding a
            finished compare or one made with other options, data without a test split, or Task 1.2's weights
            not to be had.
    """
    return _compare(data, Path(out), finetune_weights, quiet, options, TITLE, demo=False)


TITLE = "Task 1.1 (from scratch) vs Task 1.2 (fine-tuning)"
TASK_FOLDERS = ("task1.1-scratch", "task1.2-finetune")


def _same_choices(run: Run, config: TrainConfig, data: DataLike, folder: Path) -> None:
    """Refuse to continue a task's run made with other choices than this compare's: running the same
    command again continues an interrupted compare; another command needs another ``--out``."""
    wanted = {name: getattr(config, name) for name in option_names(per_task=False)}
    wanted["data"] = "in-memory" if isinstance(data, dict) else data_name(data)
    for name, value in wanted.items():
        had = getattr(run.config, name)
        if had != value:
            raise XrayError(
                f"{folder}: holds a run made with other choices ({name} {had}, here {value}); give the same "
                "options to continue that compare, or pick another --out"
            )


def _compare(
    data: DataLike,
    out: Path,
    finetune_weights: Optional[str],
    quiet: bool,
    options: dict[str, Any],
    title: str,
    demo: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    per_task = sorted(set(options) - set(option_names(per_task=False)) & set(option_names()))
    if per_task:
        raise XrayError(f"compare trains each task with its own {per_task[0]}; leave it out (or train the tasks apart)")
    common = {name: value for name, value in options.items() if value is not None}  # None: the default
    config = TrainConfig.for_recipe(**common)  # the options, checked before any image is loaded
    backbone, image_size, seed = config.backbone, config.image_size, config.seed
    device, precision, val_from_train = config.device, config.precision, config.val_from_train
    # Before any training: a mistaken --out costs nothing and overwrites nothing. A finished compare (its
    # metrics.json written) is kept; an interrupted one is continued by the same command.
    if (out / "metrics.json").exists() and any((out / name / "config.json").exists() for name in TASK_FOLDERS):
        raise XrayError(f"{out}: already holds a run (a finished compare); pick another --out")
    for name in TASK_FOLDERS:
        if (out / name / "config.json").exists():
            _same_choices(Run.open(out / name), config, data, out / name)
    if not isinstance(data, dict):  # a mistyped path is named before any question about weights
        plugins.dataset_source(str(data))
    if finetune_weights is not None or not demo:  # Task 1.2's weights, found before minutes of Task 1.1
        default = plugins.strategy("finetune").weights
        plugins.create_backbone(backbone, weights=finetune_weights if finetune_weights is not None else default)
    splits = load_data(data, image_size)
    held_out_test(splits, "the data" if isinstance(data, dict) else str(data))
    # Loaded once above, recorded as named.
    common.update(quiet=quiet, data_name=None if isinstance(data, dict) else str(data))
    notes: list[str] = []
    runs: dict[str, Run] = {}

    def train_or_continue(task: str, folder: Path, **given: Any) -> Run:
        """A task's run: continued where an interrupted compare left it (the same choices, checked above)."""
        if (folder / "config.json").exists():
            return resume(folder, quiet=quiet, data=splits)
        return train(splits, task, out=folder, **given, **common)

    runs["Task 1.1: scratch"] = train_or_continue("scratch", out / "task1.1-scratch")
    weights = finetune_weights
    if weights is None and demo:
        weights = _demo_weights(runs["Task 1.1: scratch"], callbacks_for("finetune", quiet, None), notes, backbone)
    runs["Task 1.2: finetune"] = train_or_continue("finetune", out / "task1.2-finetune", weights=weights)

    say = callbacks_for("compare", quiet, None)
    for label, run in runs.items():
        note = report.last_epoch_note(label, run.history, run.config.select, run.path, run.data_argument or "DATA")
        if note:
            say.message(note)
            notes.append(note)

    results = {}
    for label, run in runs.items():
        metrics = evaluate(run.with_data(splits), splits, device=device, precision=precision, quiet=quiet)
        history = run.history
        metrics["trainable_parameters"] = run.record.trainable_parameters
        metrics["total_parameters"] = run.record.total_parameters
        metrics["seconds_per_epoch"] = sum(h["seconds"] for h in history) / len(history)
        metrics["weights"] = run.record.weights_loaded
        results[label] = metrics
    figures.loss_curves({label: run.history for label, run in runs.items()}, out / "loss_curves.png")
    # Each task's model and test predictions, once, for both figures below.
    test = splits["test"]
    models = {label: run.load_model() for label, run in runs.items()}
    how = resolve_precision(precision, torch.device("cpu"))  # the test images are predicted on the CPU here
    probs = {
        label: predict_proba(models[label], test.images, run.backbone, precision=how) for label, run in runs.items()
    }
    _side_by_side_misclassified(runs, probs, test, out / "misclassified.png")
    paired = paired_comparison(probs, test.labels, "Task 1.1: scratch", "Task 1.2: finetune")
    for label, run in runs.items():
        other = other_checkpoint(run, test, how)
        if other:
            results[label]["other_checkpoint"] = other
    figure_list = [
        ("Train and validation loss per epoch", "loss_curves.png"),
        ("Misclassified test images", "misclassified.png"),
    ]
    if all(run.backbone.cam_layer for run in runs.values()):
        val = choose_validation(splits, val_from_train, seed)[1]  # the runs' own validation images
        chosen = _cam_figure(runs, models, probs, test, val, out / "cam.png")
        caption = "Class Activation Maps (Captum LayerGradCam), a NORMAL and a PNEUMONIA test image"
        for label, choice in chosen.items():
            results[label]["cam"] = choice
        settings = [(label.split(":")[0], c) for label, c in chosen.items() if c is not None]
        if settings:
            caption += (
                ", each drawn at the setting whose maps point into the validation lesions most often: "
                + "; ".join(
                    f"{task} `{c['variant']}` (pointing game {c['pointing_game']:.2f} on {c['images']})"
                    for task, c in settings
                )
            )
        figure_list.append((caption, "cam.png"))
    summary = {
        "data": str(data) if not isinstance(data, dict) else "in-memory",
        "notes": notes,
        "validation": runs["Task 1.1: scratch"].record.validation,
        "tasks": results,
        "paired": paired,
        "seconds": time.perf_counter() - started,
    }
    write_json(out / "metrics.json", summary)
    report.write_report(out / "report.md", title, runs, results, notes, figure_list, paired=paired)
    return summary


def other_checkpoint(run: Run, test: XrayData, precision: str = "32") -> Optional[dict[str, Any]]:
    """Test accuracy of the checkpoint the recipe did not choose (``best`` for ``select="last"``, and the
    reverse), with its exact 95% interval: a bad last epoch then reads as what it is, not as a broken model."""
    which = "best" if run.config.select == "last" else "last"
    if not (run.path / "checkpoints" / f"{which}.pt").is_file():
        return None
    epoch = int(run.load_checkpoint(which)["epoch"])
    model = run.load_model(which)
    right = int((predict_proba(model, test.images, run.backbone, precision=precision).argmax(1) == test.labels).sum())
    interval = binomial_interval(right, len(test))
    return {"which": which, "epoch": epoch, "accuracy": right / len(test), "interval": list(interval)}


def paired_comparison(probs: dict[str, torch.Tensor], labels: torch.Tensor, a: str, b: str) -> dict[str, Any]:
    """``b`` minus ``a`` in accuracy on the same images: the difference, its 95% bootstrap interval over the
    images, and McNemar's exact p-value on the images where exactly one of them is right."""
    a_right, b_right = probs[a].argmax(1) == labels, probs[b].argmax(1) == labels
    return {
        "a": a,
        "b": b,
        "images": len(labels),
        "only_a": int((a_right & ~b_right).sum()),
        "only_b": int((~a_right & b_right).sum()),
        **paired_difference(a_right, b_right),
    }


def demo(
    out: Optional[Union[str, Path]] = None,
    *,
    n: int = 640,
    image_size: int = 64,
    epochs: int = 10,
    seed: int = 0,
    precision: Union[str, int] = "auto",
    quiet: bool = False,
) -> dict[str, Any]:
    """Both teaching tasks on built-in synthetic X-rays: a complete run folder in a few minutes on a CPU.

    :func:`compare` on ``synthetic:n=N,seed=SEED``. Offline, where ImageNet's weights cannot be had,
    Task 1.2 fine-tunes from the demo's own Task 1.1 checkpoint instead, and the page says so.

    Args:
        out: the folder to write. Without it the folder is ``xraykit-demo``, or ``xraykit-demo-2``, ``-3``, ...
            when an earlier demo is there: running the README's command twice works and keeps the first run.
        n: synthetic training images; validation and test get ``n // 4`` each.
        image_size: images are drawn and trained at ``image_size`` x ``image_size`` pixels (16 to 1024).
        epochs: epochs of each task.
        seed: the seed of the images, the split and the training.
        precision: as for :func:`xraykit.train`: ``"32"``, ``"bf16-mixed"`` or ``"auto"`` (``"32"`` for
            float32 where ``auto`` would be bfloat16).
        quiet: messages only, no progress bars.

    Returns:
        The summary, as :func:`compare` returns it; its ``"out"`` says which folder was written.

    Raises:
        XrayError: a count, size, seed or precision out of range, or an ``out`` that already holds a demo.
    """
    out = Path(out) if out is not None else _free_folder(Path("xraykit-demo"))
    # Named, not built here: metrics.json then says which data to give `explain-score` or `evaluate`.
    options = dict(epochs=epochs, image_size=image_size, seed=seed, precision=precision)
    title = "xraykit demo: Task 1.1 vs Task 1.2 on synthetic chest X-rays"
    summary = _compare(f"synthetic:n={n},seed={seed}", out, None, quiet, options, title, demo=True)
    summary["out"] = str(out)
    return summary


def _demo_weights(first_run: Run, cb: Callbacks, notes: list[str], backbone: str) -> str:
    """ImageNet weights when they can be had; offline, the demo's own Task 1.1 checkpoint, said aloud."""
    try:
        plugins.backbone(backbone).pretrained["imagenet"]()
        return "imagenet"
    except (WeightsUnavailableError, KeyError) as exc:
        fallback = str(first_run.path / "checkpoints" / "last.pt")
        note = (
            f"ImageNet weights unavailable ({str(exc).split('(')[0].strip()}): Task 1.2 fine-tunes from the "
            f"demo's own Task 1.1 checkpoint instead ({fallback}). Place the ImageNet file in torch's cache "
            f"or pass --weights to use them."
        )
        cb.message(note)
        notes.append(note)
        return fallback


def _side_by_side_misclassified(
    runs: dict[str, Run], probs: dict[str, torch.Tensor], test: XrayData, path: Path
) -> None:
    images, captions = [], []
    for label, run in runs.items():
        wrong = misclassified(probs[label], test.labels, limit=12)
        images.append(test.images[wrong])
        captions += [f"{label.split(':')[0]}\n{t}" for t in titles(probs[label], test.labels, wrong, run.classes)]
    figures.image_grid(
        torch.cat(images),
        captions,
        path,
        suptitle="Misclassified test images (most confident first)",
        empty_text="No misclassified images",
    )


def _cam_figure(
    runs: dict[str, Run],
    models: dict[str, nn.Module],
    probs: dict[str, torch.Tensor],
    test: XrayData,
    val: XrayData,
    path: Path,
) -> dict[str, Optional[dict[str, Any]]]:
    """A NORMAL and a PNEUMONIA test image explained by each task's model: the first of each class,
    for PNEUMONIA the first whose lesion is known where masks exist, so its outline can be drawn.

    Where the validation images have lesion masks (synthetic X-rays), each model's map is drawn at
    the CAM setting whose maps point into those lesions most often (:func:`choose_cam_setting`):
    at the demo's 64 pixels the classic ``layer4`` map is a 2 x 2 grid that cannot land on a lesion,
    and a finer layer can. Returns each model's choice (None: no lesions to choose by, classic CAM).
    """
    lesioned = test.masks.flatten(1).any(1) if test.masks is not None else torch.zeros(len(test), dtype=torch.bool)
    picks = []
    for c, name in enumerate(test.classes):
        of_class = (test.labels == c).nonzero().flatten()
        preferred = of_class[lesioned[of_class]] if name == "PNEUMONIA" else of_class
        if len(of_class):
            picks.append(int((preferred if len(preferred) else of_class)[0]))
    idx = torch.tensor(picks)
    chosen: dict[str, Optional[dict[str, Any]]] = {}
    all_images, all_maps, captions, masks, map_titles = [], [], [], [], []
    for label, run in runs.items():
        choice = chosen[label] = _cam_setting(models[label], run, val)
        options = choice["options"] if choice else {}
        setting = choice["variant"] if choice else "cam"
        picked = probs[label][idx]
        preds = picked.argmax(1)
        all_maps.append(explain_maps(models[label], run.backbone, test.images[idx], preds, **options))
        all_images.append(test.images[idx])
        captions += [
            f"{label}\ntrue {test.classes[test.labels[i]]}, pred {test.classes[p]} ({picked[j, p]:.2f})"
            for j, (i, p) in enumerate(zip(picks, preds.tolist()))
        ]
        score = f"\npointing game {choice['pointing_game']:.2f} on validation lesions" if choice else ""
        map_titles += [f"Class Activation Map, {setting}{score}"] * len(picks)
        if test.masks is not None:
            masks.append(test.masks[idx])
    figures.overlay_pairs(
        torch.cat(all_images),
        torch.cat(all_maps),
        captions,
        path,
        masks=torch.cat(masks) if masks else None,
        map_title=map_titles,
    )
    return chosen


def _cam_setting(model: nn.Module, run: Run, val: XrayData) -> Optional[dict[str, Any]]:
    """The CAM setting chosen on ``val``'s lesioned PNEUMONIA images, or None where it has none."""
    if val.masks is None or "PNEUMONIA" not in run.classes:
        return None
    k = run.classes.index("PNEUMONIA")
    sick = lesioned(val, k)
    if not len(sick):
        return None
    return choose_cam_setting(model, run.backbone, val.images[sick], val.masks[sick], k)


def _free_folder(first: Path) -> Path:
    """``first`` if it does not exist yet, else the first of ``first-2``, ``first-3``, ... that does not."""
    candidate, n = first, 1
    while candidate.exists():
        n += 1
        candidate = first.with_name(f"{first.name}-{n}")
    return candidate
