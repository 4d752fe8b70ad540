"""Decoding one image file into a grayscale ``uint8`` tensor, or saying clearly why not.

Real collections mix formats: the Kaggle originals are 1-channel JPEGs of 1000-2000 px,
resized copies are 3-channel 224 px, others are 16-bit or RGBA PNGs. All of them become
one channel, full frame resized to ``size`` x ``size`` (aspect ratio not kept, as in the
report), EXIF rotation applied. Anything that is not a readable image raises
:class:`~xraykit.errors.ImageError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import ImageError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# Chest X-rays are at most a few thousand pixels a side; 8,000 x 8,000 leaves ample room
# and stops a decompression bomb (a tiny file that decodes to gigabytes) before it decodes.
MAX_PIXELS = 64_000_000


def is_image_file(path: Path) -> bool:
    """An image by name, not hidden (``.DS_Store``, macOS ``._x.jpeg`` resource forks)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _to_gray8(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit grayscale, keeping the full dynamic range of 16-bit images."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels show as black, as a viewer over a dark background would.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("L")


def load_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """Decode ``path`` to a ``uint8`` tensor of shape ``(1, size, size)``."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        f"{path}: image is {width}x{height} pixels, more than the {MAX_PIXELS:,} "
                        "allowed (a decompression bomb or not an X-ray)"
                    )
                if img.format == "JPEG":
                    # Let libjpeg decode at a reduced scale: a 2000 px X-ray resized to 224
                    # needs only an eighth of the DCT work.
                    img.draft("L", (size, size))
                img = ImageOps.exif_transpose(img)
                img = _to_gray8(img)
                img = img.resize((size, size), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: too many pixels ({exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise ImageError(f"{path}: too many pixels ({exc})") from None
    except OSError as exc:  # UnidentifiedImageError, truncated data, unreadable file
        reason = "empty file" if path.is_file() and path.stat().st_size == 0 else str(exc).replace(str(path), "").strip(" '")
        raise ImageError(f"{path}: not a readable image ({reason or type(exc).__name__})") from None
    except (ValueError, SyntaxError, TypeError) as exc:  # malformed headers in some plugins
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    return torch.from_numpy(arr.copy())[None]
