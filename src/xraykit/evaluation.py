"""How good a run is on data it never saw: test metrics, the confusion matrix, the misclassified
images (with what the model looked at), and predictions for single image files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from . import figures
from .data.images import load_image
from .data.loading import DataLike, describe, held_out_test, load_data
from .errors import XrayError
from .explaining import explain_maps
from .inference import predict_proba, resolve_device
from .io import write_json
from .metrics import compute_metrics
from .progress import console
from .runs import Run, RunLike


def evaluate(
    run: RunLike,
    data: DataLike,
    *,
    which: Optional[str] = None,
    out: Optional[Union[str, Path]] = None,
    device: str = "auto",
    skip_bad: bool = False,
    cam: bool = True,
    quiet: bool = False,
) -> dict[str, Any]:
    """Test metrics of a run on ``data``'s test split; writes ``metrics.json`` and figures.

    ``quiet`` keeps the names of skipped unreadable files (``skip_bad``) off the terminal;
    ``metrics.json`` lists them either way.
    """
    run = Run.open(run)
    out_dir = Path(out) if out is not None else run.path
    skipped: list[str] = []

    def on_skip(message: str) -> None:
        skipped.append(message)
        if not quiet:
            console.print(f"skipped {message}", markup=False)

    test = held_out_test(load_data(data, run.config.image_size, skip_bad, on_skip), describe(data))
    run.check_classes(test, describe(data))
    model, bb = run.load_model(which), run.backbone
    probs = predict_proba(model, test.images, bb, device=resolve_device(device))
    metrics = compute_metrics(probs, test.labels, run.classes)
    metrics.update(
        {
            "run": str(run.path),
            "data": "in-memory" if isinstance(data, dict) else str(data),
            "checkpoint": run.checkpoint_path(which).name,
            "skipped_files": skipped,
        }
    )
    write_json(out_dir / "metrics.json", metrics)
    figures.confusion_matrix(metrics["confusion_matrix"], run.classes, out_dir / "confusion_matrix.png")

    wrong = misclassified(probs, test.labels)
    figures.image_grid(
        test.images[wrong],
        titles(probs, test.labels, wrong, run.classes),
        out_dir / "misclassified.png",
        suptitle=f"Misclassified: {len(wrong)} of {len(test)}",
        empty_text="No misclassified images",
    )
    if cam and run.backbone.cam_layer is not None and len(wrong):
        shown = wrong[:12]
        maps = explain_maps(model, bb, test.images[shown], probs[shown].argmax(1))
        figures.overlay_pairs(
            test.images[shown],
            maps,
            titles(probs, test.labels, shown, run.classes),
            out_dir / "misclassified_cam.png",
            suptitle="What the model looked at when it was wrong",
            masks=None if test.masks is None else test.masks[shown],
        )
    return metrics


def predict(
    run: RunLike, images: Sequence[Union[str, Path]], *, which: Optional[str] = None, device: str = "auto"
) -> list[dict[str, Any]]:
    """Label and probabilities for each image file."""
    run = Run.open(run)
    if not images:
        raise XrayError("no images given")
    batch = torch.stack([load_image(p, run.config.image_size) for p in images])
    probs = predict_proba(run.load_model(which), batch, run.backbone, device=resolve_device(device))
    results = []
    for path, p in zip(images, probs):
        k = int(p.argmax())
        results.append(
            {
                "path": str(path),
                "label": run.classes[k],
                "probability": float(p[k]),
                "probabilities": dict(zip(run.classes, map(float, p))),
            }
        )
    return results


def misclassified(probs: torch.Tensor, labels: torch.Tensor, limit: int = 24) -> torch.Tensor:
    """Indices of wrong predictions, the most confident mistakes first."""
    preds = probs.argmax(1)
    wrong = (preds != labels).nonzero().flatten()
    confidence = probs[wrong, preds[wrong]]
    return wrong[confidence.argsort(descending=True)][:limit]


def titles(probs: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, classes: Sequence[str]) -> list[str]:
    """``true CLASS / pred CLASS (probability)`` for each image at ``index``."""
    preds = probs.argmax(1)
    return [
        f"true {classes[int(labels[i])]}\npred {classes[int(preds[i])]} ({probs[i, preds[i]]:.2f})"
        for i in index.tolist()
    ]
