"""Figures: loss curves, confusion matrices, image galleries, CAM overlays and galleries of maps (matplotlib).

Each function writes a PNG and returns the :class:`~matplotlib.figure.Figure`, for a
notebook to show or a test to inspect. Figures are made with matplotlib's object-oriented
API, never through ``pyplot``: importing xraykit picks no backend and opens no window.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .errors import XrayError, display_path
from .io import plain_text, save_figure

PathLike = Union[str, "os.PathLike[str]"]


class Picture:
    """A PNG file that a notebook shows as the picture itself (what :func:`show` returns)."""

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)

    def _repr_png_(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def __repr__(self) -> str:
        return f"Picture({self.path!r})"


def show(path: PathLike) -> Picture:
    """A figure a command wrote, shown in a notebook: ``xraykit.show("runs/scratch/loss_curves.png")``.

    The command line writes its figures as PNG files; as the last line of a Jupyter cell, this shows
    one under the cell, like a figure drawn there (no IPython import needed).

    Args:
        path: a PNG file, such as ``RUN/loss_curves.png`` or ``RUN/misclassified.png``.

    Returns:
        An object that Jupyter displays as the picture.

    Raises:
        XrayError: no such file (the command that writes it has not run), or a file that is not a PNG.
    """
    if not os.path.isfile(path):
        raise XrayError(f"{display_path(path)}: no such figure (run the command that writes it first)")
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            raise XrayError(f"{display_path(path)}: not a PNG file")
    return Picture(path)


def loss_curves(histories: dict[str, list[dict]], path: PathLike, title: Optional[str] = None) -> Figure:
    """Train and validation loss per epoch, one panel per run (Task 1.1 and 1.2 side by side)."""
    n = len(histories)
    fig = Figure(figsize=(5.2 * n, 3.8))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (label, history) in zip(axes[0], histories.items()):
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
        ax.plot(epochs, [h["val_loss"] for h in history], "s--", label="validation loss")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.25
        ax.set_ylabel("cross-entropy loss")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    plain_text(fig).tight_layout()
    save_figure(path, fig)
    return fig


def confusion_matrix(
    cm: Sequence[Sequence[int]], classes: Sequence[str], path: PathLike, title: str = "Confusion matrix"
) -> Figure:
    """Counts of true (rows) against predicted (columns) classes."""
    fig = Figure(figsize=(3.8, 3.4))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=12)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    plain_text(fig).tight_layout()
    save_figure(path, fig)
    return fig


def image_grid(
    images: torch.Tensor,
    titles: Sequence[str],
    path: PathLike,
    suptitle: str = "",
    columns: int = 6,
    empty_text: str = "No images",
) -> Figure:
    """A grid of grayscale ``uint8`` images ``(N, 1, H, W)``, each with its title."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(2.3 * cols, 2.5 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, empty_text, ha="center", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    plain_text(fig).tight_layout()
    save_figure(path, fig)
    return fig


def _colour_bar(fig: Figure) -> None:
    """A colour bar under the figure saying what a map's colours mean; the layout leaves room for it."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    plain_text(fig).tight_layout(rect=(0, 0.06, 1, 1))
    axis = fig.add_axes((0.3, 0.025, 0.4, 0.015))
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), cax=axis, orientation="horizontal")
    bar.set_label("each map scaled to its own maximum: 0 (blue) to 1 (red)", fontsize=7)
    bar.ax.tick_params(labelsize=6)


def _normalised(raw: torch.Tensor):
    """A map scaled to 0..1 for display (a flat map shows as all zeros)."""
    raw = raw.detach().float()
    return ((raw - raw.min()) / (raw.max() - raw.min() + 1e-12)).numpy()


def overlay_pairs(
    images: torch.Tensor,
    maps: torch.Tensor,
    titles: Sequence[str],
    path: PathLike,
    suptitle: str = "",
    masks: Optional[torch.Tensor] = None,
    map_title: Union[str, Sequence[str]] = "Class Activation Map",
) -> Figure:
    """Each image beside its heatmap overlay (one row per image); lesion outlines where known.

    ``map_title`` heads every map, or is one title per row."""
    n = len(images)
    fig = Figure(figsize=(6.0, 3.0 * max(n, 1)))
    axes = fig.subplots(max(n, 1), 2, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        img = images[i, 0].numpy()
        m = _normalised(maps[i])
        axes[i, 0].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(titles[i], fontsize=8)
        axes[i, 1].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[i, 1].imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[i, 1].set_title(map_title if isinstance(map_title, str) else map_title[i], fontsize=8)
        if masks is not None and masks[i].any():
            for ax in axes[i]:
                ax.contour(masks[i].float().numpy(), levels=[0.5], colors="white", linewidths=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    _colour_bar(fig)
    save_figure(path, fig)
    return fig


def attribution_gallery(
    images: torch.Tensor,
    maps: torch.Tensor,
    captions: Sequence[str],
    headers: Sequence[str],
    path: Optional[PathLike],
    masks: Optional[torch.Tensor] = None,
    suptitle: str = "",
) -> Figure:
    """One row per image: the image, then its map under each of several methods ``(V, N, H, W)``.

    ``captions`` title the images (left column), ``headers`` the methods (top row); lesion outlines
    are drawn where ``masks`` has them. Written to ``path`` unless it is None.
    """
    n, v = len(images), len(maps)
    fig = Figure(figsize=(2.1 * (v + 1), 2.3 * max(n, 1) + 0.6))
    axes = fig.subplots(max(n, 1), v + 1, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        img = images[i, 0].numpy()
        axes[i, 0].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(captions[i], fontsize=7)
        for j in range(v):
            axes[i, j + 1].imshow(img, cmap="gray", vmin=0, vmax=255)
            axes[i, j + 1].imshow(_normalised(maps[j, i]), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            if i == 0:
                axes[i, j + 1].set_title(headers[j], fontsize=7)
        if masks is not None and masks[i].any():
            for ax in axes[i]:
                ax.contour(masks[i].float().numpy(), levels=[0.5], colors="white", linewidths=0.6)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "No test images", ha="center", va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    _colour_bar(fig)
    if path is not None:
        save_figure(path, fig)
    return fig
