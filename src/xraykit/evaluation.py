"""How good a run is on data it never saw: test metrics with their 95% intervals, the confusion matrix,
the misclassified images (with what the model looked at), and predictions for single image files.

What ``evaluate`` adds to the plain numbers, each beside them, never instead of them:

- a 95% interval on every number (:mod:`xraykit.uncertainty`);
- a decision threshold and a temperature chosen on the run's **validation** images, never on the
  test images (:mod:`xraykit.calibration`);
- the numbers after label-free adaptation to the test images (:mod:`xraykit.adaptation`);
- when the data is not the run's own, how far the test images are from the training ones
  (:mod:`xraykit.shift_report`).
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from matplotlib.figure import Figure
from torch import nn

from . import figures, shift_report
from .adaptation import adapt_batchnorm, adjust_to_prior, estimate_prior
from .calibration import (
    Threshold,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    parse_threshold,
    reliability_bins,
)
from .data.images import load_image
from .data.loading import DataLike, choose_validation, data_name, describe, held_out_test, load_data
from .errors import XrayError
from .explaining import explain_maps
from .inference import accelerated, predict_logits, resolve_device, resolve_precision, to_input
from .interfaces import Backbone, XrayData
from .io import save_figure, write_json
from .metrics import compute_metrics, positive_class, predictions
from .progress import console
from .runs import Run, RunLike
from .shift_measures import UNUSUAL_PERCENTILE
from .uncertainty import LEVEL, binomial_interval, bootstrap_interval

ADAPTATIONS = ("adabn", "prior")
RESAMPLES = 1000


def evaluate(
    run: RunLike,
    data: DataLike,
    *,
    which: Optional[str] = None,
    out: Optional[Union[str, Path]] = None,
    device: str = "auto",
    precision: Union[str, int] = "auto",
    skip_bad: bool = False,
    cam: bool = True,
    quiet: bool = False,
    threshold: Threshold = 0.5,
    adapt: Sequence[str] = (),
    _splits: Optional[dict[str, XrayData]] = None,
) -> dict[str, Any]:
    """Test metrics of a run on ``data``'s test split; writes ``metrics.json`` and figures.

    Every number comes with a 95% interval (``metrics["intervals"]``). ``threshold`` is the
    probability of the positive class (PNEUMONIA) at or above which an image is called
    positive: a number, ``"youden"`` or ``"sensitivity=0.95"``; a rule is applied on the run's
    own validation images (reloaded from the data it was trained on, the same split) and the
    threshold it picks is then used, unchanged, on the test images. A temperature is fitted
    on the same validation images (``metrics["calibration"]``, ``reliability.png``); a run
    whose validation images cannot be loaded again is evaluated without it, with a note.
    ``adapt`` (``"adabn"``, ``"prior"``) adds the numbers after label-free adaptation under
    ``metrics["adapted"]``. When ``data`` is not the data the run was trained on,
    ``metrics["shift"]`` says how far its test images are from the training ones.

    ``precision``: ``"32"``, ``"bf16-mixed"`` or ``"auto"`` (:func:`xraykit.inference.resolve_precision`).
    ``quiet`` keeps the names of skipped unreadable files (``skip_bad``) off the terminal;
    ``metrics.json`` lists them either way.
    """
    run = Run.open(run)
    rule = parse_threshold(threshold)
    adapt = _adaptations(adapt)
    if rule != 0.5 and run.config.num_classes != 2:
        raise XrayError(
            f"threshold {threshold}: a threshold needs two classes; {run.path} has {run.config.num_classes}"
        )
    out_dir = Path(out) if out is not None else run.path
    skipped: list[str] = []

    def on_skip(message: str) -> None:
        skipped.append(message)
        if not quiet:
            console.print(f"skipped {message}", markup=False)

    test = held_out_test(load_data(data, run.config.image_size, skip_bad, on_skip), describe(data))
    run.check_classes(test, describe(data))
    model, bb = run.load_model(which), run.backbone
    dev = resolve_device(device)
    how = resolve_precision(precision, dev)
    logits = _logits(model, test.images, bb, dev, how)
    probs = logits.softmax(1)

    val: Optional[XrayData] = None
    val_note = None
    try:
        val = validation_images(run, _splits)
    except XrayError as exc:
        val_note = str(exc)
    val_logits = None if val is None else _logits(model, val.images, bb, dev, how)

    chosen: Optional[float] = None  # None: the most probable class (argmax), the plain 0.5
    if rule != 0.5:
        if val_logits is None or val is None:
            raise XrayError(f"--threshold {rule} is chosen on the run's validation images: {val_note}")
        p = positive_class(run.classes)
        chosen = choose_threshold(val_logits.softmax(1)[:, p], (val.labels == p).long(), rule)

    metrics = _scored(probs, test.labels, run.classes, chosen)
    metrics["threshold_rule"] = "fixed" if isinstance(rule, float) else rule
    if "threshold" in metrics and not isinstance(rule, float):
        metrics["threshold_chosen_on"] = f"the run's validation images ({len(val) if val is not None else 0})"
    metrics.update(
        {
            "run": str(run.path),
            "data": "in-memory" if isinstance(data, dict) else str(data),
            "checkpoint": run.checkpoint_path(which).name,
            "skipped_files": skipped,
        }
    )
    if val_logits is not None and val is not None:
        metrics["calibration"] = calibrate(val_logits, val.labels, logits, test.labels)
        save_figure(out_dir / "reliability.png", reliability_figure(metrics["calibration"]))
    else:
        metrics["calibration"] = {"note": f"calibration skipped: {val_note}"}
    if adapt:
        metrics["adapted"] = _adapted(run, model, bb, test, probs, chosen, adapt, dev)
    shift = _shift_check(run, data, test, which, model, out_dir)
    if shift is not None:
        metrics["shift"] = shift
    write_json(out_dir / "metrics.json", metrics)
    figures.confusion_matrix(metrics["confusion_matrix"], run.classes, out_dir / "confusion_matrix.png")

    preds = predictions(probs, run.classes, chosen)
    wrong = misclassified(probs, test.labels, preds=preds)
    figures.image_grid(
        test.images[wrong],
        titles(probs, test.labels, wrong, run.classes, preds=preds),
        out_dir / "misclassified.png",
        suptitle=f"Misclassified: {len(wrong)} of {len(test)}",
        empty_text="No misclassified images",
    )
    if cam and run.backbone.cam_layer is not None and len(wrong):
        shown = wrong[:12]
        maps = explain_maps(model, bb, test.images[shown], preds[shown])
        figures.overlay_pairs(
            test.images[shown],
            maps,
            titles(probs, test.labels, shown, run.classes, preds=preds),
            out_dir / "misclassified_cam.png",
            suptitle="What the model looked at when it was wrong",
            masks=None if test.masks is None else test.masks[shown],
        )
    return metrics


def _logits(
    model: nn.Module, images: torch.Tensor, backbone: Backbone, device: torch.device, precision: str = "32"
) -> torch.Tensor:
    model.eval().to(device)
    forward = accelerated(model, device, precision)
    return predict_logits(forward, images, partial(to_input, backbone=backbone), 64, device)


def _adaptations(adapt: Union[str, Sequence[str]]) -> list[str]:
    """``["adabn", "prior"]`` from ``"adabn,prior"``, ``["adabn", "prior"]`` or a mix; unknown names refused."""
    names = [adapt] if isinstance(adapt, str) else list(adapt)
    chosen = [n.strip() for name in names for n in name.split(",") if n.strip()]
    for name in chosen:
        if name not in ADAPTATIONS:
            raise XrayError(f"--adapt '{name}': expected one of {', '.join(ADAPTATIONS)}")
    return list(dict.fromkeys(chosen))


def validation_images(run: Run, splits: Optional[dict[str, XrayData]] = None) -> XrayData:
    """The run's own validation images: its data loaded again and the same split carved as in training.

    ``splits``: the run's data, when it is already loaded. An :class:`XrayError` says why they
    cannot be had (a run trained on data loaded in Python, a data folder since moved).
    """
    if splits is None:
        if run.config.data == "in-memory":
            raise XrayError(
                f"{run.path} was trained on data loaded in Python, so its validation images cannot be loaded again"
            )
        record = run.record
        splits = load_data(
            run.config.data, run.config.image_size, skip_bad=record.skip_bad or bool(record.skipped_files)
        )
    return choose_validation(splits, run.config.val_from_train, run.config.seed)[1]


# ----------------------------------------------------------------------------- numbers and their intervals


def _scored(probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], threshold: Optional[float]) -> dict:
    metrics = compute_metrics(probs, labels, classes, threshold)
    metrics["intervals"] = intervals(probs, labels, classes, threshold)
    return metrics


def intervals(
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    threshold: Optional[float] = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """95% intervals: exact binomial for accuracy, sensitivity, specificity and each class's accuracy;
    a seeded percentile bootstrap over test images for balanced accuracy and ROC AUC.
    ``None`` where a number is undefined (no image of a class)."""
    k = len(classes)
    preds = predictions(probs, classes, threshold)
    correct = preds == labels

    def exact(right: torch.Tensor) -> Optional[list[float]]:
        return list(binomial_interval(int(right.sum()), len(right))) if len(right) else None

    per_class = {c: exact(correct[labels == i]) for i, c in enumerate(classes)}
    out: dict[str, Any] = {
        "level": LEVEL,
        "accuracy": exact(correct),
        "per_class_accuracy": per_class,
    }
    if k == 2:
        p = positive_class(classes)
        out["sensitivity"], out["specificity"] = per_class[classes[p]], per_class[classes[1 - p]]
    onehot = torch.nn.functional.one_hot(labels, k).double()
    right = correct.double()

    def balanced(idx: torch.Tensor) -> Optional[float]:
        w = torch.bincount(idx, minlength=len(labels)).double()
        support = w @ onehot
        hits = (w * right) @ onehot
        present = support > 0
        return float((hits[present] / support[present]).mean()) if bool(present.any()) else None

    scores = [probs[:, positive_class(classes)]] if k == 2 else [probs[:, c] for c in range(k)]
    positives = [labels == positive_class(classes)] if k == 2 else [labels == c for c in range(k)]
    aucs = [_WeightedAuc(s, pos) for s, pos in zip(scores, positives)]

    def auc(idx: torch.Tensor) -> Optional[float]:
        w = torch.bincount(idx, minlength=len(labels)).double()
        values = [v for v in (a(w) for a in aucs) if v is not None]
        return sum(values) / len(values) if values else None

    out["balanced_accuracy"] = _finite(bootstrap_interval(balanced, len(labels), LEVEL, resamples, seed))
    out["roc_auc"] = _finite(bootstrap_interval(auc, len(labels), LEVEL, resamples, seed))
    out["method"] = (
        f"exact binomial (Clopper-Pearson) for proportions; percentile bootstrap over test images "
        f"({resamples} resamples, seed {seed}) for balanced accuracy and ROC AUC"
    )
    return out


def _finite(interval: tuple[float, float]) -> Optional[list[float]]:
    return None if any(math.isnan(v) for v in interval) else list(interval)


class _WeightedAuc:
    """ROC AUC of ``scores`` with each image counted ``w[i]`` times: a bootstrap resample without copying.

    The scores are sorted once; each call is then a few sums over the distinct scores (ties count half).
    """

    def __init__(self, scores: torch.Tensor, positives: torch.Tensor) -> None:
        values, self.group = torch.unique(scores.double(), return_inverse=True)
        self.groups = len(values)
        self.pos = positives.double()

    def __call__(self, w: torch.Tensor) -> Optional[float]:
        wp, wn = w * self.pos, w * (1 - self.pos)
        pos_at = torch.zeros(self.groups, dtype=torch.float64).index_add_(0, self.group, wp)
        neg_at = torch.zeros(self.groups, dtype=torch.float64).index_add_(0, self.group, wn)
        total_pos, total_neg = float(pos_at.sum()), float(neg_at.sum())
        if not total_pos or not total_neg:
            return None
        neg_below = torch.cumsum(neg_at, 0) - neg_at
        return float((pos_at * (neg_below + 0.5 * neg_at)).sum()) / (total_pos * total_neg)


# ----------------------------------------------------------------------------- calibration, adaptation, shift


def calibrate(
    val_logits: torch.Tensor, val_labels: torch.Tensor, test_logits: torch.Tensor, test_labels: torch.Tensor
) -> dict[str, Any]:
    """Temperature fitted on validation logits; the test images' calibration error before and after it."""
    t = fit_temperature(val_logits, val_labels)
    before, after = test_logits.softmax(1), (test_logits / t).softmax(1)

    def ece(probs: torch.Tensor) -> Optional[float]:
        value = expected_calibration_error(probs, test_labels)
        return None if math.isnan(value) else value

    return {
        "temperature": t,
        "fitted_on": f"the run's validation images ({len(val_labels)})",
        "ece_before": ece(before),
        "ece_after": ece(after),
        "bins": {"before": reliability_bins(before, test_labels), "after": reliability_bins(after, test_labels)},
    }


def reliability_figure(calibration: dict[str, Any]) -> Figure:
    """Reliability diagram: mean confidence against accuracy per bin, before and after the temperature."""
    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfectly calibrated")
    t = calibration["temperature"]
    for key, label, marker in (("before", "as trained", "o-"), ("after", f"temperature {t:.2f}", "s-")):
        points = [(b["confidence"], b["accuracy"]) for b in calibration["bins"][key] if b["images"]]
        if points:
            ax.plot(*zip(*points), marker, label=f"{label} (ECE {calibration[f'ece_{key}'] or 0:.3f})")
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("Reliability on the test images", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _adapted(
    run: Run,
    model: nn.Module,
    bb: Backbone,
    test: XrayData,
    probs: torch.Tensor,
    threshold: Optional[float],
    adapt: Sequence[str],
    device: torch.device,
) -> dict[str, Any]:
    """The numbers after each label-free adaptation to the test images (their labels only score the result)."""
    out: dict[str, Any] = {}
    if "adabn" in adapt:
        adapted = adapt_batchnorm(model.cpu(), to_input(test.images, bb))
        adapted_probs = _logits(adapted, test.images, bb, device).softmax(1)
        out["adabn"] = _scored(adapted_probs, test.labels, run.classes, threshold)
    if "prior" in adapt:
        model_prior, assumed = model_prior_of(run)
        new_prior = estimate_prior(probs, model_prior)
        adjusted = adjust_to_prior(probs.double(), model_prior, new_prior).float()
        out["prior"] = {
            "model_prior": dict(zip(run.classes, model_prior.tolist())),
            "model_prior_from": assumed,
            "estimated_prior": dict(zip(run.classes, new_prior.tolist())),
            **_scored(adjusted, test.labels, run.classes, threshold),
        }
    return out


def model_prior_of(run: Run) -> tuple[torch.Tensor, str]:
    """The class shares a run's probabilities assume, and why: uniform for a class-weighted loss, else the
    training shares."""
    k = len(run.classes)
    counts = run.record.train_class_counts
    if run.config.class_weights == "auto" or not counts:
        why = "class-weighted loss" if run.config.class_weights == "auto" else "training counts not recorded"
        return torch.full((k,), 1.0 / k), f"uniform ({why})"
    c = torch.tensor([float(counts.get(name, 0)) for name in run.classes]).clamp(min=1.0)
    return c / c.sum(), "the training class shares"


def _is_own_data(run: Run, data: DataLike) -> bool:
    """Whether ``data`` names the very data the run was trained on (then its test split shares its origin)."""
    return data_name(data) == run.config.data


def _shift_check(
    run: Run, data: DataLike, test: XrayData, which: Optional[str], model: nn.Module, out_dir: Path
) -> Optional[dict[str, Any]]:
    """The shift report's verdicts when ``data`` is not the run's own data; ``None`` when it is (or is in memory)."""
    if isinstance(data, dict) or _is_own_data(run, data):
        return None
    try:
        report = shift_report.compare_images(run, test, str(data), which=which, model=model, out=out_dir)
    except XrayError as exc:
        return {"note": f"shift not checked: {exc}"}
    keep = ("images", "unusual_share", "expected_unusual_share", "far_share", "intensity_distance", "verdicts")
    return {key: report[key] for key in keep}


# ----------------------------------------------------------------------------- single images


def predict(
    run: RunLike,
    images: Sequence[Union[str, Path]],
    *,
    which: Optional[str] = None,
    device: str = "auto",
    precision: Union[str, int] = "auto",
) -> list[dict[str, Any]]:
    """Label and probabilities for each image file, and a hint of how unusual it is.

    ``"percentile"``: the share of the run's validation images whose features lie closer to the
    training images than this image's; ``"unusual"``: beyond 95% of them; ``"far"``: well beyond
    all of them (a hint that the image is not like the training X-rays, not a verdict). All
    three are ``None`` when the run's training images cannot be loaded again to compare with.
    """
    run = Run.open(run)
    if not images:
        raise XrayError("no images given")
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    model = run.load_model(which)
    dev = resolve_device(device)
    probs = _logits(model, batch, run.backbone, dev, resolve_precision(precision, dev)).softmax(1)
    hints = familiarity(run, batch, which, model)
    results = []
    for i, (path, p) in enumerate(zip(images, probs)):
        k = int(p.argmax())
        results.append(
            {
                "path": str(path),
                "label": run.classes[k],
                "probability": float(p[k]),
                "probabilities": dict(zip(run.classes, map(float, p))),
                **(hints[i] if hints else {"percentile": None, "unusual": None, "far": None}),
            }
        )
    return results


def familiarity_of_files(
    run: RunLike, images: Sequence[Union[str, Path]], which: Optional[str] = None
) -> list[Optional[dict[str, Any]]]:
    """:func:`familiarity` of image files, ``None`` for each where no hint can be given."""
    run = Run.open(run)
    try:
        batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    except XrayError:
        return [None] * len(images)
    hints = familiarity(run, batch, which)
    return list(hints) if hints else [None] * len(images)


def familiarity(
    run: Run, images: torch.Tensor, which: Optional[str] = None, model: Optional[nn.Module] = None
) -> Optional[list[dict[str, Any]]]:
    """Per image: feature-distance percentile among the run's validation images, ``unusual`` and ``far``;
    ``None`` when the run's reference cannot be made (data loaded in Python, a moved folder)."""
    try:
        model = model if model is not None else run.load_model(which)
        reference = shift_report.run_reference(run, which, model)
        scores = shift_report.score(reference, model.cpu(), run.backbone, images)
    except (XrayError, OSError):
        return None
    return [
        {"percentile": float(pc), "unusual": bool(pc > UNUSUAL_PERCENTILE), "far": bool(far)}
        for pc, far in zip(scores["percentile"], scores["far"])
    ]


def misclassified(
    probs: torch.Tensor, labels: torch.Tensor, limit: int = 24, preds: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Indices of wrong predictions (``preds``, default the most probable class), the most confident first."""
    preds = probs.argmax(1) if preds is None else preds
    wrong = (preds != labels).nonzero().flatten()
    confidence = probs[wrong, preds[wrong]]
    return wrong[confidence.argsort(descending=True)][:limit]


def titles(
    probs: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    classes: Sequence[str],
    preds: Optional[torch.Tensor] = None,
) -> list[str]:
    """``true CLASS / pred CLASS (probability)`` for each image at ``index``."""
    preds = probs.argmax(1) if preds is None else preds
    return [
        f"true {classes[int(labels[i])]}\npred {classes[int(preds[i])]} ({probs[i, preds[i]]:.2f})"
        for i in index.tolist()
    ]
