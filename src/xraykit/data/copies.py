"""Copies: images with the same pixels, wherever they sit and whatever they are called.

A copy is found by a digest of the decoded pixels at the run's size, not of the file: a byte copy,
the same X-ray saved under another name or re-encoded losslessly, all look the same to the model.
Where copies do not belong they are said (never silently dropped): in two class folders, the model
is taught two answers; between the training and the test images, the test measures memory.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Optional, Sequence

import torch

from ..errors import display_path
from ..interfaces import XrayData


def digests(images: torch.Tensor) -> list[bytes]:
    """One 16-byte digest of each image's pixels."""
    pixels = images.contiguous().numpy()
    return [hashlib.blake2b(pixels[i].tobytes(), digest_size=16).digest() for i in range(len(pixels))]


def in_two_classes(data: XrayData) -> Optional[str]:
    """One line when some image lies in two class folders (the same pixels, two labels), else ``None``."""
    labels: dict[bytes, set[int]] = defaultdict(set)
    where: dict[bytes, list[int]] = defaultdict(list)
    for i, digest in enumerate(digests(data.images)):
        labels[digest].add(int(data.labels[i]))
        where[digest].append(i)
    both = [d for d, found in labels.items() if len(found) > 1]
    if not both:
        return None
    first = both[0]
    classes = " and ".join(data.classes[c] for c in sorted(labels[first]))
    named = ", ".join(display_path(data.paths[i]) for i in where[first][:2]) if data.paths else "the same pixels"
    many = f"{len(both)} images are" if len(both) > 1 else "1 image is"
    return (
        f"warning: {many} in both {classes} (e.g. {named}): the model is taught two answers for it; "
        "remove the copy from the wrong class folder"
    )


def fingerprint(data: XrayData) -> str:
    """One digest of a set of images, whatever their order or names: a run records its validation
    images' so that a threshold or temperature is never refitted on other images than they were."""
    return hashlib.sha256(b"".join(sorted(digests(data.images)))).hexdigest()


def copies_of(data: XrayData, others: Sequence[XrayData]) -> int:
    """How many of ``data``'s images have the same pixels as an image of ``others``."""
    seen = {d for other in others for d in digests(other.images)}
    return sum(d in seen for d in digests(data.images))
