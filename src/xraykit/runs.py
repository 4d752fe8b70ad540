"""A run folder: what one training run leaves behind, how it is claimed by exactly one run, and how to
open it again.

```
RUN/config.json          every choice of the run (enough to rerun it); under "record", what it began with
RUN/history.json         per epoch: train loss, val loss, val accuracy, seconds
RUN/log.txt              what the run said while setting up (validation split, skipped files, weights)
RUN/loss_curves.png
RUN/checkpoints/last.pt  end of the last finished epoch (resume from here)
RUN/checkpoints/best.pt  lowest validation loss so far
RUN/metrics.json         after `xraykit evaluate`: names the checkpoint and the epoch it scored
RUN/reference-<which>.pt the shift reference of a checkpoint, with that checkpoint's digest (made again
                         when the checkpoint changes, as a resumed run's last.pt does)
RUN/.xraykit-run         the claim: created by the one run that owns the folder, locked while it trains
```

Two ``xraykit train`` into one ``--out`` at the same moment must not mix their files: the
folder's marker file is created exclusively (``O_CREAT | O_EXCL``), so exactly one of them
wins; a lock on it (released by the system when the process ends, even by ``kill -9``)
keeps a second ``--resume`` from training the same run at once.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path
from typing import Optional, Union

from torch import nn

from . import plugins
from .config import SELECTIONS, RunRecord, TrainConfig
from .data.copies import fingerprint
from .data.loading import choose_validation, load_data
from .errors import XrayError, display_path
from .inference import apply_normalization
from .interfaces import Backbone, XrayData
from .io import read_json
from .weights import fit_state_dict, safe_load


class Run:
    """An existing run folder. ``Run("runs/scratch").load_model()`` gives the trained network."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: Optional[dict[str, XrayData]] = None  # the run's data when the caller has it loaded
        config_file = self.path / "config.json"
        if not config_file.is_file():
            raise XrayError(f"{self.path}: not a run folder (no config.json); train one with `xraykit train`")
        try:
            self.config = TrainConfig.from_dict(read_json(config_file))
        except XrayError as exc:  # a value of the wrong kind: the check names the key
            raise XrayError(f"{config_file}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise XrayError(f"{config_file}: unreadable run configuration ({exc})") from None
        # An ensemble's members (xraykit.ensembles), read once like the config; None for a run of its own.
        self.members: Optional[list[dict]] = self._read_members()

    @classmethod
    def open(cls, run: RunLike) -> Run:
        """``run`` itself if it is a :class:`Run`, else the run folder at that path."""
        return run if isinstance(run, Run) else cls(run)

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    def _repr_html_(self) -> str:
        """A notebook shows a run as a small table: what it was, and where its last epoch ended."""
        from .tables import html_table

        c, history = self.config, self.history
        rows = [("folder", str(self.path)), ("task", c.task), ("backbone", c.backbone), ("recipe", c.recipe)]
        rows += [("image size", f"{c.image_size} px"), ("epochs", f"{len(history)} of {c.epochs}")]
        if history:
            last = history[-1]
            rows.append(("last val loss", f"{last.get('val_loss', float('nan')):.4f}"))
            if "val_accuracy" in last:
                rows.append(("last val accuracy", f"{100 * last['val_accuracy']:.1f}%"))
        return html_table(rows)

    @property
    def record(self) -> RunRecord:
        """What the run began with: its validation split, counts, parameters, weights, versions."""
        return self.config.record

    @property
    def history(self) -> list[dict]:
        f = self.path / "history.json"
        try:
            history = read_json(f) if f.is_file() else []
        except (ValueError, UnicodeDecodeError) as exc:
            raise XrayError(f"{f}: not readable JSON ({exc}); the checkpoints keep the history too") from None
        if not isinstance(history, list):
            raise XrayError(f"{f}: expected a list of epochs, got {type(history).__name__}")
        return history

    @property
    def data_argument(self) -> str | None:
        """The DATA to type in a command about this run (the data it recorded, quoted for the shell), or
        ``None`` when it was trained on data loaded in Python, which no command can name."""
        return None if self.config.data == "in-memory" else shlex.quote(self.config.data)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config.classes)

    @property
    def backbone(self) -> Backbone:
        return plugins.backbone(self.config.backbone)

    def check_classes(self, data: XrayData, where: str) -> None:
        """Refuse data whose classes differ from those the run was trained on (in order; the case of letters aside)."""
        if tuple(c.casefold() for c in data.classes) != tuple(c.casefold() for c in self.classes):
            raise XrayError(
                f"{where}: classes {', '.join(data.classes)} differ from the run's {', '.join(self.classes)}"
            )

    def _read_members(self) -> list[dict] | None:
        """An ensemble's members (``ensemble.json``: folder, checkpoint and its digest), ``None`` for a run."""
        f = self.path / "ensemble.json"
        if not f.is_file():
            return None
        try:
            content = read_json(f)
        except (ValueError, UnicodeDecodeError) as exc:
            raise XrayError(f"{f}: not readable JSON ({exc})") from None
        found = content.get("members") if isinstance(content, dict) else None
        if not isinstance(found, list) or not all(isinstance(m, dict) and "path" in m for m in found):
            raise XrayError(f"{f}: not an ensemble file (expected a list of members)")
        return found

    def refuse_ensemble(self, what: str) -> None:
        """Refuse, in one line, to ``what`` an ensemble: maps and features belong to one network."""
        members = self.members
        if members:
            raise XrayError(f"{self.path}: an ensemble; to {what}, give one of its members ({members[0]['path']})")

    def checkpoint_path(self, which: str | None = None) -> Path:
        """``last``, ``best`` or ``averaged``; by default the one the run selects. An ensemble's: ``ensemble.json``."""
        if self.members is not None:
            if which is not None:
                raise XrayError(
                    f"{self.path}: an ensemble answers with the checkpoints it was made of; leave out --which"
                )
            return self.path / "ensemble.json"
        which = which or self.config.select
        if which not in SELECTIONS:  # also keeps a name like '../x' from reaching the file system
            raise XrayError(f"{self.path}: --which must be one of {', '.join(SELECTIONS)}, got '{which}'")
        path = self.path / "checkpoints" / f"{which}.pt"
        if which == "averaged" and self.config.select != "averaged" and not path.is_file():
            raise XrayError(f"{self.path}: this run kept no averaged weights (train with --select averaged)")
        if not path.is_file() and which != "last":  # a run stopped before its last epoch: its last finished one
            path = self.path / "checkpoints" / "last.pt"
        if not path.is_file():
            raise XrayError(f"{self.path}: no checkpoint yet ({path.name}); has an epoch finished?")
        return path

    def load_checkpoint(self, which: str | None = None) -> dict:
        if self.members is not None:  # an ensemble has no weights of its own: its members have
            return {"model": None, "epoch": None}
        path = self.checkpoint_path(which)
        state = safe_load(path)
        if not isinstance(state, dict) or "model" not in state:
            raise XrayError(f"{path}: not an xraykit checkpoint")
        return state

    def _ensemble_model(self) -> nn.Module:
        """The members' networks as one (:class:`xraykit.ensembles.Ensemble`), each checked against its digest."""
        from .ensembles import Ensemble

        models = []
        for m in self.members or []:
            member = Run(m["path"])
            which = str(m.get("checkpoint", "last.pt")).removesuffix(".pt")
            if member.checkpoint_digest(which) != m.get("checkpoint_sha256"):
                raise XrayError(
                    f"{member.checkpoint_path(which)}: changed since the ensemble was made ({self.path}); "
                    "make the ensemble again"
                )
            models.append(member.load_model(which))
        return Ensemble(models).eval()

    def train_and_val(self, skip_bad: bool | None = None, same_as_training: bool = False) -> tuple[XrayData, XrayData]:
        """The run's own training and validation images: its data loaded again, the split carved as in training.

        ``skip_bad`` defaults to what the run did. An :class:`XrayError` says why they cannot be
        had (a run trained on data loaded in Python, a data folder since moved), and, with
        ``same_as_training``, when the validation images differ from those the run recorded (a threshold
        or a temperature refitted on them would then be fitted on other images, maybe training ones).
        """
        validated = {m.get("val_fingerprint") for m in self.members or []}
        if len(validated) > 1:
            raise XrayError(
                f"{self.path}: an ensemble whose members were validated on different images (carved with other "
                "seeds), so no image is left that none of them trained on"
            )
        splits = self._data
        if splits is None:
            if self.config.data == "in-memory":
                raise XrayError(
                    f"{self.path} was trained on data loaded in Python, so its images cannot be loaded again"
                )
            if skip_bad is None:
                skip_bad = self.record.skip_bad or bool(self.record.skipped_files)
            splits = load_data(self.config.data, self.config.image_size, skip_bad=skip_bad)
        train, val, _ = choose_validation(splits, self.config.val_from_train, self.config.seed)
        if same_as_training and self.record.val_fingerprint and fingerprint(val) != self.record.val_fingerprint:
            raise XrayError(
                f"{self.path}: the validation images carved from {self.config.data} today are not those the run was "
                f"trained with ({len(val)} now, {self.record.val_images} then): the data changed since"
            )
        return train, val

    def with_data(self, splits: dict[str, XrayData]) -> Run:
        """This run, told that ``splits`` is the data it was trained on, already loaded: :meth:`train_and_val`
        then carves its split from them instead of reading every image again (``compare`` trains and
        evaluates on one load)."""
        self._data = splits
        return self

    def checkpoint_digest(self, which: str | None = None) -> str:
        """The SHA-256 of checkpoint ``which``'s bytes: files made from a checkpoint keep it, and are made again
        when it differs (a resumed run writes a new ``last.pt`` under the same name)."""
        digest = hashlib.sha256()
        with open(self.checkpoint_path(which), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def load_model(self, which: str | None = None, state: dict | None = None) -> nn.Module:
        """The trained network, on the CPU, in eval mode; from ``state`` when the checkpoint is already loaded."""
        if self.members is not None:
            return self._ensemble_model()
        state = state if state is not None else self.load_checkpoint(which)
        backbone = self.backbone
        model = apply_normalization(backbone.build(self.config.num_classes), self.config.normalize)
        fit_state_dict(model, state["model"], backbone, str(self.checkpoint_path(which)), load_head=True)
        return model.eval()


RunLike = Union[str, Path, Run]


# ----------------------------------------------------------------------------- claimed, locked, released

RUN_MARKER = ".xraykit-run"  # created exclusively by the run that owns the folder; locked while it trains
_HELD: dict[str, int] = {}  # run folder -> open file descriptor of its locked marker, for this process's lifetime


def check_out(run_dir: Path) -> None:
    """Refuse an ``--out`` that cannot become this run's folder: a file, under a file, or another run's."""

    for parent in [run_dir, *run_dir.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise XrayError(f"{display_path(run_dir)}: cannot be a run folder ({display_path(parent)} is a file)")
            break
    if (run_dir / "config.json").exists() or (run_dir / RUN_MARKER).exists():
        raise XrayError(
            f"{display_path(run_dir)}: already holds a run; pick another --out, or continue it with --resume {run_dir}"
        )


def refuse_other_run(out: Path, run: Run) -> None:
    """Refuse an ``--out`` that is another run's folder: ``evaluate runB --out runA`` would replace runA's
    ``metrics.json`` with numbers of runB."""
    if out.resolve() != run.path.resolve() and ((out / "config.json").is_file() or (out / RUN_MARKER).exists()):
        raise XrayError(
            f"{display_path(out)}: is another run's folder; writing {display_path(run.path)}'s results there would "
            "replace its own: choose another --out"
        )


def claim_run_folder(run_dir: Path) -> None:
    """Make ``run_dir`` this run's, or refuse: its marker file is created exclusively (``O_CREAT | O_EXCL``),
    so of two runs started into one ``--out`` at the same moment exactly one wins."""

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
