"""Explaining a run's predictions: figures for chosen images, maps for a batch, scores against known lesions.

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
from .data.images import display_path, load_image
from .data.loading import DataLike, describe, held_out_test, load_data
from .errors import XrayError
from .inference import autocast, predict_proba, resolve_precision, to_input
from .interfaces import Backbone
from .io import write_json
from .runs import Run, RunLike


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

    ``options`` go to the explainer (``patch=16`` for occlusion, ``relu=False`` for cam);
    one it does not take is refused by name. The model comes back exactly as it was.
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

    ``target`` is a class name or ``predicted``. The true label is shown when the image
    sits in a folder named after a class (``.../PNEUMONIA/x.jpeg``). ``precision`` (``"32"``,
    ``"bf16-mixed"``, ``"auto"``: float32 on the CPU) is that of the prediction and the maps.
    """
    run = Run.open(run)
    if not images:
        raise XrayError("no images given")
    if target != "predicted" and target not in run.classes:
        raise XrayError(f"Unknown target '{target}'. Known: predicted, {', '.join(run.classes)}")
    model, bb = run.load_model(which), run.backbone
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    cpu = torch.device("cpu")
    how = resolve_precision(precision, cpu)
    probs = predict_proba(model, batch, bb, precision=how)
    preds = probs.argmax(1)
    targets = preds if target == "predicted" else torch.full_like(preds, run.classes.index(target))
    with autocast(how, cpu):
        maps = explain_maps(model, bb, batch, targets, method, **options).float()
    out_dir = Path(out) if out is not None else run.path / "explain"
    map_title = "Class Activation Map" if method == "cam" else f"{method} attribution"
    written = []
    paths = [Path(p) for p in images]
    for i, (path, name) in enumerate(zip(paths, figure_names(paths, method))):
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
    if limit is not None and limit < 1:
        raise XrayError("--limit must be at least 1")
    run = Run.open(run)
    where = describe(data)
    test = held_out_test(load_data(data, run.config.image_size), where)
    run.check_classes(test, where)
    if test.masks is None:
        raise XrayError(
            f"{where}: no lesion masks to score against (use 'synthetic', or a folder written by "
            "`xraykit synth`, which keeps them in its masks/ folder)"
        )
    if target not in run.classes:
        raise XrayError(f"Unknown target '{target}'. Known: {', '.join(run.classes)}")
    k = run.classes.index(target)
    chosen = ((test.labels == k) & test.masks.flatten(1).any(1)).nonzero().flatten()[:limit]
    if not len(chosen):
        raise XrayError(f"{where}: no {target} test image with a lesion mask to score against")
    bb = run.backbone
    if methods is None:
        methods = [name for name in plugins.list_explainers() if plugins.explainer(name).supports(bb)]
    options = dict(options or {})
    for method in methods:
        if not plugins.explainer(method).supports(bb):
            raise XrayError(f"explainer '{method}' cannot explain backbone '{bb.name}'")
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
        "run": str(run.path),
        "data": where,
        "checkpoint": run.checkpoint_path(which).name,
        "target": target,
        "images": len(chosen),
        "predicted_as_target": float((probs.argmax(1) == k).float().mean()),
        "chance": {"mask_area_fraction": float(scoring.area_fraction(masks).mean())},
        "methods": scoring.score_methods(explain_maps, model, bb, images, masks, k, methods, options),
    }
    write_json((Path(out) if out is not None else run.path) / "explain_score.json", summary)
    return summary
