"""Figures: loss curves, confusion matrices, image galleries and CAM overlays (matplotlib)."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, works on a headless server
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .io import save_figure  # noqa: E402


def loss_curves(histories: dict[str, list[dict]], path, title: Optional[str] = None) -> None:
    """Train and validation loss per epoch, one panel per run (Task 1.1 and 1.2 side by side)."""
    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.8), squeeze=False)
    for ax, (label, history) in zip(axes[0], histories.items()):
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
        ax.plot(epochs, [h["val_loss"] for h in history], "s--", label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(path, fig)


def confusion_matrix(cm: Sequence[Sequence[int]], classes: Sequence[str], path, title: str = "Confusion matrix") -> None:
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(cm, cmap="Blues")
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=12)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(path, fig)


def image_grid(images: torch.Tensor, titles: Sequence[str], path, suptitle: str = "", columns: int = 6,
               empty_text: str = "No images") -> None:
    """A grid of grayscale ``uint8`` images ``(N, 1, H, W)``, each with its title."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, empty_text, ha="center", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    save_figure(path, fig)


def overlay_pairs(images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str], path, suptitle: str = "",
                  masks: Optional[torch.Tensor] = None, map_title: str = "Class Activation Map") -> None:
    """Each image beside its heatmap overlay (one row per image); lesion outlines where known."""
    n = len(images)
    fig, axes = plt.subplots(max(n, 1), 2, figsize=(6.0, 3.0 * max(n, 1)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        img = images[i, 0].numpy()
        m = maps[i].detach().float()
        m = ((m - m.min()) / (m.max() - m.min() + 1e-12)).numpy()
        axes[i, 0].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(titles[i], fontsize=8)
        axes[i, 1].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[i, 1].imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[i, 1].set_title(map_title, fontsize=8)
        if masks is not None and masks[i].any():
            for ax in axes[i]:
                ax.contour(masks[i].float().numpy(), levels=[0.5], colors="white", linewidths=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    save_figure(path, fig)
