"""Make the figures the documentation links as files, into docs/img/.

    python scripts/make_docs_figures.py

Figures are made, never pasted. Almost every figure of the site is drawn by a page's own code and
stored in its notebook (``scripts/docs_pages.py --execute``); this script makes the few a page
links instead: the home page's picture of synthetic X-rays with their lesions outlined.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xraykit.data.synthetic import synthesize

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOCS_IMG = DOCS / "img"

# file in docs/img -> what it shows (tests/test_docs.py checks that every image the docs use is listed here)
FIGURES = {
    "synthetic_xrays.png": "synthetic chest X-rays, NORMAL and PNEUMONIA, lesion outlines in white",
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
    parser.add_argument("--out", type=Path, default=DOCS_IMG, help="folder for the figures (default: docs/img)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    synthetic_gallery(args.out / "synthetic_xrays.png")
    for name, what in FIGURES.items():
        (args.out / name).chmod(0o644)  # atomic writes make 0600 files; these are published
        print(f"{args.out / name}: {what}")


if __name__ == "__main__":
    main()
