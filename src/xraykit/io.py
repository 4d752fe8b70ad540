"""Atomic file writes: a file is either its old self or completely new, never half-written.

Every output of xraykit goes through here, so killing a run at any moment leaves a run
folder whose files all load.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # reach the disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """Save tensors and plain Python values, loadable with ``weights_only=True``."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_figure(path: str | os.PathLike, fig: Any) -> None:
    """Save a matplotlib figure atomically as PNG; one made through ``pyplot`` is closed too.

    A :class:`~matplotlib.figure.Figure` made directly (as :mod:`xraykit.figures` makes them)
    belongs to no window and is freed like any object; pyplot keeps its own until closed.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
