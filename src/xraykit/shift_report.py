"""``xraykit shift RUN DATA``: are these X-rays like the ones the run learned from?

Read before any accuracy: a model applied to another hospital's images can lose ten points
that its validation split never showed. The report needs no label of the new images: it
groups them by their folder only to say where the differences are. See :mod:`xraykit.shift_measures`
for what is measured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from matplotlib.figure import Figure
from torch import nn

from . import figures
from .data.images import load_image
from .data.loading import DataLike, data_folder, describe, load_data
from .errors import XrayError
from .inference import head_inputs
from .interfaces import Backbone, XrayData
from .io import plain_text, refuse_inside, save_figure, save_torch, write_json
from .runs import Run, RunLike, refuse_other_run
from .shift_measures import (
    UNUSUAL_PERCENTILE,
    Reference,
    build_reference,
    describe_group,
    intensity_stats,
    stat_distance,
)
from .uncertainty import binomial_tail, labels_needed
from .weights import safe_load


def _features(model: nn.Module, backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    return head_inputs(model, backbone, images, 64, "cpu")


def run_reference(run: Run, which: Optional[str] = None, model: Optional[nn.Module] = None) -> Reference:
    """The reference of ``run``'s checkpoint ``which``: read from ``RUN/reference-<which>.pt``, or made once.

    The file keeps the digest of the checkpoint it was made from; when the checkpoint has changed since
    (a resumed run, a run still training), it is made again.

    Making it loads the run's own data again (the folder ``config.json`` names) and carves
    the same validation split as training did.
    """
    run.refuse_ensemble("compare what its network sees with new X-rays")
    name = run.checkpoint_path(which).stem
    path = run.path / f"reference-{name}.pt"
    digest = run.checkpoint_digest(which)
    try:
        state = safe_load(path) if path.is_file() else None
    except XrayError:  # a damaged reference is made again, like a stale one
        state = None
    if isinstance(state, dict) and state.get("checkpoint_sha256") == digest:
        return Reference.from_state(state)
    train, val = run.train_and_val(skip_bad=True)  # a reference is a hint: an unreadable image is left out
    model = model if model is not None else run.load_model(which)
    reference = build_reference(_features, run.backbone, model, train, val)
    save_torch(path, {**reference.to_state(), "checkpoint_sha256": digest})
    return reference


def score(reference: Reference, model: nn.Module, backbone: Backbone, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image: feature distance, its percentile among validation images, and the far-away flag."""
    distances = reference.distances(_features(model, backbone, images))
    return {"distance": distances, "percentile": reference.percentiles(distances), "far": reference.far(distances)}


def _groups(data: XrayData) -> dict[str, torch.Tensor]:
    """Image indices per class folder: the folders group images for the report; labels are never scored."""
    return {
        name: (data.labels == k).nonzero().flatten() for k, name in enumerate(data.classes) if (data.labels == k).any()
    }


def shift(
    run: RunLike,
    data: DataLike,
    *,
    which: Optional[str] = None,
    out: Optional[Union[str, Path]] = None,
    split: str = "test",
    show: int = 12,
) -> dict[str, Any]:
    """Compare ``data``'s ``split`` with ``run``'s training images; writes ``shift.json``, ``shift.png``
    and ``shift_unusual.png`` (the ``show`` most unusual images) into ``out`` (default: the run folder).

    No label is scored: X-rays from another hospital rarely come with labels, and whether they look like
    the training ones is worth knowing before the model is trusted on them. Their class folders only
    group the images in the report.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        data: the new X-rays, as for :func:`xraykit.train`.
        which: the checkpoint whose features are compared, ``"best"`` or ``"last"``; ``None``: the one the
            run's recipe selects.
        out: where ``shift.json`` and the figures go; ``None``: the run folder.
        split: the split of ``data`` to compare: ``"test"``, ``"val"`` or ``"train"``.
        show: how many of the most unusual images ``shift_unusual.png`` shows.

    Returns:
        The report ``shift.json`` holds: the share of unusual and far images, overall and per class
            folder, the intensity distances, the ``"verdicts"`` in words and the ``"most_unusual"`` images.

    Raises:
        XrayError: data that cannot be loaded, or a ``split`` it does not have.
    """
    run = Run.open(run)
    out_dir = Path(out) if out is not None else run.path
    refuse_inside(out_dir, [data_folder(data), data_folder(run.config.data)])
    refuse_other_run(out_dir, run)
    splits = load_data(data, run.config.image_size)
    if split not in splits:
        raise XrayError(f"{describe(data)}: no {split} split to compare (it has: {', '.join(splits)})")
    return compare_images(run, splits[split], describe(data), which=which, out=out, split=split, show=show)


def compare_images(
    run: Run,
    new: XrayData,
    label: str,
    *,
    which: Optional[str] = None,
    model: Optional[nn.Module] = None,
    out: Optional[Union[str, Path]] = None,
    split: str = "test",
    show: int = 12,
) -> dict[str, Any]:
    """:func:`shift` on images already loaded (``label`` names them); ``model``: the run's, if loaded."""
    model = model.cpu() if model is not None else run.load_model(which)
    reference = run_reference(run, which, model)
    scores = score(reference, model, run.backbone, new.images)
    stats = intensity_stats(new.images)
    out_dir = Path(out) if out is not None else run.path

    groups, verdicts = {}, []
    shifted = False  # some class folder's images called a shift
    for name, idx in _groups(new).items():
        k = reference.classes.index(name) if name in reference.classes else None
        mask = (
            (reference.train_labels == k)
            if k is not None
            else torch.ones_like(reference.train_labels, dtype=torch.bool)
        )
        ref_stats = {s: v[mask] for s, v in reference.train_stats.items()}
        new_stats = {s: v[idx] for s, v in stats.items()}
        unusual = float((scores["percentile"][idx] > UNUSUAL_PERCENTILE).float().mean())
        what = f"these {name} images" if k is not None else f"the images in {name}/"
        sentences = describe_group(ref_stats, new_stats, what)
        groups[name] = {
            "images": len(idx),
            "unusual_share": unusual,
            "far_share": float(scores["far"][idx].float().mean()),
            "median_percentile": float(scores["percentile"][idx].median()),
            "intensity_distance": {s: stat_distance(ref_stats[s], new_stats[s]) for s in new_stats},
            "verdicts": sentences,
        }
        verdicts.append(_feature_verdict(what, unusual, len(idx), len(reference.val_distances)))
        shifted = shifted or _is_shift(unusual, len(idx), len(reference.val_distances))
        verdicts += sentences

    unusual_all = float((scores["percentile"] > UNUSUAL_PERCENTILE).float().mean())
    if shifted and len(new) >= MIN_ADABN_IMAGES:
        verdicts.append(
            f"label-free help: `xraykit evaluate RUN DATA --adapt adabn` re-estimates the BatchNorm statistics on "
            f"these {len(new)} images; sound for a folder from one site (not for a handful, nor a mix of sites), "
            "and reported beside the plain numbers, since it can also hurt"
        )
    needed = _labels_needed(run)
    verdicts.append(
        "what no label-free report can see: a new share of pneumonia or labels that mean something else "
        f"(label or concept shift) leave the features looking {'as they do' if shifted else 'typical'}; "
        f"label {needed['images']} of these images and `xraykit evaluate` gives the accuracy here within "
        f"+-{100 * needed['half_width']:.0f} points (95%), if it is about {needed['assumed_accuracy']:.0%} "
        f"({needed['at_worst']} at worst)"
    )
    order = scores["distance"].argsort(descending=True)[:show]
    report: dict[str, Any] = {
        "run": str(run.path),
        "data": label,
        "split": split,
        "checkpoint": run.checkpoint_path(which).name,
        "images": len(new),
        "unusual_share": unusual_all,
        "expected_unusual_share": 1 - UNUSUAL_PERCENTILE,
        "far_share": float(scores["far"].float().mean()),
        "intensity_distance": {s: stat_distance(reference.train_stats[s], v) for s, v in stats.items()},
        "groups": groups,
        "verdicts": verdicts,
        "labels_needed": needed,
        "most_unusual": [
            {
                "path": new.paths[i] if new.paths else str(i),
                "percentile": float(scores["percentile"][i]),
                "far": bool(scores["far"][i]),
            }
            for i in order.tolist()
        ],
    }
    write_json(out_dir / "shift.json", report)
    save_figure(out_dir / "shift.png", distance_figure(reference, scores["distance"], label))
    titles = [
        f"{Path(m['path']).name[:24]}\npercentile {100 * m['percentile']:.0f}" + (" (far)" if m["far"] else "")
        for m in report["most_unusual"]
    ]
    figures.image_grid(
        new.images[order],
        titles,
        out_dir / "shift_unusual.png",
        suptitle="The most unusual images, by feature distance",
        empty_text="No images",
    )
    return report


MIN_CALIBRATION_IMAGES = 20  # fewer validation images than this cannot say what a 95th percentile is


MIN_ADABN_IMAGES = 32  # AdaBN's statistics from fewer images than this are noise, not a site's look
LABELS_HALF_WIDTH = 0.05  # the accuracy at a new site measured to +-5 points


def _labels_needed(run: Run) -> dict[str, Any]:
    """How many labelled images would measure the accuracy at the new site to +-5 points: near the run's last
    validation accuracy (at most 95%: validation flatters, and a new site is where it stops), and at worst (50%)."""
    last = run.history[-1].get("val_accuracy") if run.history else None
    assumed = min(float(last), 0.95) if isinstance(last, (int, float)) and math.isfinite(last) else 0.5
    assumed = max(assumed, 0.5)
    return {
        "half_width": LABELS_HALF_WIDTH,
        "assumed_accuracy": assumed,
        "images": labels_needed(LABELS_HALF_WIDTH, assumed),
        "at_worst": labels_needed(LABELS_HALF_WIDTH, 0.5),
    }


SHIFT_P = 0.01  # an excess of unusual images is called a shift only when chance explains it this rarely


def _is_shift(unusual: float, images: int, calibration_images: int) -> bool:
    """Whether ``unusual`` of ``images`` beyond the validation images' 95th percentile is called a shift: over
    twice the 5% expected, chance giving that many less than ``SHIFT_P`` of the time, and enough validation
    images to know where the 95th percentile lies."""
    expected = 1 - UNUSUAL_PERCENTILE
    return (
        calibration_images >= MIN_CALIBRATION_IMAGES
        and unusual > 2 * expected
        and binomial_tail(round(unusual * images), images, expected) < SHIFT_P
    )


def _feature_verdict(what: str, unusual: float, images: int, calibration_images: int) -> str:
    """Typical, or not: ``unusual`` of ``images`` lie beyond the 95th percentile of the validation images.

    Images like the validation ones lie there 5% of the time, so among a few dozen, 10% can be
    chance. A shift is called when the share is over twice the expected one *and* a one-sided exact
    binomial test says chance would give that many less than 1% of the time.
    """
    expected = 1 - UNUSUAL_PERCENTILE
    if calibration_images < MIN_CALIBRATION_IMAGES:
        return (
            f"{what}: the run has {calibration_images} validation images, too few to say what is typical "
            "in what the network sees; the intensity statistics below still hold"
        )
    if not _is_shift(unusual, images, calibration_images):
        return f"{what}: {unusual:.0%} lie beyond 95% of validation images, about as many as expected; typical"
    return (
        f"{what}: {unusual:.0%} lie beyond 95% of the run's validation images in what the network sees "
        f"(expected about {expected:.0%}); expect the validation numbers not to hold here"
    )


def distance_figure(reference: Reference, distances: torch.Tensor, label: str) -> Figure:
    """Histograms of feature distance: the run's validation images against the new ones."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    top = float(max(reference.val_distances.max(), distances.max() if len(distances) else 0))
    bins = torch.linspace(0, top * 1.05 + 1e-6, 40).tolist()
    ax.hist(reference.val_distances.tolist(), bins=bins, alpha=0.6, density=True, label="the run's validation images")
    ax.hist(distances.tolist(), bins=bins, alpha=0.6, density=True, label=label)
    ax.axvline(float(torch.quantile(reference.val_distances, UNUSUAL_PERCENTILE)), color="k", ls="--", lw=1)
    ax.set_xlabel("feature distance to the training images")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    plain_text(fig).tight_layout()
    return fig


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
        reference = run_reference(run, which, model)
        scores = score(reference, model.cpu(), run.backbone, images)
    except (XrayError, OSError, RuntimeError, ValueError):  # no hint is better than no prediction
        return None
    return [
        {"percentile": float(pc), "unusual": bool(pc > UNUSUAL_PERCENTILE), "far": bool(far)}
        for pc, far in zip(scores["percentile"], scores["far"])
    ]
