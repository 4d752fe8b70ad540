"""Image folders in the Kaggle layout: ``DATA/{train,val,test}/{CLASS}/*.jpeg``.

Class names come from the folders (sorted), so a third class folder just works. The
patient is read from the file name, because several images of one child must never be
split between training and validation.
"""

from __future__ import annotations

import errno
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import ImageError, XrayError, display_path
from ..interfaces import XrayData
from .cache import load_image_cached
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


def _entries(folder: Path) -> list[Path]:
    """What ``folder`` holds, sorted; hidden entries (``.DS_Store``, ``.ipynb_checkpoints``) left out."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise XrayError(
            f"{display_path(folder)}: cannot list this folder ({exc.strerror or type(exc).__name__})"
        ) from None


def _subdirs(folder: Path) -> list[Path]:
    return [p for p in _entries(folder) if p.is_dir()]


def _is_broken_link(path: Path) -> bool:
    """A symbolic link that leads nowhere: to a missing target, or round in a loop."""
    return path.is_symlink() and not path.exists()


def class_folders(split_dir: Path) -> list[Path]:
    """The class folders of one split, sorted by name.

    A broken link where a class folder could be (a dataset on a drive that is not mounted,
    a link that loops) is an error, not a class that silently goes missing; so is a folder
    name that is not UTF-8, since class names end up in reports, figures and JSON.
    """
    if not split_dir.is_dir():
        raise XrayError(f"{display_path(split_dir)}: not a folder")
    entries = _entries(split_dir)
    for p in entries:
        if _is_broken_link(p) and not is_image_file(p):
            raise XrayError(f"{display_path(p)}: {_broken_link_problem(p)}, where a class folder was expected")
    # Sorted regardless of case, so that the label order is the same for NORMAL/ and normal/.
    found = sorted((p for p in entries if p.is_dir()), key=lambda p: (p.name.casefold(), p.name))
    if not found:
        raise XrayError(f"{display_path(split_dir)}: no class folders (expected e.g. NORMAL/ and PNEUMONIA/)")
    for p in found:
        if os.fsencode(p.name).decode("utf-8", "backslashreplace") != p.name:
            raise XrayError(
                f"{display_path(p)}: class folder name is not valid UTF-8; rename it (class names "
                "appear in reports, figures and JSON files)"
            )
    for a, b in zip(found, found[1:]):
        if a.name.casefold() == b.name.casefold():
            raise XrayError(
                f"{display_path(split_dir)}: class folders {display_path(a.name)} and {display_path(b.name)} "
                "differ only in case; merge them into one"
            )
    return found


def _broken_link_problem(path: Path) -> str:
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself"
    return f"a symbolic link to something missing ({display_path(os.readlink(path))})"


def _image_files(class_dir: Path) -> list[Path]:
    """Image files by name: regular files, and broken links (reported as unreadable, not silently dropped)."""
    return [p for p in _entries(class_dir) if is_image_file(p) and (p.is_file() or _is_broken_link(p))]


def _no_images(class_dir: Path) -> str:
    """Why a class folder yielded no images: empty, or only files of other types (say which)."""
    others = sorted({p.suffix.lower() or p.name for p in _entries(class_dir) if p.is_file()})
    found = f"; it holds only {', '.join(others[:5])} files" if others else ""
    return f"{display_path(class_dir)}: no images (.jpeg, .jpg or .png) in this class folder{found}"


def list_images(
    split_dir: Path, classes: Optional[tuple[str, ...]] = None
) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Image paths and labels of one split; ``classes`` fixes the label order (train's)."""
    folders = class_folders(split_dir)
    names = tuple(f.name for f in folders)
    if classes is None:
        classes = names
    elif {n.casefold() for n in names} != {c.casefold() for c in classes}:
        raise XrayError(
            f"{display_path(split_dir)}: class folders {', '.join(names)} "
            f"differ from the training split's {', '.join(classes)}"
        )
    # Matched without regard to case (val/pneumonia is train/PNEUMONIA); labels follow ``classes``.
    folder_of = {f.name.casefold(): f for f in folders}
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = folder_of[name.casefold()]
        files = _image_files(folder)
        if not files:
            raise XrayError(_no_images(folder))
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
    """Decode ``paths`` (two threads: PIL releases the GIL while decoding), or read them from the decode cache.

    An unreadable file is an error naming it (and how many others are unreadable too), or,
    with ``skip_bad``, is left out and reported to ``on_skip``, in path order. Either way a
    class left with no readable image at all is an error: it would silently vanish.
    """

    def decode(path: Path):
        try:
            return load_image_cached(path, image_size)
        except ImageError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = list(pool.map(decode, paths))
    bad = [i for i, img in enumerate(decoded) if isinstance(img, ImageError)]
    if bad and not skip_bad:
        others = f"; 1 of {len(bad)} unreadable files here" if len(bad) > 1 else ""
        raise ImageError(f"{decoded[bad[0]]}{others}; --skip-bad leaves unreadable files out")
    for i in bad:
        if on_skip:
            on_skip(str(decoded[i]))
    keep = [i for i, img in enumerate(decoded) if not isinstance(img, ImageError)]
    if not keep:
        raise XrayError(f"no readable images among {len(paths)} files")
    for label in sorted(set(labels)):
        if not any(labels[i] == label for i in keep):
            members = [p for p, lab in zip(paths, labels) if lab == label]
            raise XrayError(
                f"{display_path(members[0].parent)}: none of its {len(members)} image files could be read "
                f"(class {classes[label]} would be left with no images)"
            )
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


def left_out(root: str | Path) -> list[str]:
    """What the folder loader does not read, counted by kind, one line per split: files that are not
    .jpeg, .jpg or .png (DICOM among them) and subfolders inside a class folder. Never an error (notes,
    a README, a folder of rejects are all fine), never silent either."""
    root = Path(root)
    if not root.is_dir():
        return []
    split_dirs = [root] if is_split_dir(root) else [root / s for s in SPLITS if (root / s).is_dir()]
    lines = []
    for split_dir in split_dirs:
        kinds: dict[str, int] = {}
        for folder in (p for p in _entries(split_dir) if p.is_dir()):
            for p in _entries(folder):
                if p.is_dir():
                    kinds["subfolder"] = kinds.get("subfolder", 0) + 1
                elif p.is_file() and not is_image_file(p):
                    kind = f"{p.suffix.lower()} file" if p.suffix else "file without an extension"
                    kinds[kind] = kinds.get(kind, 0) + 1
        if kinds:
            counted = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items()))
            lines.append(
                f"left out of {display_path(split_dir)}: {counted} (read: .jpeg, .jpg and .png files directly "
                "in a class folder)"
            )
    return lines


def is_split_dir(folder: Path) -> bool:
    """A folder whose subfolders are classes (``DATA/test``).

    Not one whose subfolders are splits (``DATA``, or a ``DATA`` with only ``test/``).
    """
    if not folder.is_dir():
        return False
    subdirs = _subdirs(folder)
    return bool(subdirs) and not any(d.name in SPLITS for d in subdirs)


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
    present = [split for split in SPLITS if (root / split).is_dir()]
    if not present:
        raise XrayError(
            f"{root}: no train/, val/ or test/ folder (expected {root}/train/NORMAL, {root}/train/PNEUMONIA, ...)"
        )
    # Train fixes the class order; without train/ (a folder holding only test/), the first split present does.
    paths, labels, classes = list_images(root / present[0])
    splits = {present[0]: load_paths(paths, labels, classes, image_size, skip_bad, on_skip)}
    for split in present[1:]:
        paths, labels, _ = list_images(root / split, classes)
        splits[split] = load_paths(paths, labels, classes, image_size, skip_bad, on_skip)
    return {name: attach_masks(data, root / "masks" / name) for name, data in splits.items()}
