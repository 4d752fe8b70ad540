"""MedMNIST's PneumoniaMNIST files (``pneumoniamnist.npz``, ``pneumoniamnist_224.npz``, ...).

Each file holds ``{train,val,test}_images`` (uint8, ``N x H x W``) and ``*_labels``
(``N x 1``; 0 normal, 1 pneumonia), the same children as the Kaggle set.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import XrayError
from ..interfaces import XrayData

CLASSES = ("NORMAL", "PNEUMONIA")


def load_npz(path: str | Path, image_size: int) -> dict[str, XrayData]:
    path = Path(path)
    try:
        # allow_pickle=False: an .npz is untrusted input like any checkpoint.
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise XrayError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise XrayError(f"{path}: not a readable .npz file ({exc})") from None
    splits = {}
    for split in ("train", "val", "test"):
        if f"{split}_images" not in arrays:
            continue
        images = torch.from_numpy(arrays[f"{split}_images"])
        labels = torch.from_numpy(arrays[f"{split}_labels"]).reshape(-1).long()
        if images.dtype != torch.uint8 or images.dim() not in (3, 4):
            raise XrayError(f"{path}: {split}_images must be uint8 N x H x W, got {images.dtype} {tuple(images.shape)}")
        if images.dim() == 4:  # N x H x W x C -> gray
            images = images.float().mean(-1).round().to(torch.uint8)
        images = images[:, None]
        if images.shape[-1] != image_size or images.shape[-2] != image_size:
            images = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear",
                                   antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
        splits[split] = XrayData(images=images, labels=labels, classes=CLASSES,
                                 patients=[f"{split}-{i}" for i in range(len(labels))])
    if "train" not in splits and "test" not in splits:
        raise XrayError(f"{path}: no train_images or test_images arrays (is this a MedMNIST file?)")
    return splits
