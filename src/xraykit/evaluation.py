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

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from . import figures, shift_report
from .adaptation import adapt_batchnorm, adjust_to_prior, estimate_prior, estimate_prior_bbse, model_prior_of
from .calibration import Threshold, calibrate, choose_threshold, parse_threshold, reliability_figure
from .data.copies import copies_of
from .data.loading import DataLike, data_folder, data_name, describe, held_out_test, left_out_of, load_data
from .devices import resolve_device, resolve_precision
from .errors import XrayError
from .explaining import explain_maps
from .inference import logits_of, to_input
from .interfaces import Backbone, XrayData
from .io import refuse_inside, save_figure, write_json
from .metrics import compute_metrics, positive_class, predictions
from .progress import console
from .runs import Run, RunLike, refuse_other_run
from .tables import Metrics
from .tta import VIEWS
from .uncertainty import intervals

ADAPTATIONS = ("adabn", "prior")


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
    tta: bool = False,
) -> dict[str, Any]:
    """Test metrics of a run on ``data``'s test split; writes ``metrics.json`` and figures.

    Every number comes with a 95% interval (``metrics["intervals"]``). A threshold rule is applied on
    the run's own validation images (reloaded from the data it was trained on, the same split) and the
    threshold it picks is then used, unchanged, on the test images: a threshold chosen on the test images
    would flatter them. A temperature is fitted on the same validation images (``metrics["calibration"]``,
    ``reliability.png``); a run whose validation images cannot be loaded again is evaluated without it,
    with a note. When ``data`` is not the data the run was trained on, ``metrics["shift"]`` says how far
    its test images are from the training ones.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        data: the data whose test split is scored, as for :func:`xraykit.train`: the run's own, or other
            X-rays with the same class folders.
        which: the checkpoint, ``"best"`` (lowest validation loss) or ``"last"``; ``None``: the one the run's
            recipe selects.
        out: where ``metrics.json`` and the figures go; ``None``: the run folder.
        device: ``"auto"`` (CUDA, else MPS, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        precision: ``"32"``, ``"bf16-mixed"`` or ``"auto"`` (:func:`xraykit.devices.resolve_precision`).
        skip_bad: skip unreadable image files instead of stopping at the first; ``metrics.json`` lists them.
        cam: also draw ``misclassified_cam.png``, what the model looked at when it was wrong.
        quiet: keep the names of skipped unreadable files off the terminal; ``metrics.json`` lists them
            either way.
        threshold: the probability of the positive class (PNEUMONIA) at or above which an image is called
            positive: a number, ``"youden"`` or ``"sensitivity=0.95"`` (a rule, chosen on validation
            images as above). Any but 0.5 needs a two-class run.
        adapt: ``"adabn"``, ``"prior"`` or both: adds the numbers after label-free adaptation to the test
            images under ``metrics["adapted"]``.
        tta: average each image's probabilities over views that keep its anatomy (:mod:`xraykit.tta`), for
            the test and the validation images alike; ``metrics["tta"]`` names the views.

    Returns:
        The metrics that ``metrics.json`` holds (``accuracy``, ``per_class_accuracy``, ``intervals``,
            ``confusion_matrix``, ``calibration``, ...); in a notebook it shows as a table.

    Raises:
        XrayError: a threshold or adaptation not understood, data without a test split or with other
            classes than the run's, or a checkpoint that is not there.
    """
    run = Run.open(run)
    rule = parse_threshold(threshold)
    adapt = _adaptations(adapt)
    if rule != 0.5 and run.config.num_classes != 2:
        raise XrayError(
            f"threshold {threshold}: a threshold needs two classes; {run.path} has {run.config.num_classes}"
        )
    out_dir = Path(out) if out is not None else run.path
    refuse_inside(out_dir, [data_folder(data), data_folder(run.config.data)])
    refuse_other_run(out_dir, run)
    skipped: list[str] = []

    def on_skip(message: str) -> None:
        skipped.append(message)
        if not quiet:
            console.print(f"skipped {message}")

    test = held_out_test(load_data(data, run.config.image_size, skip_bad, on_skip), describe(data))
    run.check_classes(test, describe(data))
    state = run.load_checkpoint(which)
    model, bb = run.load_model(which, state), run.backbone
    dev = resolve_device(device)
    how = resolve_precision(precision, dev)
    logits = logits_of(model, test.images, bb, dev, how, tta)
    probs = logits.softmax(1)

    val: Optional[XrayData] = None
    val_note = None
    copies = None  # test images with the pixels of a training or validation image: they measure memory
    try:
        seen, val = run.train_and_val(same_as_training=True)  # a threshold is refitted on those images only
        copies = copies_of(test, [seen, val])
    except XrayError as exc:
        val_note = str(exc)
    val_logits = None if val is None else logits_of(model, val.images, bb, dev, how, tta)

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
            "checkpoint_epoch": state.get("epoch"),
            "skipped_files": skipped,
            **({"tta": list(VIEWS)} if tta else {}),
            **({"ensemble": [m["path"] for m in run.members]} if run.members else {}),
            **({} if copies is None else {"copies_of_training_images": copies}),
            **({"left_out": left} if (left := left_out_of(data)) else {}),
        }
    )
    if val_logits is not None and val is not None:
        metrics["calibration"] = calibrate(val_logits, val.labels, logits, test.labels)
        save_figure(out_dir / "reliability.png", reliability_figure(metrics["calibration"]))
    else:
        metrics["calibration"] = {"note": f"calibration skipped: {val_note}"}
    if adapt:
        validation = None if val_logits is None or val is None else (val_logits.softmax(1), val.labels)
        metrics["adapted"] = _adapted(run, model, bb, test, probs, chosen, adapt, dev, how, validation)
    shift = _shift_check(run, data, test, which, model, out_dir)
    if shift is not None:
        metrics["shift"] = shift
    preds = predictions(probs, run.classes, chosen)
    wrong = misclassified(probs, test.labels, preds=preds)
    with_cam = cam and run.backbone.cam_layer is not None and len(wrong) > 0 and run.members is None  # one network
    metrics["figures"] = [
        "confusion_matrix.png",
        "misclassified.png",
        *(["misclassified_cam.png"] if with_cam else []),
        *(["reliability.png"] if "temperature" in metrics["calibration"] else []),
        *(["shift.png", "shift_unusual.png"] if shift is not None and "verdicts" in shift else []),
    ]
    write_json(out_dir / "metrics.json", metrics)
    figures.confusion_matrix(metrics["confusion_matrix"], run.classes, out_dir / "confusion_matrix.png")
    figures.image_grid(
        test.images[wrong],
        titles(probs, test.labels, wrong, run.classes, preds=preds),
        out_dir / "misclassified.png",
        suptitle=f"Misclassified: {len(wrong)} of {len(test)}",
        empty_text="No misclassified images",
    )
    if with_cam:
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
    return Metrics(metrics)


def _adaptations(adapt: Union[str, Sequence[str]]) -> list[str]:
    """``["adabn", "prior"]`` from ``"adabn,prior"``, ``["adabn", "prior"]`` or a mix; unknown names refused."""
    names = [adapt] if isinstance(adapt, str) else list(adapt)
    chosen = [n.strip() for name in names for n in name.split(",") if n.strip()]
    for name in chosen:
        if name not in ADAPTATIONS:
            raise XrayError(f"--adapt '{name}': expected one of {', '.join(ADAPTATIONS)}")
    return list(dict.fromkeys(chosen))


# ----------------------------------------------------------------------------- numbers and their intervals


def _scored(probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], threshold: Optional[float]) -> dict:
    metrics = compute_metrics(probs, labels, classes, threshold)
    metrics["intervals"] = intervals(probs, labels, classes, threshold)
    return metrics


# ----------------------------------------------------------------------------- calibration, adaptation, shift


def _adapted(
    run: Run,
    model: nn.Module,
    bb: Backbone,
    test: XrayData,
    probs: torch.Tensor,
    threshold: Optional[float],
    adapt: Sequence[str],
    device: torch.device,
    precision: str,
    validation: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
) -> dict[str, Any]:
    """The numbers after each label-free adaptation to the test images (their labels only score the result).

    The prior adjustment takes the class shares estimated by BBSE from the run's validation images
    (``validation``: their probabilities and labels), which survives a model that is not calibrated; EM's
    estimate is reported beside it, and used only where no validation image is at hand.
    """
    out: dict[str, Any] = {}
    if "adabn" in adapt:
        adapted = adapt_batchnorm(model.cpu(), to_input(test.images, bb))
        adapted_probs = logits_of(adapted, test.images, bb, device, precision).softmax(1)
        out["adabn"] = _scored(adapted_probs, test.labels, run.classes, threshold)
    if "prior" in adapt:
        model_prior, assumed = model_prior_of(run)
        em = estimate_prior(probs, model_prior)
        estimate: dict[str, Any] = {"estimator": "em (no validation images to measure the confusion matrix on)"}
        new_prior = em
        if validation is not None:
            bbse = estimate_prior_bbse(validation[0], validation[1], probs)
            new_prior = torch.tensor(bbse["prior"])
            estimate = {"estimator": "bbse", "estimated_share_interval": bbse["interval"]}
        adjusted = adjust_to_prior(probs.double(), model_prior, new_prior)  # double: no ties made by rounding
        out["prior"] = {
            "model_prior": dict(zip(run.classes, model_prior.tolist())),
            "model_prior_from": assumed,
            "estimated_prior": dict(zip(run.classes, new_prior.tolist())),
            **estimate,
            "em_estimate": dict(zip(run.classes, em.tolist())),
            **_scored(adjusted, test.labels, run.classes, threshold),
        }
    return out


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
    except (XrayError, OSError, RuntimeError, ValueError) as exc:  # the numbers below still stand
        return {"note": f"shift not checked: {exc}"}
    keep = ("images", "unusual_share", "expected_unusual_share", "far_share", "intensity_distance", "verdicts")
    return {key: report[key] for key in keep}


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
