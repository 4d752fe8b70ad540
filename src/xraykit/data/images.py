"""Decoding one image file into a grayscale ``uint8`` tensor, or saying clearly why not.

Real collections mix formats: the Kaggle originals are 1-channel JPEGs of 1000-2000 px,
resized copies are 3-channel 224 px, others are 16-bit or RGBA PNGs, CMYK JPEGs from a
print workflow, phone photos of a light box with an EXIF rotation. All of them become one
channel, full frame resized to ``size`` x ``size`` (aspect ratio not kept, as in the
report), shown the way a viewer shows them. Anything that is not a readable image raises
:class:`~xraykit.errors.ImageError` with one line naming the file and the problem: the
only exception :func:`load_image` lets out, whatever the file holds.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import ImageError, display_path

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# Chest X-rays are at most a few thousand pixels a side; 8,000 x 8,000 leaves ample room
# and stops a decompression bomb (a tiny file that decodes to gigabytes) before it decodes.
MAX_PIXELS = 64_000_000
_ORIENTATION = 0x0112  # the EXIF tag viewers read to turn a photo upright
# warnings.catch_warnings is process-wide state; two decoding threads must not interleave it.
_OPEN_LOCK = threading.Lock()


def is_image_file(path: Path) -> bool:
    """An image by name, not hidden (``.DS_Store``, macOS ``._x.jpeg`` resource forks)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _file_problem(path: Path) -> Optional[str]:
    """What is wrong with ``path`` as a file, before any decoder sees it; ``None`` if nothing."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return f"a symbolic link to a missing file ({display_path(os.readlink(path))})"
        return "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops back on itself (directly or through other links)"
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not an image file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if info.st_size == 0:
        return "empty file (0 bytes), not an image"
    return None


def _not_an_image(path: Path) -> str:
    """Why Pillow recognised no image format, guessed from the first bytes: the usual culprits."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        head = b""
    text = head.lstrip().lower()
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the image itself (run `git lfs pull` where the data set was cloned)"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "an HTML page, not an image (a failed download? fetch the file again)"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and all(c.isprintable() or c in "\r\n\t" for c in decoded):
        return "a text file, not an image"
    return "not an image (no JPEG, PNG or other format Pillow reads)"


def _describe(path: Path, exc: BaseException) -> str:
    """One line for a decoder's exception; the file name is added by the caller."""
    if isinstance(exc, Image.DecompressionBombError):
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow allows"
        return f"image of {pixels}, more than the {MAX_PIXELS:,} allowed (a decompression bomb, or not an X-ray)"
    if isinstance(exc, Image.UnidentifiedImageError):
        return _not_an_image(path)
    message = str(exc).replace(str(path), "").replace("''", "").strip(" '")
    if "truncated" in message.lower():
        return "truncated image: the file ends early (copy or download it again)"
    return (
        f"not a readable image ({type(exc).__name__}: {message})"
        if message
        else f"not a readable image ({type(exc).__name__})"
    )


def _upright(img: Image.Image) -> Image.Image:
    """Turn the image the way its EXIF orientation tells a viewer to; broken EXIF is ignored."""
    try:
        orientation = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # malformed metadata: the pixels are still good
        return img
    return ImageOps.exif_transpose(img) if orientation in range(2, 9) else img


def _to_gray8(img: Image.Image, size: int) -> Image.Image:
    """Any PIL mode to 8-bit grayscale ``size`` x ``size``.

    16-bit and float images (a 12-bit detector's values in 16 bits, a float TIFF) are
    resized as floats, then stretched from their lowest to their highest value onto 0-255,
    so that neither a dark 12-bit image nor a float one in [0, 1] comes out black.
    Transparent pixels show as black, as a viewer over a dark background would.
    """
    if img.mode.startswith(("I", "F")):
        arr = np.asarray(
            img.convert("F") if img.mode not in ("I", "F", "I;16", "I;16L", "I;16B") else img, dtype=np.float32
        )
        finite = np.isfinite(arr)
        arr = np.where(finite, arr, np.float32(arr[finite].min()) if finite.any() else np.float32(0))
        small = np.asarray(Image.fromarray(arr, mode="F").resize((size, size), Image.Resampling.BILINEAR))
        lo, hi = float(small.min()), float(small.max())
        scaled = np.zeros_like(small) if hi <= lo else (small - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().clip(0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    try:
        gray = img.convert("L")
    except ValueError:  # a mode with no direct conversion (LAB, HSV): go through RGB
        gray = img.convert("RGB").convert("L")
    return gray.resize((size, size), Image.Resampling.BILINEAR)


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """Decode ``path`` to a ``uint8`` tensor of shape ``(1, size, size)``.

    >>> load_image("NORMAL/IM-0001-0001.jpeg", 224).shape  # doctest: +SKIP
    torch.Size([1, 224, 224])

    Raises :class:`~xraykit.errors.ImageError`, and nothing else, for a file that is not a
    readable image: empty, truncated, text or HTML, a decompression bomb, a symbolic link
    that loops, ... Pillow raises a zoo of exceptions on malformed input (``OSError``,
    ``SyntaxError``, ``struct.error``, ``IndexError``); all of them are bad input here.
    """
    path = Path(path)
    problem = _file_problem(path)
    if problem:
        raise ImageError(f"{display_path(path)}: {problem}")
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Pillow warns past 89 M pixels; xraykit refuses past MAX_PIXELS below, in one line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{display_path(path)}: image of {width * height:,} pixels ({width}x{height}), more than the "
                    f"{MAX_PIXELS:,} allowed (a decompression bomb, or not an X-ray)"
                )
            if img.format == "JPEG":
                # Let libjpeg decode at a reduced scale: a 2000 px X-ray resized to 224
                # needs only an eighth of the DCT work.
                img.draft("L", (size, size))
            # Decode every pixel now: a damaged PNG (flipped bytes in its IDAT data, a header
            # promising more rows than the data holds) raises here, before _upright, which
            # ignores errors in metadata, could swallow it and leave a half-filled image.
            img.load()
            arr = np.asarray(_to_gray8(_upright(img), size), dtype=np.uint8)
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file, said in one line
        raise ImageError(f"{display_path(path)}: {_describe(path, exc)}") from None
    return torch.from_numpy(arr.copy())[None]
