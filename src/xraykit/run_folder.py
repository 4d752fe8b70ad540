"""A run folder's ownership: claimed by exactly one run, locked while it trains, released if set-up fails.

Two ``xraykit train`` into one ``--out`` at the same moment must not mix their files: the
folder's marker file is created exclusively (``O_CREAT | O_EXCL``), so exactly one of them
wins; a lock on it (released by the system when the process ends, even by ``kill -9``)
keeps a second ``--resume`` from training the same run at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import XrayError

RUN_MARKER = ".xraykit-run"  # created exclusively by the run that owns the folder; locked while it trains
_HELD: dict[str, int] = {}  # run folder -> open file descriptor of its locked marker, for this process's lifetime


def check_out(run_dir: Path) -> None:
    """Refuse an ``--out`` that cannot become this run's folder: a file, under a file, or another run's."""
    from .data.images import display_path

    for parent in [run_dir, *run_dir.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise XrayError(f"{display_path(run_dir)}: cannot be a run folder ({display_path(parent)} is a file)")
            break
    if (run_dir / "config.json").exists() or (run_dir / RUN_MARKER).exists():
        raise XrayError(
            f"{display_path(run_dir)}: already holds a run; pick another --out, or continue it with --resume {run_dir}"
        )


def claim_run_folder(run_dir: Path) -> None:
    """Make ``run_dir`` this run's, or refuse: its marker file is created exclusively (``O_CREAT | O_EXCL``),
    so of two runs started into one ``--out`` at the same moment exactly one wins."""
    from .data.images import display_path

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / RUN_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        if (run_dir / RUN_MARKER).exists():
            raise XrayError(
                f"{display_path(run_dir)}: already holds a run (or another `xraykit train` claimed it a moment "
                "ago); pick another --out"
            ) from None
        raise XrayError(f"{display_path(run_dir)}: cannot be a run folder (a file is in the way)") from None
    except OSError as exc:
        raise XrayError(f"{display_path(run_dir)}: cannot create the run folder ({exc.strerror})") from None
    if (run_dir / "config.json").exists():  # a run from before markers existed
        os.close(fd)
        os.unlink(run_dir / RUN_MARKER)
        raise XrayError(f"{display_path(run_dir)}: already holds a run; pick another --out")
    _lock(run_dir, fd)


def hold_run_folder(run_dir: Path) -> None:
    """Lock a run folder being resumed, so that two ``--resume`` of one run cannot train it at once."""
    from .data.images import display_path

    try:
        fd = os.open(run_dir / RUN_MARKER, os.O_CREAT | os.O_WRONLY, 0o666)
    except OSError as exc:
        raise XrayError(f"{display_path(run_dir)}: cannot write into the run folder ({exc.strerror})") from None
    _lock(run_dir, fd)


def _lock(run_dir: Path, fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: the exclusive creation is the claim
        _HELD[str(run_dir)] = fd
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the system when the process ends, even by kill -9
    except OSError:
        os.close(fd)
        raise XrayError(f"{run_dir}: another xraykit process is training this run right now") from None
    _HELD[str(run_dir)] = fd


def unlock(run_dir: Path) -> None:
    fd = _HELD.pop(str(run_dir), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases its lock


def release_run_folder(run_dir: Path) -> None:
    """Undo :func:`claim_run_folder` for a run that failed before its first checkpoint: its files, then the folder
    if it is left empty, so that the same command can run again."""
    if (run_dir / "checkpoints" / "last.pt").exists():
        return
    for name in ("config.json", "log.txt", "history.json", RUN_MARKER):
        (run_dir / name).unlink(missing_ok=True)
    unlock(run_dir)
    for folder in (run_dir / "checkpoints", run_dir):
        try:
            folder.rmdir()  # only if empty: never a file the user put there
        except OSError:
            pass
