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
# The largest array a member may declare: PneumoniaMNIST at 224 px is 0.3 GB, so this leaves room
# for much larger sets while refusing a 200 KB file that asks for 52 GB.
MAX_ARRAY_BYTES = 16 * 2**30


def _check_headers(path: Path) -> None:
    """Read each member's ``.npy`` header (dtype and shape) before any array is loaded.

    ``np.load`` allocates what the header declares before reading a byte of data: a member
    declaring a 52 GB array in 200 KB is a MemoryError, and one just under the memory's size is
    inflated for nothing. The declared size must fit and must match what the member holds.
    """
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with z.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
                header = member.tell()
            name = info.filename[: -len(".npy")]
            declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if declared > MAX_ARRAY_BYTES or declared > info.file_size - header:
                dims = " x ".join(str(d) for d in shape)
                raise XrayError(
                    f"{path}: {name} declares a {dtype} array of {dims} ({declared / 1e9:.1f} GB) but holds "
                    f"{info.file_size / 1e6:.1f} MB; not loaded"
                    + (f" (at most {MAX_ARRAY_BYTES / 2**30:.0f} GiB per array)" if declared > MAX_ARRAY_BYTES else "")
                )


def _labels(path: Path, split: str, raw: np.ndarray, n: int) -> torch.Tensor:
    """``{split}_labels`` as a 1-D tensor of 0 and 1, or an error saying what is wrong with it."""
    name = f"{split}_labels"
    if raw.dtype.kind not in "iub" or raw.ndim not in (1, 2) or (raw.ndim == 2 and raw.shape[1] != 1):
        raise XrayError(
            f"{path}: {name} must be integers of shape N or N x 1 (one label per image), "
            f"got {raw.dtype} {tuple(raw.shape)}"
        )
    labels = torch.from_numpy(raw.reshape(-1).astype(np.int64))
    if len(labels) != n:
        raise XrayError(f"{path}: {name} has {len(labels)} labels for {n} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise XrayError(
            f"{path}: {name} holds {sorted(set(labels.tolist()) - {0, 1})[:3]}; "
            "PneumoniaMNIST labels are 0 (normal) and 1 (pneumonia)"
        )
    return labels


def load_npz(path: str | Path, image_size: int) -> dict[str, XrayData]:
    """Every split in a MedMNIST-style ``.npz``, images resized to ``image_size``.

    >>> splits = load_npz("pneumoniamnist.npz", image_size=28)  # doctest: +SKIP
    >>> splits["train"].class_counts()  # doctest: +SKIP
    {'NORMAL': 1214, 'PNEUMONIA': 3494}
    """
    path = Path(path)
    try:
        # allow_pickle=False: an .npz is untrusted input like any checkpoint; an object array
        # (which only unpickling could read) is refused here. Shapes are checked before loading.
        _check_headers(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise XrayError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise XrayError(f"{path}: not a readable .npz file ({exc})") from None
    splits = {}
    for split in ("train", "val", "test"):
        if f"{split}_images" not in arrays:
            continue
        if f"{split}_labels" not in arrays:
            raise XrayError(f"{path}: {split}_images has no {split}_labels array beside it")
        images = torch.from_numpy(arrays[f"{split}_images"])
        if images.dtype != torch.uint8 or images.dim() not in (3, 4):
            raise XrayError(f"{path}: {split}_images must be uint8 N x H x W, got {images.dtype} {tuple(images.shape)}")
        if images.shape[1] == 0 or images.shape[2] == 0:
            raise XrayError(f"{path}: {split}_images are {tuple(images.shape[1:3])} pixels each, images need some")
        if len(images) == 0:
            raise XrayError(f"{path}: {split}_images holds no images (an empty {split} split)")
        labels = _labels(path, split, arrays[f"{split}_labels"], len(images))
        if images.dim() == 4:  # N x H x W x C -> gray
            images = images.float().mean(-1).round().to(torch.uint8)
        images = images[:, None]
        if images.shape[-1] != image_size or images.shape[-2] != image_size:
            images = (
                F.interpolate(
                    images.float(), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
                )
                .round()
                .clamp(0, 255)
                .to(torch.uint8)
            )
        splits[split] = XrayData(
            images=images, labels=labels, classes=CLASSES, patients=[f"{split}-{i}" for i in range(len(labels))]
        )
    if not splits:
        raise XrayError(f"{path}: no train_images, val_images or test_images arrays (is this a MedMNIST file?)")
    if "train" in splits:
        present = sorted(set(splits["train"].labels.tolist()))
        if len(present) < len(CLASSES):
            only = ", ".join(CLASSES[i] for i in present)
            raise XrayError(
                f"{path}: train_labels hold one class only ({only}); a classifier needs images of both "
                "(0 normal, 1 pneumonia)"
            )
    return splits
