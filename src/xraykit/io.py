"""Atomic file writes: a file is either its old self or completely new, never half-written; and where
outputs may not go.

Every output of xraykit goes through here, so killing a run at any moment leaves a run
folder whose files all load. No output goes inside a data set the command reads (a figure in a
class folder is an X-ray of that class to the next command) or over one of its inputs.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .errors import XrayError, display_path


def _umask() -> int:
    """The process's umask (read without changing it where Linux allows; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cannot_write(path: Path, exc: BaseException) -> XrayError:
    """One line for a write that failed: the path, and why (a full disk, no permission, a file in the way)."""

    if isinstance(exc, OSError):
        why = exc.strerror or type(exc).__name__
        if exc.errno == errno.ENOSPC:
            why = "no space left on the disk"
        elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
            why = "a file is in the way where a folder is needed"
    else:  # torch's zip writer says "PytorchStreamWriter failed writing file ..." for a full disk
        why = f"the write failed, is the disk full? ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return XrayError(f"{display_path(path)}: cannot write this file ({why})")


def refuse_inside(out: str | os.PathLike, data: Iterable[Optional[Path]], what: str = "data set") -> None:
    """Refuse an output folder that is, or lies inside, one of the data folders this command reads.

    ``data`` holds the folders read (``None`` for data that is not a folder: ``sample``, an .npz file);
    ``what`` names them in the message.
    """
    where = Path(out).resolve()
    for folder in data:
        if folder is not None and (where == folder.resolve() or folder.resolve() in where.parents):
            raise XrayError(
                f"{display_path(Path(out))}: lies inside the {what} {display_path(folder)} that this command reads; "
                f"what it writes there would be read as images or classes of it: choose a folder outside it"
            )


def refuse_over_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Refuse to write a file over one of the command's own input files."""
    read = {Path(p).resolve() for p in inputs}
    for path in outputs:
        if path.resolve() in read:
            raise XrayError(
                f"{display_path(path)}: is one of this command's input images; writing there would replace it: "
                "choose another --out"
            )


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The file gets the permissions any new file gets (0666 less the umask), not mkstemp's 0600.
    A write that fails (full disk, no permission, a file where a folder should be) is an
    :class:`~xraykit.XrayError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            os.chmod(tmp_path, 0o666 & ~_umask())
            with open(tmp_path, "rb+") as f:  # reach the disk before the rename makes it visible
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def strict(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by ``None``: what strict JSON can hold.

    A value that is undefined (a loss that never was, a ratio of 0 by 0) is ``null``, never
    the bare ``NaN`` that Python writes and other JSON readers refuse.
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: strict(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict(value) for value in data]
    return data


def write_json(path: str | os.PathLike, data: Any) -> None:
    """``data`` as strict JSON (no ``NaN`` or ``Infinity``: :func:`strict`), written atomically."""
    write_text(path, json.dumps(strict(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """Save tensors and plain Python values, loadable with ``weights_only=True``."""
    import torch  # here, not at the top: the command line imports this module before any command runs

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's zip writer on a full disk
            raise _cannot_write(Path(path), exc) from None


def plain_text(fig: Any) -> Any:
    """Every text of ``fig`` drawn as it is written: an image named ``a$\\foo$.png`` in a title is a name,
    not mathematics for matplotlib to parse (and fail on). xraykit draws no formula."""
    for text in fig.findobj(lambda artist: hasattr(artist, "set_parse_math")):
        text.set_parse_math(False)
    return fig


def save_figure(path: str | os.PathLike, fig: Any) -> None:
    """Save a matplotlib figure atomically as PNG; one made through ``pyplot`` is closed too.

    A :class:`~matplotlib.figure.Figure` made directly (as :mod:`xraykit.figures` makes them)
    belongs to no window and is freed like any object; pyplot keeps its own until closed.
    """
    plain_text(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
