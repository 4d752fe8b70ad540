"""Make every figure the documentation shows, from a real xraykit run, into docs/img/.

    python scripts/make_docs_figures.py            # the demo, and the 256 px gallery: about 40 minutes on 2 CPU cores
    python scripts/make_docs_figures.py --tiny     # seconds; for checking the script, not for publishing
    python scripts/make_docs_figures.py --only demo    # only the demo's figures (a few minutes)

Figures are made, never pasted: rerun this after a change that alters what a run draws.
The demo's own figures (loss curves, CAM, misclassified images) are copied as they are, so
the docs show exactly what `xraykit demo` writes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import xraykit
from xraykit.data.synthetic import synthesize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_pages import blocks  # noqa: E402  (the page's own blocks)

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOCS_IMG = DOCS / "img"
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"  # the numbers the docs quote

# file in docs/img -> what it shows (tests/test_docs.py checks that every image the docs use is listed here)
FIGURES = {
    "synthetic_xrays.png": "synthetic chest X-rays, NORMAL and PNEUMONIA, lesion outlines in white",
    "loss_curves.png": "the demo's train and validation loss curves, Task 1.1 beside Task 1.2",
    "cam.png": "the demo's Class Activation Maps for a NORMAL and a PNEUMONIA test image",
    "misclassified.png": "the demo's misclassified test images, most confident mistakes first",
    "confusion_matrix.png": "the confusion matrix of the demo's Task 1.1 model on the synthetic test split",
    "explain_gallery.png": "five explainers on the same test images at 256 px, each with its pointing game",
    "bad_curves.png": "Tutorial 1's over-fitting and under-fitting runs, made by the page's own code",
}
# The gallery's model: Task 1.1 as the demo trains it (640 synthetic images, 10 epochs, the report's
# recipe) but at 256 pixels, where layer4's grid is 8 x 8 and a map can land on a lesion
# (Tutorial 4, section 5); the size whose model makes a few mistakes to show.
GALLERY = dict(image_size=256, seed=0, data="synthetic:n=640,seed=0")


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
    parser.add_argument("--only", choices=("demo", "gallery", "curves"), help="make only these figures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    synthetic_gallery(args.out / "synthetic_xrays.png")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "demo"):
            demo_figures(args.out, Path(tmp) / "demo", args.tiny)
        if args.only in (None, "gallery"):
            explanation_gallery(args.out, Path(tmp) / "gallery", args.tiny)
        if args.only in (None, "curves"):
            bad_curves(args.out, Path(tmp) / "curves")
    for name in FIGURES:
        if (args.out / name).is_file():
            (args.out / name).chmod(0o644)  # atomic writes make 0600 files; these are published
    missing = [name for name in FIGURES if not (args.out / name).is_file()]
    if missing:
        raise SystemExit(f"not made: {', '.join(missing)}")
    for name, what in FIGURES.items():
        print(f"{args.out / name}: {what}")


def demo_figures(out: Path, demo: Path, tiny: bool) -> None:
    """The demo's loss curves, CAM, misclassified images and Task 1.1's confusion matrix, as it writes them."""
    summary = xraykit.demo(demo, quiet=True, **(dict(n=96, image_size=32, epochs=2) if tiny else {}))
    for name in ("loss_curves.png", "cam.png", "misclassified.png"):
        shutil.copy(demo / name, out / name)
    shutil.copy(demo / "task1.1-scratch" / "confusion_matrix.png", out / "confusion_matrix.png")
    for task, m in summary["tasks"].items():
        cam = m['cam'] and f"{m['cam']['variant']} (validation pointing game {m['cam']['pointing_game']:.2f})"
        print(f"{task}: test accuracy {m['accuracy']:.3f}, cam.png at {cam}")


def bad_curves(out: Path, folder: Path) -> None:
    """Tutorial 1's two bad shapes, by the page's own code in a folder like the reader's (``xrays/`` made by
    ``xraykit synth xrays --n 96 --size 64``), so the figure is the one the reader's run draws."""
    from xraykit.data.synthetic import synth

    folder.mkdir(parents=True)
    synth(folder / "xrays", n=96, size=64, seed=0)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        code = next(b.body for b in blocks(DOCS / "tutorials" / "scratch.md") if "bad_curves.png" in b.body)
        exec(compile(code, "docs/tutorials/scratch.md", "exec"), {})
        shutil.copy(folder / "bad_curves.png", out / "bad_curves.png")
    finally:
        os.chdir(cwd)


def explanation_gallery(out: Path, folder: Path, tiny: bool) -> None:
    """Tutorial 4's gallery: ``xraykit explain-gallery`` of a 256 px Task 1.1 model, its JSON kept beside it."""
    size = dict(image_size=32, data="synthetic:n=96,seed=0", epochs=2) if tiny else {**GALLERY, "epochs": 10}
    data = size.pop("data")
    started = time.perf_counter()
    run = xraykit.train(data, "scratch", out=folder / "t11", quiet=True, **size)
    print(f"gallery model: {time.perf_counter() - started:.0f} s to train")
    accuracy = xraykit.evaluate(run, data, out=folder / "eval", cam=False, quiet=True)["accuracy"]
    started = time.perf_counter()
    summary = xraykit.explain_gallery(run, data, out=folder, limit=8 if tiny else 30)
    print(f"gallery: {time.perf_counter() - started:.0f} s, test accuracy {accuracy:.3f}")
    shutil.copy(folder / "explain_gallery.png", out / "explain_gallery.png")
    summary.update(run=f"Task 1.1, {data}, {size['image_size']} px, seed 0", test_accuracy=accuracy)
    if not tiny:
        (RESULTS / f"explain_gallery-{size['image_size']}.json").write_text(json.dumps(summary, indent=1))
    for row in summary["variants"]:
        print(f"{row['variant']:28s} pointing game {row['pointing_game']:.3f}  inside {row['inside_share']:.3f}")


if __name__ == "__main__":
    main()
