"""Make every figure the documentation shows, from a real xraykit run, into docs/img/.

    python scripts/make_docs_figures.py            # the demo's defaults, a few minutes on 2 CPU cores
    python scripts/make_docs_figures.py --tiny     # seconds; for checking the script, not for publishing

Figures are made, never pasted: rerun this after a change that alters what a run draws.
The demo's own figures (loss curves, CAM, misclassified images) are copied as they are, so
the docs show exactly what `xraykit demo` writes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

import xraykit
from xraykit import figures
from xraykit.data.synthetic import synthesize

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"

# file in docs/img -> what it shows (tests/test_docs.py checks that every image the docs use is listed here)
FIGURES = {
    "synthetic_xrays.png": "synthetic chest X-rays, NORMAL and PNEUMONIA, lesion outlines in white",
    "loss_curves.png": "the demo's train and validation loss curves, Task 1.1 beside Task 1.2",
    "cam.png": "the demo's Class Activation Maps for a NORMAL and a PNEUMONIA test image",
    "misclassified.png": "the demo's misclassified test images, most confident mistakes first",
    "confusion_matrix.png": "the confusion matrix of the demo's Task 1.1 model on the synthetic test split",
}


def synthetic_gallery(path: Path, size: int = 128) -> None:
    """Four NORMAL and four PNEUMONIA synthetic X-rays; the lesion masks drawn as outlines."""
    data = synthesize(32, size=size, seed=0)
    picks = [i for c in (0, 1) for i in (data.labels == c).nonzero().flatten()[:4].tolist()]
    titles = [data.classes[int(data.labels[i])] for i in picks]
    _outline_lesions(path, data.images[picks], data.masks[picks], titles)


def _outline_lesions(path: Path, images, masks, titles) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xraykit.io import save_figure

    fig, axes = plt.subplots(2, 4, figsize=(6.4, 3.6))  # about one screen pixel per image pixel
    for ax, img, mask, title in zip(axes.flat, images, masks, titles):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255)
        if mask.any():
            ax.contour(mask.float().numpy(), levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle("Synthetic chest X-rays; lesions (white) are known", fontsize=9)
    fig.tight_layout()
    save_figure(path, fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few-second demo (to test the script)")
    parser.add_argument("--out", type=Path, default=DOCS_IMG, help="folder for the figures (default: docs/img)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    synthetic_gallery(args.out / "synthetic_xrays.png")
    size = dict(n=96, image_size=32, epochs=2) if args.tiny else {}
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        summary = xraykit.demo(demo, quiet=True, **size)
        for name in ("loss_curves.png", "cam.png", "misclassified.png"):
            shutil.copy(demo / name, args.out / name)
        shutil.copy(demo / "task1.1-scratch" / "confusion_matrix.png", args.out / "confusion_matrix.png")
    for name in FIGURES:
        if (args.out / name).is_file():
            (args.out / name).chmod(0o644)  # atomic writes make 0600 files; these are published
    missing = [name for name in FIGURES if not (args.out / name).is_file()]
    if missing:
        raise SystemExit(f"not made: {', '.join(missing)}")
    for name, what in FIGURES.items():
        print(f"{args.out / name}: {what}")
    for task, m in summary["tasks"].items():
        print(f"{task}: test accuracy {m['accuracy']:.3f}")


if __name__ == "__main__":
    main()
