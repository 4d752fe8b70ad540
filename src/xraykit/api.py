"""The public Python API: everything the CLI does, callable from a notebook.

Each function is a thin layer over the registries (backbones, strategies, explainers,
datasets), the training loop and the figures; the CLI is a thin layer over these.
"""

from __future__ import annotations

import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from rich.markup import escape
from torch import nn

from . import distributed, figures, plugins
from .data.images import load_image
from .data.splits import patient_split
from .data.synthetic import synthesize, synthetic_splits
from .errors import XrayError
from .interfaces import Backbone, XrayData
from .io import write_json, write_text
from .metrics import compute_metrics
from .progress import QuietCallbacks, RichCallbacks, console
from .runs import Run
from .training import RECIPES, Callbacks, TrainConfig, fit, predict_proba, resolve_device, to_input
from .weights import load_weights

DataLike = Union[str, Path, dict]
MIN_VAL_IMAGES = 100


# ----------------------------------------------------------------------------- registries


def list_backbones() -> list[str]:
    return sorted(plugins.entries("backbone"))


def list_strategies() -> list[str]:
    return sorted(plugins.entries("strategy"))


def list_explainers() -> list[str]:
    return sorted(plugins.entries("explainer"))


def list_datasets() -> list[str]:
    return sorted(plugins.entries("dataset"))


def create_backbone(name: str = "resnet18", num_classes: int = 2, weights: Optional[str] = None) -> nn.Module:
    """A fresh model of a registered backbone, optionally starting from ``weights``.

    >>> model = create_backbone("resnet18", num_classes=2)
    >>> model(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 2])
    """
    backbone = plugins.get("backbone", name)
    model = backbone.build(num_classes)
    load_weights(model, backbone, weights)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    return (sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters()))


# ----------------------------------------------------------------------------- data


def load_data(data: DataLike, image_size: int = 224, skip_bad: bool = False, on_skip=None) -> dict[str, XrayData]:
    """The splits at ``data``: a folder, an ``.npz`` file, ``synthetic[:options]``, or splits already loaded."""
    if isinstance(data, dict):
        return data
    location = str(data)
    for entry in plugins.entries("dataset").values():
        if entry.obj.can_load(location):
            return entry.obj.load(location, image_size=image_size, skip_bad=skip_bad, on_skip=on_skip)
    known = ", ".join(sorted(plugins.entries("dataset")))
    raise XrayError(f"{location}: no such folder, and no dataset plugin reads it (dataset sources: {known})")


def choose_validation(splits: dict[str, XrayData], val_from_train: Optional[float], seed: int) -> tuple[XrayData, XrayData, str]:
    """``(train, val, how)``: the official val split if it is big enough, else one carved by patient."""
    if "train" not in splits:
        raise XrayError("the data has no train split (expected DATA/train/{NORMAL,PNEUMONIA})")
    train = splits["train"]
    val = splits.get("val")
    if val_from_train is None and val is not None and len(val) >= MIN_VAL_IMAGES:
        return train, val, f"validation: the data's own val split ({len(val)} images)"
    fraction = val_from_train if val_from_train is not None else 0.1
    train_idx, val_idx = patient_split(train, fraction, seed)
    if not val_idx:  # one patient per class: nothing can be held out without losing a class
        if val is not None and len(val) and val_from_train is None:
            return train, val, (f"validation: the data's own val split ({len(val)} images), because train/ has "
                                f"too few patients to carve {fraction:.0%} from")
        raise XrayError(f"train split of {len(train)} images: too few patients to carve a validation split "
                        f"({fraction:.0%}) by patient; add images or a val/ folder")
    why = "" if val_from_train is not None else (
        f" because val/ has {len(val)} images (fewer than {MIN_VAL_IMAGES})" if val is not None else " because there is no val/")
    how = (f"validation: {len(val_idx)} images ({fraction:.0%}) carved from train by patient{why}; "
           f"{len(train_idx)} remain for training")
    return train.subset(train_idx), train.subset(val_idx), how


# ----------------------------------------------------------------------------- train


def _versions() -> dict:
    import captum
    import torchvision

    from . import __version__

    # str(): torch.__version__ is a str subclass that a weights-only checkpoint load would refuse.
    import numpy
    import PIL

    return {"xraykit": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "captum": str(captum.__version__), "numpy": numpy.__version__, "pillow": PIL.__version__,
            "python": platform.python_version()}


def _callbacks(label: str, quiet: bool, callbacks: Optional[Callbacks]) -> Callbacks:
    if callbacks is not None:
        return callbacks
    if not distributed.is_main():  # under torchrun only rank 0 reports
        return Callbacks()
    return QuietCallbacks() if quiet else RichCallbacks(label)


def train(
    data: DataLike = "synthetic",
    task: str = "scratch",
    *,
    backbone: str = "resnet18",
    weights: Optional[str] = None,
    epochs: int = 10,
    lr: Optional[float] = None,
    batch_size: int = 32,
    image_size: int = 224,
    seed: int = 0,
    device: str = "auto",
    recipe: str = "report",
    out: Optional[Union[str, Path]] = None,
    val_from_train: Optional[float] = None,
    class_weights: Optional[str] = None,
    balanced_sampler: Optional[bool] = None,
    augment: Optional[bool] = None,
    schedule: Optional[str] = None,
    select: Optional[str] = None,
    feature_cache: bool = True,
    skip_bad: bool = False,
    quiet: bool = False,
    callbacks: Optional[Callbacks] = None,
    data_name: Optional[str] = None,
) -> Run:
    """Train ``task`` (a strategy: ``scratch`` or ``finetune``) on ``data``; returns the run.

    Defaults are the report's recipe: ResNet-18, ``fc`` -> 2 classes, Adam, batch 32,
    10 epochs, lr and starting weights from the strategy. ``recipe="strong"`` adds
    augmentation, class weights, a cosine schedule and best-validation selection; any
    keyword given explicitly wins over the recipe. ``data_name``, when ``data`` is already
    loaded, says where it came from (``synthetic:n=640,seed=0``, a folder), so that
    ``config.json`` records it and ``--resume`` can load it again.
    """
    strategy = plugins.get("strategy", task)
    bb = plugins.get("backbone", backbone)
    if recipe not in RECIPES:
        raise XrayError(f"Unknown recipe '{recipe}'. Known: {', '.join(RECIPES)}")
    if epochs < 1 or batch_size < 1 or image_size < 16:
        raise XrayError("epochs and batch size must be at least 1, image size at least 16")
    chosen = dict(RECIPES[recipe])
    for key, value in dict(class_weights=class_weights, balanced_sampler=balanced_sampler, augment=augment,
                           schedule=schedule, select=select).items():
        if value is not None:
            chosen[key] = value
    cb = _callbacks(task, quiet, callbacks)

    log: list[str] = []  # what the terminal was told while setting up; kept as RUN/log.txt
    note = lambda text: (log.append(text), cb.message(escape(text)))  # noqa: E731  (file names are not markup)
    skipped: list[str] = []
    on_skip = lambda msg: (skipped.append(msg), note(f"skipped {msg}"))  # noqa: E731
    splits = load_data(data, image_size, skip_bad, on_skip)
    where = str(data) if not isinstance(data, dict) else "the data"
    if "train" not in splits:
        raise XrayError(f"{where}: no train split (expected {where}/train/NORMAL, {where}/train/PNEUMONIA, ...)")
    if len(splits["train"].classes) < 2:
        raise XrayError(f"{where}: the training split has one class ({', '.join(splits['train'].classes)}); "
                        "a classifier needs at least two class folders (e.g. NORMAL/ and PNEUMONIA/)")
    if skipped:
        note(f"{len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''} skipped (--skip-bad)")
    train_data, val_data, how = choose_validation(splits, val_from_train, seed)
    note(how)

    distributed.setup(resolve_device(device))  # under torchrun: join the other processes (rank 0 names the folder)
    run_dir = Path(out) if out is not None else Path("runs") / distributed.rank0_value(f"{task}-{datetime.now():%Y%m%d-%H%M%S}")
    if (run_dir / "config.json").exists():
        raise XrayError(f"{run_dir}: already holds a run; pick another --out, or continue it with --resume {run_dir}")
    distributed.barrier()  # every process has looked before rank 0 writes there

    config = TrainConfig(
        # An absolute path, so that `--resume` works from any directory.
        data=_data_name(data_name if data_name is not None else data),
        task=task, backbone=backbone, weights=weights if weights is not None else strategy.weights,
        epochs=epochs, lr=lr if lr is not None else strategy.lr, batch_size=batch_size, image_size=image_size,
        seed=seed, device=device, recipe=recipe, feature_cache=feature_cache, val_from_train=val_from_train,
        num_classes=len(train_data.classes), classes=list(train_data.classes), **chosen,
    )
    torch.manual_seed(seed)
    model = bb.build(config.num_classes)
    loaded = load_weights(model, bb, config.weights)
    if loaded:
        note(f"starting from {loaded}")
    strategy.freeze(model, bb)
    trainable, total = count_parameters(model)
    config.extra = {
        "validation": how, "weights_loaded": loaded or "random initialisation",
        "train_images": len(train_data), "val_images": len(val_data),
        "train_class_counts": train_data.class_counts(), "val_class_counts": val_data.class_counts(),
        "trainable_parameters": trainable, "total_parameters": total,
        "skipped_files": skipped, "skip_bad": skip_bad, "versions": _versions(), "notes": [],
    }
    if distributed.is_main():
        write_json(run_dir / "config.json", config.to_dict())
        write_text(run_dir / "log.txt", "".join(f"{line}\n" for line in log))
    return _fit_and_plot(model, bb, strategy, train_data, val_data, config, run_dir, cb, resume=None)


def _data_name(data: DataLike) -> str:
    """What ``config.json`` records as a run's data: an absolute path, so that ``--resume`` works from anywhere."""
    if isinstance(data, dict):
        return "in-memory"
    return str(Path(data).resolve()) if Path(data).exists() else str(data)


def _fit_and_plot(model, bb, strategy, train_data, val_data, config, run_dir, cb, resume) -> Run:
    try:
        history = fit(model, bb, strategy, train_data, val_data, config, run_dir, cb, resume=resume)
    except KeyboardInterrupt:
        done = Run(run_dir).history
        console.print(f"\nStopped. {len(done)} epoch(s) saved in {run_dir}; continue with "
                      f"`xraykit train --resume {run_dir}`.")
        raise
    if distributed.is_main():
        figures.loss_curves({f"{config.task} ({config.backbone})": history}, run_dir / "loss_curves.png")
    return Run(run_dir)


def resume(run: Union[str, Path, Run], *, epochs: Optional[int] = None, quiet: bool = False,
           callbacks: Optional[Callbacks] = None, data: Optional[DataLike] = None) -> Run:
    """Continue a run from its last checkpoint (same data, split and seed); ``epochs`` may extend it."""
    run = run if isinstance(run, Run) else Run(run)
    config = run.config
    if epochs is not None:
        config.epochs = epochs
    if data is None:
        if config.data == "in-memory":
            raise XrayError(f"{run.path}: trained on data loaded in Python, so the run cannot find it again; "
                            f"give it: xraykit train DATA --resume {run.path} (or resume(run, data=...))")
        data = config.data
    # A run stopped before its first epoch ended has no checkpoint: it starts again, exactly as train() did.
    state = run.load_checkpoint("last") if (run.path / "checkpoints" / "last.pt").is_file() else None
    cb = _callbacks(config.task, quiet, callbacks)
    skip_bad = bool(config.extra.get("skip_bad", config.extra.get("skipped_files")))
    splits = load_data(data, config.image_size, skip_bad=skip_bad)
    train_data, val_data, _ = choose_validation(splits, config.val_from_train, config.seed)
    done = state["epoch"] if state is not None else 0
    if done >= config.epochs:
        cb.message(f"{run.path} already finished {done} of {config.epochs} epochs")
        return run
    if (len(train_data), len(val_data)) != (config.extra.get("train_images"), config.extra.get("val_images")):
        cb.message(escape(f"warning: {data} now gives {len(train_data)} training and {len(val_data)} validation images, "
                          f"the run began with {config.extra.get('train_images')} and {config.extra.get('val_images')}"))
    bb, strategy = plugins.get("backbone", config.backbone), plugins.get("strategy", config.task)
    if state is None:
        torch.manual_seed(config.seed)
        model = bb.build(config.num_classes)
        load_weights(model, bb, config.weights)
        text = f"{run.path} has no checkpoint yet: training it again from epoch 1 of {config.epochs}"
    else:
        model = bb.build(config.num_classes)
        text = f"resuming {run.path} after epoch {done} of {config.epochs}"
    cb.message(escape(text))
    # A kill in the middle of a save leaves its temporary file (.last.pt.XXXX.tmp); only training writes these.
    for stale in [*run.path.glob(".*.json.*.tmp"), *run.path.glob("checkpoints/.*.pt.*.tmp")]:
        stale.unlink(missing_ok=True)
    log_file = run.path / "log.txt"
    if distributed.is_main():
        write_text(log_file, (log_file.read_text(encoding="utf-8") if log_file.is_file() else "") + text + "\n")
        write_json(run.path / "config.json", config.to_dict())
    return _fit_and_plot(model, bb, strategy, train_data, val_data, config, run.path, cb, resume=state)


# ----------------------------------------------------------------------------- evaluate, predict, explain


def _as_run(run) -> Run:
    return run if isinstance(run, Run) else Run(run)


def _test_split(splits: dict[str, XrayData], where) -> XrayData:
    if "test" not in splits:
        raise XrayError(f"{where}: no test split (expected {where}/test/{{NORMAL,PNEUMONIA}}, or pass the test folder itself)")
    return splits["test"]


def _check_classes(run: Run, data: XrayData, where) -> None:
    if tuple(data.classes) != run.classes:
        raise XrayError(f"{where}: classes {', '.join(data.classes)} differ from the run's {', '.join(run.classes)}")


def explain_maps(model: nn.Module, backbone: Backbone, images: torch.Tensor, targets: torch.Tensor,
                 method: str = "cam", batch_size: int = 16, **options) -> torch.Tensor:
    """Attribution maps ``(N, H, W)`` of ``uint8`` images for ``targets``, by a registered explainer.

    ``options`` go to the explainer (``patch=16`` for occlusion, ``relu=False`` for cam);
    one it does not take is refused by name. The model comes back exactly as it was.
    """
    from .builtin.explainers import evaluating

    explainer = plugins.get("explainer", method)
    if not explainer.supports(backbone):
        raise XrayError(f"explainer '{method}' cannot explain backbone '{backbone.name}'")
    check_explainer_options(method, options)
    with evaluating(model):
        maps = [explainer.attribute(model, to_input(images[s : s + batch_size], backbone).requires_grad_(),
                                    targets[s : s + batch_size], backbone, **options)
                for s in range(0, len(images), batch_size)]
    return torch.cat(maps) if maps else torch.empty(0, *images.shape[-2:])


def check_explainer_options(method: str, options: dict) -> None:
    """Refuse, by name, an option that explainer ``method`` does not take."""
    import inspect

    params = inspect.signature(plugins.get("explainer", method).attribute).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = list(params)[4:]  # after model, inputs, targets, backbone
    for key in options:
        if key not in known:
            raise XrayError(f"explainer '{method}' has no option '{key}' (its options: {', '.join(known) or 'none'})")


def evaluate(run, data: DataLike, *, which: Optional[str] = None, out: Optional[Union[str, Path]] = None,
             device: str = "auto", skip_bad: bool = False, cam: bool = True, quiet: bool = False) -> dict:
    """Test metrics of a run on ``data``'s test split; writes ``metrics.json`` and figures."""
    run = _as_run(run)
    out_dir = Path(out) if out is not None else run.path
    skipped: list[str] = []
    on_skip = lambda msg: (skipped.append(msg), console.print(f"skipped {msg}", markup=False))  # noqa: E731
    test = _test_split(load_data(data, run.config.image_size, skip_bad, on_skip), data)
    _check_classes(run, test, data)
    model, bb = run.load_model(which), run.backbone
    probs = predict_proba(model, test.images, bb, device=resolve_device(device))
    metrics = compute_metrics(probs, test.labels, run.classes)
    metrics.update({"run": str(run.path), "data": str(data) if not isinstance(data, dict) else "in-memory",
                    "checkpoint": run.checkpoint_path(which).name, "skipped_files": skipped})
    write_json(out_dir / "metrics.json", metrics)
    figures.confusion_matrix(metrics["confusion_matrix"], run.classes, out_dir / "confusion_matrix.png")

    wrong = _misclassified(probs, test.labels)
    figures.image_grid(test.images[wrong], _titles(probs, test.labels, wrong, run.classes),
                       out_dir / "misclassified.png", suptitle=f"Misclassified: {len(wrong)} of {len(test)}",
                       empty_text="No misclassified images")
    if cam and run.backbone.cam_layer is not None and len(wrong):
        shown = wrong[:12]
        maps = explain_maps(model, bb, test.images[shown], probs[shown].argmax(1))
        figures.overlay_pairs(test.images[shown], maps, _titles(probs, test.labels, shown, run.classes),
                              out_dir / "misclassified_cam.png", suptitle="What the model looked at when it was wrong",
                              masks=None if test.masks is None else test.masks[shown])
    return metrics


def _misclassified(probs: torch.Tensor, labels: torch.Tensor, limit: int = 24) -> torch.Tensor:
    """Indices of wrong predictions, the most confident mistakes first."""
    preds = probs.argmax(1)
    wrong = (preds != labels).nonzero().flatten()
    confidence = probs[wrong, preds[wrong]]
    return wrong[confidence.argsort(descending=True)][:limit]


def _titles(probs, labels, index, classes) -> list[str]:
    preds = probs.argmax(1)
    return [f"true {classes[labels[i]]}\npred {classes[preds[i]]} ({probs[i, preds[i]]:.2f})" for i in index.tolist()]


def predict(run, images: Sequence[Union[str, Path]], *, which: Optional[str] = None, device: str = "auto") -> list[dict]:
    """Label and probabilities for each image file."""
    run = _as_run(run)
    if not images:
        raise XrayError("no images given")
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    probs = predict_proba(run.load_model(which), batch, run.backbone, device=resolve_device(device))
    results = []
    for path, p in zip(images, probs):
        k = int(p.argmax())
        results.append({"path": str(path), "label": run.classes[k], "probability": float(p[k]),
                        "probabilities": dict(zip(run.classes, map(float, p)))})
    return results


def explain(run, images: Sequence[Union[str, Path]], *, method: str = "cam", target: str = "predicted",
            out: Optional[Union[str, Path]] = None, which: Optional[str] = None, **options) -> list[Path]:
    """For each image, the original beside its attribution overlay; returns the PNG paths.

    ``target`` is a class name or ``predicted``. The true label is shown when the image
    sits in a folder named after a class (``.../PNEUMONIA/x.jpeg``).
    """
    run = _as_run(run)
    if not images:
        raise XrayError("no images given")
    if target != "predicted" and target not in run.classes:
        raise XrayError(f"Unknown target '{target}'. Known: predicted, {', '.join(run.classes)}")
    model, bb = run.load_model(which), run.backbone
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    probs = predict_proba(model, batch, bb)
    preds = probs.argmax(1)
    targets = preds if target == "predicted" else torch.full_like(preds, run.classes.index(target))
    maps = explain_maps(model, bb, batch, targets, method, **options)
    out_dir = Path(out) if out is not None else run.path / "explain"
    written = []
    for i, path in enumerate(map(Path, images)):
        truth = path.parent.name if path.parent.name in run.classes else "unknown"
        title = (f"{path.name}\ntrue {truth}, predicted {run.classes[preds[i]]} ({probs[i, preds[i]]:.2f})\n"
                 f"{method} for {run.classes[targets[i]]}")
        dst = out_dir / f"{path.stem}_{method}.png"
        figures.overlay_pairs(batch[i : i + 1], maps[i : i + 1], [title], dst,
                              map_title="Class Activation Map" if method == "cam" else f"{method} attribution")
        written.append(dst)
    return written


def explain_score(run, data: DataLike = "synthetic", *, methods: Optional[Sequence[str]] = None,
                  limit: Optional[int] = None, out: Optional[Union[str, Path]] = None, which: Optional[str] = None,
                  target: str = "PNEUMONIA", options: Optional[dict] = None) -> dict:
    """How well each explainer finds known lesions; writes ``explain_score.json``.

    ``data`` must hold lesion masks: ``synthetic[:n=...,seed=...]`` or a folder written by
    ``xraykit synth``. Each ``target`` test image with a non-empty mask (the first
    ``limit`` of them) is explained for ``target`` by each of ``methods`` (default: every
    registered explainer that supports the run's backbone), and scored by the pointing
    game and the share of positive attribution inside the mask, beside the mask's area
    fraction, the chance level of both (see :mod:`xraykit.scoring`). A method drawn on a grid
    coarser than the image (``cam``) also gets ``ideal``: the grid and the scores of a
    perfect map on it, the most that grid allows. ``options`` maps a method to its options:
    ``{"occlusion": {"patch": 16}}``.
    """
    from . import scoring

    run = _as_run(run)
    where = str(data) if not isinstance(data, dict) else "the data"
    test = _test_split(load_data(data, run.config.image_size), where)
    _check_classes(run, test, where)
    if test.masks is None:
        raise XrayError(f"{where}: no lesion masks to score against (use 'synthetic', or a folder written by "
                        "`xraykit synth`, which keeps them in its masks/ folder)")
    if target not in run.classes:
        raise XrayError(f"Unknown target '{target}'. Known: {', '.join(run.classes)}")
    k = run.classes.index(target)
    chosen = ((test.labels == k) & test.masks.flatten(1).any(1)).nonzero().flatten()[:limit]
    if not len(chosen):
        raise XrayError(f"{where}: no {target} test image with a lesion mask to score against")
    bb = run.backbone
    if methods is None:
        methods = [name for name, entry in sorted(plugins.entries("explainer").items()) if entry.obj.supports(bb)]
    options = dict(options or {})
    for method in methods:
        if not plugins.get("explainer", method).supports(bb):
            raise XrayError(f"explainer '{method}' cannot explain backbone '{bb.name}'")
    for method, opts in options.items():
        if method not in methods:
            raise XrayError(f"options given for '{method}', which is not among the methods scored ({', '.join(methods)})")
        check_explainer_options(method, opts)

    model = run.load_model(which)
    images, masks = test.images[chosen], test.masks[chosen]
    probs = predict_proba(model, images, bb)
    summary = {
        "run": str(run.path), "data": where, "checkpoint": run.checkpoint_path(which).name,
        "target": target, "images": len(chosen),
        "predicted_as_target": float((probs.argmax(1) == k).float().mean()),
        "chance": {"mask_area_fraction": float(scoring.area_fraction(masks).mean())},
        "methods": scoring.score_methods(explain_maps, model, bb, images, masks, k, methods, options),
    }
    write_json((Path(out) if out is not None else run.path) / "explain_score.json", summary)
    return summary


# ----------------------------------------------------------------------------- synth, compare, demo


def synth(out: Union[str, Path], n: int = 200, size: int = 224, seed: int = 0, lesion_contrast: float = 0.35) -> Path:
    """Write synthetic X-rays in the Kaggle layout, lesion masks beside them in ``OUT/masks/``.

    ``n`` training images and ``n // 4`` each for ``val`` and ``test``.
    """
    from PIL import Image

    from .io import atomic_path

    out = Path(out)
    splits = synthetic_splits(n, size, seed, lesion_contrast)
    for split, data in splits.items():
        for i in range(len(data)):
            cls = data.classes[data.labels[i]]
            name = f"{data.patients[i]}.png"
            for folder, pixels in ((out / split / cls, data.images[i, 0]), (out / "masks" / split / cls, data.masks[i].to(torch.uint8) * 255)):
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(folder / name) as tmp:
                    Image.fromarray(pixels.numpy(), mode="L").save(tmp, format="PNG")
    return out


def _demo_weights(first_run: Run, cb: Callbacks, notes: list[str], backbone: str) -> str:
    """ImageNet weights when they can be had; offline, the demo's own Task 1.1 checkpoint, said aloud."""
    from .errors import WeightsUnavailableError

    bb = plugins.get("backbone", backbone)
    try:
        bb.pretrained["imagenet"]()
        return "imagenet"
    except (WeightsUnavailableError, KeyError) as exc:
        fallback = str(first_run.path / "checkpoints" / "last.pt")
        note = (f"ImageNet weights unavailable ({str(exc).split('(')[0].strip()}): Task 1.2 fine-tunes from the "
                f"demo's own Task 1.1 checkpoint instead ({fallback}). Place the ImageNet file in torch's cache "
                f"or pass --weights to use them.")
        cb.message(f"[yellow]{note}[/]")
        notes.append(note)
        return fallback


def compare(data: DataLike, *, out: Union[str, Path] = "runs/compare", backbone: str = "resnet18", epochs: int = 10,
            batch_size: int = 32, image_size: int = 224, seed: int = 0, device: str = "auto", recipe: str = "report",
            finetune_weights: Optional[str] = None, val_from_train: Optional[float] = None, quiet: bool = False,
            title: str = "Task 1.1 (from scratch) vs Task 1.2 (fine-tuning)", _demo: bool = False) -> dict:
    """Both tasks on the same data and split, evaluated on its test split, in one teaching page."""
    from .report import last_epoch_note, write_report

    started = time.perf_counter()
    out = Path(out)
    taken = [name for name in ("task1.1-scratch", "task1.2-finetune") if (out / name / "config.json").exists()]
    if taken:  # checked before any training, so that a mistaken --out costs nothing and overwrites nothing
        raise XrayError(f"{out}: already holds a run ({taken[0]}/); pick another --out")
    splits = load_data(data, image_size)
    _test_split(splits, data)
    common = dict(backbone=backbone, epochs=epochs, batch_size=batch_size, image_size=image_size, seed=seed,
                  device=device, recipe=recipe, val_from_train=val_from_train, quiet=quiet,
                  data_name=None if isinstance(data, dict) else str(data))  # loaded once above, recorded as named
    notes: list[str] = []
    runs: dict[str, Run] = {}
    runs["Task 1.1: scratch"] = train(splits, "scratch", out=out / "task1.1-scratch", **common)
    weights = finetune_weights
    if weights is None and _demo:
        weights = _demo_weights(runs["Task 1.1: scratch"], _callbacks("finetune", quiet, None), notes, backbone)
    runs["Task 1.2: finetune"] = train(splits, "finetune", weights=weights, out=out / "task1.2-finetune", **common)

    say = _callbacks("compare", quiet, None)
    for label, run in runs.items():
        note = last_epoch_note(label, run.history, run.config.select, run.path, run.data_argument or "DATA")
        if note:
            say.message(f"[yellow]{note}[/]")
            notes.append(note)

    results = {}
    for label, run in runs.items():
        metrics = evaluate(run, splits, quiet=quiet)
        history = run.history
        metrics["trainable_parameters"] = run.config.extra["trainable_parameters"]
        metrics["total_parameters"] = run.config.extra["total_parameters"]
        metrics["seconds_per_epoch"] = sum(h["seconds"] for h in history) / len(history)
        metrics["weights"] = run.config.extra["weights_loaded"]
        results[label] = metrics
    figures.loss_curves({label: run.history for label, run in runs.items()}, out / "loss_curves.png")
    # Each task's model and test predictions, once, for both figures below.
    test = splits["test"]
    models = {label: run.load_model() for label, run in runs.items()}
    probs = {label: predict_proba(models[label], test.images, run.backbone) for label, run in runs.items()}
    _side_by_side_misclassified(runs, probs, test, out / "misclassified.png")
    figure_list = [("Train and validation loss per epoch", "loss_curves.png"),
                   ("Misclassified test images", "misclassified.png")]
    if all(run.backbone.cam_layer for run in runs.values()):
        _cam_figure(runs, models, probs, test, out / "cam.png")
        figure_list.append(("Class Activation Maps (Captum LayerGradCam), a NORMAL and a PNEUMONIA test image", "cam.png"))
    summary = {"data": str(data) if not isinstance(data, dict) else "in-memory", "notes": notes,
               "validation": runs["Task 1.1: scratch"].config.extra["validation"], "tasks": results,
               "seconds": time.perf_counter() - started}
    write_json(out / "metrics.json", summary)
    write_report(out / "report.md", title, runs, results, notes, figure_list)
    return summary


def _side_by_side_misclassified(runs: dict[str, Run], probs: dict[str, torch.Tensor], test: XrayData, path: Path) -> None:
    images, titles = [], []
    for label, run in runs.items():
        wrong = _misclassified(probs[label], test.labels, limit=12)
        images.append(test.images[wrong])
        titles += [f"{label.split(':')[0]}\n{t}" for t in _titles(probs[label], test.labels, wrong, run.classes)]
    figures.image_grid(torch.cat(images), titles, path, suptitle="Misclassified test images (most confident first)",
                       empty_text="No misclassified images")


def _cam_figure(runs: dict[str, Run], models: dict[str, nn.Module], probs: dict[str, torch.Tensor], test: XrayData,
                path: Path) -> None:
    """A NORMAL and a PNEUMONIA test image (the first of each) explained by each task's model."""
    picks = [int((test.labels == c).nonzero()[0]) for c in range(len(test.classes)) if (test.labels == c).any()]
    idx = torch.tensor(picks)
    all_images, all_maps, titles, masks = [], [], [], []
    for label, run in runs.items():
        picked = probs[label][idx]
        preds = picked.argmax(1)
        all_maps.append(explain_maps(models[label], run.backbone, test.images[idx], preds))
        all_images.append(test.images[idx])
        titles += [f"{label}\ntrue {test.classes[test.labels[i]]}, pred {test.classes[p]} ({picked[j, p]:.2f})"
                   for j, (i, p) in enumerate(zip(picks, preds.tolist()))]
        if test.masks is not None:
            masks.append(test.masks[idx])
    figures.overlay_pairs(torch.cat(all_images), torch.cat(all_maps), titles, path,
                          masks=torch.cat(masks) if masks else None)


def demo(out: Optional[Union[str, Path]] = None, *, n: int = 640, image_size: int = 64, epochs: int = 10,
         seed: int = 0, quiet: bool = False) -> dict:
    """Both teaching tasks on built-in synthetic X-rays: a complete run folder in a few minutes on a CPU.

    Without ``out`` the folder is ``xraykit-demo``, or ``xraykit-demo-2``, ``-3``, ... when an
    earlier demo is there: running the README's command twice works and keeps the first
    run. The summary's ``"out"`` says which folder was written.
    """
    out = Path(out) if out is not None else _free_folder(Path("xraykit-demo"))
    # Named, not built here: metrics.json then says which data to give `explain-score` or `evaluate`.
    summary = compare(f"synthetic:n={n},seed={seed}", out=out, epochs=epochs, image_size=image_size, seed=seed,
                      quiet=quiet, _demo=True, title="xraykit demo: Task 1.1 vs Task 1.2 on synthetic chest X-rays")
    summary["out"] = str(out)
    return summary


def _free_folder(first: Path) -> Path:
    """``first`` if it does not exist yet, else the first of ``first-2``, ``first-3``, ... that does not."""
    candidate, n = first, 1
    while candidate.exists():
        n += 1
        candidate = first.with_name(f"{first.name}-{n}")
    return candidate


__all__ = [
    "train", "resume", "evaluate", "predict", "explain", "explain_maps", "explain_score", "compare", "demo", "synth",
    "create_backbone", "count_parameters", "load_data", "choose_validation",
    "list_backbones", "list_strategies", "list_explainers", "list_datasets", "synthesize",
]
