"""Image folders in the Kaggle layout: ``DATA/{train,val,test}/{CLASS}/*.jpeg``.

Class names come from the folders (sorted), so a third class folder just works. The
patient is read from the file name, because several images of one child must never be
split between training and validation.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import ImageError, XrayError
from ..interfaces import XrayData
from .images import is_image_file, load_image

SPLITS = ("train", "val", "test")

_PERSON = re.compile(r"^(person\d+)_")
_IM = re.compile(r"^((?:NORMAL2-)?IM-\d+)-")


def patient_id(filename: str) -> str:
    """The patient an image belongs to, read from a Kaggle-style file name.

    >>> patient_id("person1946_bacteria_4874.jpeg"), patient_id("NORMAL2-IM-1427-0001.jpeg")
    ('person1946', 'NORMAL2-IM-1427')

    Any other name is its own patient (its stem).
    """
    name = Path(filename).name
    for pattern in (_PERSON, _IM):
        m = pattern.match(name)
        if m:
            return m.group(1)
    return Path(name).stem


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folders(split_dir: Path) -> list[Path]:
    """The class folders of one split, sorted by name."""
    if not split_dir.is_dir():
        raise XrayError(f"{split_dir}: not a folder")
    found = _subdirs(split_dir)
    if not found:
        raise XrayError(f"{split_dir}: no class folders (expected e.g. NORMAL/ and PNEUMONIA/)")
    return found


def list_images(split_dir: Path, classes: Optional[tuple[str, ...]] = None) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Image paths and labels of one split; ``classes`` fixes the label order (train's)."""
    folders = class_folders(split_dir)
    names = tuple(f.name for f in folders)
    if classes is None:
        classes = names
    elif set(names) != set(classes):
        raise XrayError(
            f"{split_dir}: class folders {', '.join(names)} differ from the training split's {', '.join(classes)}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (split_dir / name).iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise XrayError(f"{split_dir / name}: no images (.jpeg, .jpg or .png) in this class folder")
        paths += files
        labels += [label] * len(files)
    return paths, labels, classes


def load_paths(
    paths: list[Path],
    labels: list[int],
    classes: tuple[str, ...],
    image_size: int,
    skip_bad: bool = False,
    on_skip: Optional[Callable[[str], None]] = None,
) -> XrayData:
    """Decode ``paths`` (two threads: PIL releases the GIL while decoding)."""

    def decode(path: Path):
        try:
            return load_image(path, image_size)
        except ImageError as exc:
            if not skip_bad:
                raise
            if on_skip:
                on_skip(str(exc))
            return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = list(pool.map(decode, paths))
    keep = [i for i, img in enumerate(decoded) if img is not None]
    if not keep:
        raise XrayError(f"no readable images among {len(paths)} files")
    return XrayData(
        images=torch.stack([decoded[i] for i in keep]),
        labels=torch.tensor([labels[i] for i in keep], dtype=torch.long),
        classes=classes,
        patients=[patient_id(paths[i].name) for i in keep],
        paths=[str(paths[i]) for i in keep],
    )


def attach_masks(data: XrayData, mask_dir: Path) -> XrayData:
    """Lesion masks written by ``xraykit synth``: ``MASKS/{CLASS}/{stem}.png``, empty where absent."""
    if not mask_dir.is_dir() or data.paths is None:
        return data
    size = data.image_size
    masks = torch.zeros(len(data), size, size, dtype=torch.bool)
    for i, path in enumerate(data.paths):
        p = Path(path)
        mask_file = mask_dir / p.parent.name / f"{p.stem}.png"
        if mask_file.is_file():
            masks[i] = load_image(mask_file, size)[0] > 127
    data.masks = masks
    return data


def is_split_dir(folder: Path) -> bool:
    """A folder whose subfolders are classes (``DATA/test``), not splits (``DATA``)."""
    return folder.is_dir() and not (folder / "train").is_dir() and bool(_subdirs(folder))


def load_folder(root: str | Path, image_size: int = 224, skip_bad: bool = False, on_skip=None) -> dict[str, XrayData]:
    """Every split found under ``root``; a folder of class folders is one split, ``"test"``."""
    root = Path(root)
    if not root.exists():
        raise XrayError(f"{root}: no such folder")
    if not root.is_dir():
        raise XrayError(f"{root}: not a folder")
    if is_split_dir(root):
        paths, labels, classes = list_images(root)
        data = load_paths(paths, labels, classes, image_size, skip_bad, on_skip)
        return {"test": attach_masks(data, root.parent / "masks" / root.name)}
    if not (root / "train").is_dir():
        raise XrayError(f"{root}: no train/ folder (expected {root}/train/NORMAL, {root}/train/PNEUMONIA, ...)")
    paths, labels, classes = list_images(root / "train")
    splits = {"train": load_paths(paths, labels, classes, image_size, skip_bad, on_skip)}
    for split in ("val", "test"):
        if (root / split).is_dir():
            paths, labels, _ = list_images(root / split, classes)
            splits[split] = load_paths(paths, labels, classes, image_size, skip_bad, on_skip)
    return {name: attach_masks(data, root / "masks" / name) for name, data in splits.items()}
