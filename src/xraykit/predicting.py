"""Single images: a label and probabilities for each file, with a hint of how unusual it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from . import shift_report
from .data.images import load_image
from .devices import resolve_device, resolve_precision
from .errors import XrayError
from .inference import logits_of
from .runs import Run, RunLike


def predict(
    run: RunLike,
    images: Sequence[Union[str, Path]],
    *,
    which: Optional[str] = None,
    device: str = "auto",
    precision: Union[str, int] = "auto",
    tta: bool = False,
) -> list[dict[str, Any]]:
    """Label and probabilities for each image file, and a hint of how unusual it is.

    A model answers for any image, even one unlike every X-ray it learnt from; the hint says when
    its answer deserves less trust.

    Args:
        run: the run folder (a path) or a :class:`~xraykit.Run`.
        images: image files (JPEG, PNG, ...), each resized to the run's image size; at least one.
        which: the checkpoint, ``"best"`` or ``"last"``; ``None``: the one the run's recipe selects.
        device: ``"auto"`` (CUDA, else MPS, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        precision: ``"32"``, ``"bf16-mixed"`` or ``"auto"`` (:func:`xraykit.devices.resolve_precision`).
        tta: average each image's probabilities over views that keep its anatomy (:mod:`xraykit.tta`).

    Returns:
        One dict per image, in order: ``"path"``, ``"label"``, its ``"probability"``, every class's
            ``"probabilities"``, and the hint. ``"percentile"``: the share of the run's validation images
            whose features lie closer to the training images than this image's; ``"unusual"``: beyond 95% of
            them; ``"far"``: well beyond all of them (a hint that the image is not like the training X-rays,
            not a verdict). All three are ``None`` when the run's training images cannot be loaded again to
            compare with.

    Raises:
        XrayError: no images, or a file that is not a readable image (:class:`~xraykit.ImageError`).
    """
    run = Run.open(run)
    if not images:
        raise XrayError("no images given")
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    model = run.load_model(which)
    dev = resolve_device(device)
    probs = logits_of(model, batch, run.backbone, dev, resolve_precision(precision, dev), tta).softmax(1)
    hints = shift_report.familiarity(run, batch, which, model)
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
