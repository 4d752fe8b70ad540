"""The decoded-image cache: each image file is decoded and resized once, then read back as bytes.

Decoding a 2000 px JPEG and resizing it costs more than a training step needs to read it,
so the second run on the same folder (or a resumed one) should not touch JPEG at all.
Every image decoded at a size is kept as a small ``.npy`` file (``uint8``, ``(1, S, S)``)
in the cache folder, named by a hash of everything that decides its pixels: the file's
absolute path, inode, size in bytes, modification and status-change times, the target size and
the decoder's version. A file rewritten in place keeps its path and can be given back its size and
modification time, but not its status-change time (the kernel sets it on every write). A changed
file has a new name, so a stale entry is never read; an entry that does
not load as exactly that array (a half-written or corrupt file) is ignored and rebuilt.
Entries are read with ``allow_pickle=False``: a cache file can hold pixels, never code.

Where: ``$XRAYKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/xraykit``, else ``~/.cache/xraykit``;
``XRAYKIT_CACHE_DIR=off`` turns the cache off. Deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .images import load_image

# Bump when load_image's output for the same file changes (resampling, grayscale conversion).
DECODER_VERSION = 1
# A file modified this recently may be modified again within the file system's timestamp
# granularity without its mtime changing: decode it, but do not cache it yet (git's "racy" rule).
RACY_SECONDS = 2.0


def cache_dir() -> Optional[Path]:
    """The cache folder, or ``None`` when ``XRAYKIT_CACHE_DIR=off``."""
    chosen = os.environ.get("XRAYKIT_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "none", "0") else Path(chosen)
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no home folder to be found: no cache, rather than no training
        return None
    return Path(base) / "xraykit"


def entry_path(root: Path, path: Path, size: int) -> tuple[Optional[Path], float]:
    """Where the decoded copy of ``path`` at ``size`` lives, and when the file last changed; ``(None, 0)`` if
    unreadable."""
    try:
        path = path.resolve()
        st = path.stat()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic link loop (Python < 3.13); load_image names it
        return None, 0.0
    key = f"{DECODER_VERSION}\0{path}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{size}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return root / f"decoded-{size}" / digest[:2] / f"{digest}.npy", st.st_mtime


def _read(entry: Path, size: int) -> Optional[torch.Tensor]:
    """The cached array if ``entry`` holds exactly a ``uint8`` ``(1, size, size)`` array, else ``None``."""
    try:
        arr = np.load(entry, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != (1, size, size):
        return None
    return torch.from_numpy(arr)


def _write(entry: Path, image: torch.Tensor) -> None:
    """Write atomically (temporary file, then rename); a cache that cannot be written is no error.

    No fsync, unlike run outputs (``xraykit.io``): a cache entry lost or truncated by a
    crash is detected on reading and rebuilt, and thousands of fsyncs would cost seconds.
    """
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, image.numpy(), allow_pickle=False)
            os.replace(tmp, entry)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


def load_image_cached(path: str | os.PathLike, size: int) -> torch.Tensor:
    """:func:`~xraykit.data.images.load_image`, read from the cache when this file was decoded before.

    Bad images raise the same :class:`~xraykit.errors.ImageError` as ``load_image`` (they are
    never cached).
    """
    root = cache_dir()
    entry, mtime = entry_path(root, Path(path), size) if root is not None else (None, 0.0)
    if entry is not None:
        cached = _read(entry, size)
        if cached is not None:
            return cached
    image = load_image(path, size)  # a missing or bad file raises here, naming it
    if entry is not None and time.time() - mtime > RACY_SECONDS:
        _write(entry, image)
    return image
