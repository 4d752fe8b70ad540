"""Explaining a run's predictions: figures for chosen images, maps for a batch, scores against known lesions,
and the CAM setting that points into lesions most often (several methods side by side: :mod:`xraykit.gallery`).

The helpers every explainer shares (the model in eval mode, upsampling a layer's map) live in
:mod:`xraykit.attribution`, which the built-in explainers import as an outside plugin can.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from . import figures, plugins, scoring
from .attribution import evaluating
from .data.images import load_image
from .data.loading import DataLike, describe, held_out_test, load_data
from .devices import autocast, resolve_precision
from .errors import XrayError, display_path
from .inference import predict_proba, to_input
from .interfaces import Backbone, XrayData
from .io import refuse_inside, refuse_over_inputs, write_json
from .runs import Run, RunLike
from .variants import variant_label


def explain_maps(
    model: nn.Module,
    backbone: Backbone,
    images: torch.Tensor,
    targets: torch.Tensor,
    method: str = "cam",
    batch_size: int = 16,
    **options: Any,
) -> torch.Tensor:
    """Attribution maps ``(N, H, W)`` of ``uint8`` images for ``targets``, by a registered explainer.

    The model comes back exactly as it was: it is explained in eval mode and each module's training flag
    is put back after, so maps can be drawn in the middle of training without changing the model.

    Args:
        model: the network, such as ``run.load_model()``.
        backbone: the backbone it was built from (``run.backbone``): it says how images become the
            network's input and which layer CAM reads.
        images: ``uint8`` images of shape ``(N, 1, H, W)``, as :class:`~xraykit.XrayData` holds them.
        targets: the class index to explain for each image, shape ``(N,)``: the prediction or the truth.
        method: a registered explainer: ``"cam"``, ``"guided-gradcam"``, ``"occlusion"``,
            ``"integrated-gradients"`` or a plugin's.
        batch_size: images explained at once; lower it when memory runs out.
        **options: the explainer's own options (``patch=16`` for occlusion, ``relu=False`` for cam);
            one it does not take is refused by name.

    Returns:
        The maps, a tensor of shape ``(N, H, W)``: one per image, at the images' size.

    Raises:
        XrayError: an unknown explainer, one that cannot explain this backbone, or an option it does not take.
    """
    explainer = plugins.explainer(method)
    if not explainer.supports(backbone):
        raise XrayError(f"explainer '{method}' cannot explain backbone '{backbone.name}'")
    check_explainer_options(method, options)
    maps = []
    with evaluating(model):
        for s in range(0, len(images), batch_size):
            inputs = to_input(images[s : s + batch_size], backbone).requires_grad_()
            maps.append(explainer.attribute(model, inputs, targets[s : s + batch_size], backbone, **options))
    return torch.cat(maps) if maps else torch.empty(0, *images.shape[-2:])


def check_explainer_options(method: str, options: dict[str, Any]) -> None:
    """Refuse, by name, an option that explainer ``method`` does not take."""
    params = inspect.signature(plugins.explainer(method).attribute).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = list(params)[4:]  # after model, inputs, targets, backbone
    for key in options:
        if key not in known:
            raise XrayError(f"explainer '{method}' has no option '{key}' (its options: {', '.join(known) or 'none'})")


def lesioned(data: XrayData, k: int) -> torch.Tensor:
    """Indices of the images of class ``k`` whose lesion mask is not empty (none without masks)."""
    if data.masks is None:
        return torch.empty(0, dtype=torch.long)
    return ((data.labels == k) & data.masks.flatten(1).any(1)).nonzero().flatten()


def check_supports(method: str, backbone: Backbone) -> None:
    if not plugins.explainer(method).supports(backbone):
        raise XrayError(f"explainer '{method}' cannot explain backbone '{backbone.name}'")


def test_split_of(run: Run, data: DataLike, target: str) -> tuple[str, XrayData, int]:
    """``(where, test split, index of target)``: the data's test split, checked against the run's classes."""
    where = describe(data)
    test = held_out_test(load_data(data, run.config.image_size), where)
    run.check_classes(test, where)
    if target not in run.classes:
        raise XrayError(f"Unknown target '{target}'. Known: {', '.join(run.classes)}")
    return where, test, run.classes.index(target)


def what_was_explained(run: Run, where: str, which: Optional[str], target: str) -> dict[str, str]:
    """The keys every explanation summary starts with: which run, data, checkpoint and class."""
    return {"run": str(run.path), "data": where, "checkpoint": run.checkpoint_path(which).name, "target": target}


def explain(
    run: RunLike,
    images: Sequence[Union[str, Path]],
    *,
    method: str = "cam",
    target: str = "predicted",
    out: Optional[Union[str, Path]] = None,
    which: Optional[str] = None,
    precision: Union[str, int] = "auto",
    **options: Any,
) -> list[Path]:
    """For each image, the original beside its attribution overlay; returns the PNG paths.

    The true label is shown when the image sits in a folder named after a class
    (``.../PNEUMONIA/x.jpeg``), so a map can be read against what the image really is.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        images: image files (JPEG, PNG, ...); at least one.
        method: a registered explainer: ``"cam"``, ``"guided-gradcam"``, ``"occlusion"``,
            ``"integrated-gradients"`` or a plugin's.
        target: the class the maps explain: a class name of the run, or ``"predicted"`` (each image's own
            prediction).
        out: the folder of the figures, one ``STEM_METHOD.png`` per image; ``None``: ``RUN/explain``.
        which: the checkpoint, ``"best"`` or ``"last"``; ``None``: the one the run's recipe selects.
        precision: that of the prediction and the maps: ``"32"``, ``"bf16-mixed"`` or ``"auto"`` (float32
            today, :func:`xraykit.devices.resolve_precision`).
        **options: the explainer's own options (``patch=16`` for occlusion, ``relu=False`` for cam), as
            for :func:`explain_maps`.

    Returns:
        The PNG files written, one per image, in order.

    Raises:
        XrayError: no images, a target that is not a class of the run, an unknown explainer or option,
            or a file that is not a readable image.
    """
    run = Run.open(run)
    run.refuse_ensemble("explain its predictions")
    if not images:
        raise XrayError("no images given")
    if target != "predicted" and target not in run.classes:
        raise XrayError(f"Unknown target '{target}'. Known: predicted, {', '.join(run.classes)}")
    out_dir = Path(out) if out is not None else run.path / "explain"
    paths = [Path(p) for p in images]
    refuse_inside(out_dir, [p.parent for p in paths if p.parent.name in run.classes], "class folder")
    names = figure_names(paths, method)
    refuse_over_inputs([out_dir / name for name in names], paths)
    model, bb = run.load_model(which), run.backbone
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    cpu = torch.device("cpu")
    how = resolve_precision(precision, cpu)
    probs = predict_proba(model, batch, bb, precision=how)
    preds = probs.argmax(1)
    targets = preds if target == "predicted" else torch.full_like(preds, run.classes.index(target))
    with autocast(how, cpu):
        maps = explain_maps(model, bb, batch, targets, method, **options).float()
    map_title = "Class Activation Map" if method == "cam" else f"{method} attribution"
    written = []
    for i, (path, name) in enumerate(zip(paths, names)):
        truth = path.parent.name if path.parent.name in run.classes else "unknown"
        title = (
            f"{display_path(path.name)}\ntrue {truth}, predicted {run.classes[preds[i]]} ({probs[i, preds[i]]:.2f})\n"
            f"{method} for {run.classes[targets[i]]}"
        )
        dst = out_dir / name
        figures.overlay_pairs(batch[i : i + 1], maps[i : i + 1], [title], dst, map_title=map_title)
        written.append(dst)
    return written


def figure_names(paths: Sequence[Path], method: str) -> list[str]:
    """A distinct file name for each image's figure: ``STEM_METHOD.png``, with the parent folder's name in
    front where two images share a stem (``NORMAL_x_cam.png``, ``PNEUMONIA_x_cam.png``), and a number where
    even that is shared. Two images never write one figure."""
    stems = [display_path(p.stem) for p in paths]
    names = [
        f"{display_path(p.parent.name)}_{stem}" if stems.count(stem) > 1 and p.parent.name else stem
        for p, stem in zip(paths, stems)
    ]
    out = []
    for i, name in enumerate(names):
        out.append(
            f"{name}-{names[:i].count(name) + 1}_{method}.png" if names.count(name) > 1 else f"{name}_{method}.png"
        )
    return out


def explain_score(
    run: RunLike,
    data: DataLike = "synthetic",
    *,
    methods: Optional[Sequence[str]] = None,
    limit: Optional[int] = None,
    out: Optional[Union[str, Path]] = None,
    which: Optional[str] = None,
    target: str = "PNEUMONIA",
    options: Optional[dict[str, dict[str, Any]]] = None,
) -> dict[str, Any]:
    """How well each explainer finds known lesions; writes ``explain_score.json``.

    Each ``target`` test image with a non-empty mask is explained for ``target`` by each method, and
    scored by the pointing game and the share of positive attribution inside the mask, beside the
    mask's area fraction, the chance level of both (see :mod:`xraykit.scoring`). A method drawn on a
    grid coarser than the image (``cam``) also gets ``ideal``: the grid and the scores of a perfect map
    on it, the most that grid allows.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        data: data with lesion masks: ``"synthetic[:n=...,seed=...]"`` or a folder written by
            ``xraykit synth``; its test split is scored.
        methods: the explainers to score; ``None``: every registered explainer that supports the run's
            backbone.
        limit: score only the first ``limit`` lesioned images (at least 1), for a quicker answer;
            ``None``: all of them.
        out: where ``explain_score.json`` goes; ``None``: the run folder.
        which: the checkpoint, ``"best"`` or ``"last"``; ``None``: the one the run's recipe selects.
        target: the class whose lesions are scored, a class name of the run.
        options: a method's own options, by method: ``{"occlusion": {"patch": 16}}``.

    Returns:
        The summary ``explain_score.json`` holds: what was explained, the ``"chance"`` level, and each
            method's scores under ``"methods"``.

    Raises:
        XrayError: data without lesion masks or without a lesioned ``target`` test image, an unknown
            target or explainer, options for a method not scored, or a ``limit`` below 1.
    """
    if limit is not None and limit < 1:
        raise XrayError("--limit must be at least 1")
    run = Run.open(run)
    run.refuse_ensemble("explain its predictions")
    where, test, k = test_split_of(run, data, target)
    if test.masks is None:
        raise XrayError(
            f"{where}: no lesion masks to score against (use 'synthetic', or a folder written by "
            "`xraykit synth`, which keeps them in its masks/ folder)"
        )
    chosen = lesioned(test, k)[:limit]
    if not len(chosen):
        raise XrayError(f"{where}: no {target} test image with a lesion mask to score against")
    bb = run.backbone
    if methods is None:
        methods = [name for name in plugins.list_plugins("explainer") if plugins.explainer(name).supports(bb)]
    options = dict(options or {})
    for method in methods:
        check_supports(method, bb)
    for method, opts in options.items():
        if method not in methods:
            raise XrayError(
                f"options given for '{method}', which is not among the methods scored ({', '.join(methods)})"
            )
        check_explainer_options(method, opts)

    model = run.load_model(which)
    images, masks = test.images[chosen], test.masks[chosen]
    probs = predict_proba(model, images, bb)
    summary = {
        **what_was_explained(run, where, which, target),
        "images": len(chosen),
        "predicted_as_target": float((probs.argmax(1) == k).float().mean()),
        "chance": {"mask_area_fraction": float(scoring.area_fraction(masks).mean())},
        "methods": scoring.score_methods(explain_maps, model, bb, images, masks, k, methods, options),
    }
    write_json((Path(out) if out is not None else run.path) / "explain_score.json", summary)
    return summary


# The CAM settings the demo chooses among: the classic map, then finer grids, each placed as the paper
# tiles it and where its receptive fields are centred (Tutorial 4, section 4). ``layer`` names
# ResNet's stages; a backbone without them is offered the settings of its own CAM layer only.
CAM_SETTINGS: tuple[dict[str, Any], ...] = (
    {},
    {"align": "receptive-field"},
    {"layer": "layer3"},
    {"layer": "layer3", "align": "receptive-field"},
    {"layer": "layer2"},
    {"layer": "layer2", "align": "receptive-field"},
)


def choose_cam_setting(
    model: nn.Module,
    backbone: Backbone,
    images: torch.Tensor,
    masks: torch.Tensor,
    target: int,
    settings: Sequence[dict[str, Any]] = CAM_SETTINGS,
) -> dict[str, Any]:
    """The CAM setting whose maps peak inside the known lesions most often: the pointing game.

    Choose it on validation images and show it on test ones, as a threshold is chosen: a figure
    drawn at the setting that looks best on the very images it shows flatters. Ties go to the
    earlier setting, so the classic CAM is kept unless another does better. Returns the chosen
    ``options``, its ``variant`` label, its ``pointing_game``, every setting's score and the
    number of ``images`` scored.
    """
    names = dict(model.named_modules())
    offered = [s for s in settings if s.get("layer") is None or s["layer"] in names]
    targets = torch.full((len(images),), target, dtype=torch.long)
    labels = [variant_label("cam", options) for options in offered]
    scores = {
        label: float(
            scoring.pointing_game(explain_maps(model, backbone, images, targets, "cam", **options), masks).mean()
        )
        for label, options in zip(labels, offered)
    }
    best = max(range(len(offered)), key=lambda i: (scores[labels[i]], -i))  # ties: the earlier setting
    return {
        "options": dict(offered[best]),
        "variant": labels[best],
        "pointing_game": scores[labels[best]],
        "scores": scores,
        "images": len(images),
    }
