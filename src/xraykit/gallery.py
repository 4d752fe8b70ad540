"""``explain_gallery``: the same test images under several explainers side by side, each column headed by
its pointing game on the known lesions, so that a picture and its number are read together."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from . import figures, scoring
from .data.loading import DataLike
from .errors import XrayError
from .explaining import (
    check_explainer_options,
    check_supports,
    explain_maps,
    lesioned,
    test_split_of,
    what_was_explained,
)
from .inference import predict_proba
from .io import write_json
from .runs import Run, RunLike
from .variants import parse_variant, variant_label

GALLERY_VARIANTS = ("cam", "cam:align=receptive-field", "guided-gradcam", "occlusion", "integrated-gradients")


def explain_gallery(
    run: RunLike,
    data: DataLike = "synthetic",
    *,
    variants: Sequence[str] = GALLERY_VARIANTS,
    per_kind: int = 1,
    limit: Optional[int] = None,
    out: Optional[Union[str, Path]] = None,
    which: Optional[str] = None,
    target: str = "PNEUMONIA",
) -> dict[str, Any]:
    """The same test images under each explainer variant, side by side; writes ``explain_gallery.png``
    and ``explain_gallery.json``.

    The images: for each class, ``per_kind`` the model gets right (the first ones) and ``per_kind``
    it gets wrong (the most confident mistakes first), where the test split has them. Each map
    explains the model's own prediction for that image. Where the data has lesion masks, each column
    is headed by the variant's pointing game and inside share on the lesioned ``target`` test images:
    the scores :func:`explain_score` gives the same variant, so a picture and its number can be read
    together.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        data: the data whose test images are shown, as for :func:`xraykit.train`; with lesion masks
            (``"synthetic"``, a folder written by ``xraykit synth``) the columns are also scored.
        variants: the columns: each a method with its options (``cam:align=receptive-field``, see
            :func:`xraykit.variants.parse_variant`); at least one.
        per_kind: images of each class and kind (right, wrong) shown, at least 1.
        limit: score each variant on only the first ``limit`` lesioned images (at least 1), for a quicker
            answer; ``None``: all of them.
        out: where ``explain_gallery.png`` and ``explain_gallery.json`` go; ``None``: the run folder.
        which: the checkpoint, ``"best"`` or ``"last"``; ``None``: the one the run's recipe selects.
        target: the class whose lesions are scored, a class name of the run.

    Returns:
        The summary ``explain_gallery.json`` holds: each variant's scores under ``"variants"`` (``None``
            without masks) and the images shown under ``"images"``.

    Raises:
        XrayError: no variants, an unknown explainer or option, an unknown target, or a ``per_kind`` or
            ``limit`` below 1.
    """
    if per_kind < 1:
        raise XrayError("--per-kind must be at least 1")
    if limit is not None and limit < 1:
        raise XrayError("--limit must be at least 1")
    run = Run.open(run)
    run.refuse_ensemble("explain its predictions")
    parsed = [parse_variant(v) for v in variants]
    if not parsed:
        raise XrayError("no variants given")
    bb = run.backbone
    for method, opts in parsed:
        check_supports(method, bb)
        check_explainer_options(method, opts)
    where, test, k = test_split_of(run, data, target)

    model = run.load_model(which)
    probs = predict_proba(model, test.images, bb)
    preds = probs.argmax(1)
    picks = _gallery_picks(test.labels, probs, per_kind)
    images = test.images[picks]

    masks = test.masks if test.masks is not None else torch.zeros(len(test), *test.images.shape[-2:], dtype=torch.bool)
    scored = lesioned(test, k)[:limit]
    rows: list[dict[str, Any]] = []
    maps = []
    for method, opts in parsed:
        maps.append(explain_maps(model, bb, images, preds[picks], method, **opts).float())
        score = {"pointing_game": None, "inside_share": None, "ideal": None}
        if len(scored):
            found = scoring.score_methods(
                explain_maps, model, bb, test.images[scored], masks[scored], k, [method], {method: opts}
            )[method]
            score = {key: found[key] for key in score}
        rows.append({"variant": variant_label(method, opts), **score})
    shown = [
        {
            "index": int(i),
            "path": test.paths[i] if test.paths else None,
            "true": run.classes[int(test.labels[i])],
            "predicted": run.classes[int(preds[i])],
            "probability": float(probs[i, preds[i]]),
            "correct": bool(test.labels[i] == preds[i]),
        }
        for i in picks.tolist()
    ]
    summary = {
        **what_was_explained(run, where, which, target),
        "images_scored": len(scored),
        "chance": float(scoring.area_fraction(masks[scored]).mean()) if len(scored) else None,
        "variants": rows,
        "images": shown,
    }
    out_dir = Path(out) if out is not None else run.path
    headers = [
        r["variant"].replace(":", "\n", 1).replace(",", "\n")
        + ("" if r["pointing_game"] is None else f"\npointing game {r['pointing_game']:.2f}")
        for r in rows
    ]
    captions = [
        f"{'right' if s['correct'] else 'WRONG'}: true {s['true']}\npredicted {s['predicted']} ({s['probability']:.2f})"
        for s in shown
    ]
    figures.attribution_gallery(
        images,
        torch.stack(maps) if len(picks) else torch.empty(len(rows), 0, *images.shape[-2:]),
        captions,
        headers,
        out_dir / "explain_gallery.png",
        masks=masks[picks],
        suptitle=f"{run.path.name}: each map explains the predicted class"
        + (
            f"; pointing game on {len(scored)} lesioned {target} test images (chance {summary['chance']:.2f})"
            if len(scored)
            else ""
        ),
    )
    write_json(out_dir / "explain_gallery.json", summary)
    return summary


def _gallery_picks(labels: torch.Tensor, probs: torch.Tensor, per_kind: int) -> torch.Tensor:
    """Test indices: for each class, the first ``per_kind`` right, then the ``per_kind`` most confident wrong."""
    preds = probs.argmax(1)
    confidence = probs.max(1).values
    picks = []
    for c in range(probs.shape[1]):
        right = ((labels == c) & (preds == c)).nonzero().flatten()
        wrong = ((labels == c) & (preds != c)).nonzero().flatten()
        wrong = wrong[confidence[wrong].argsort(descending=True, stable=True)]
        picks += right[:per_kind].tolist() + wrong[:per_kind].tolist()
    return torch.tensor(picks, dtype=torch.long)
