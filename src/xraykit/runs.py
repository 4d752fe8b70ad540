"""A run folder: what one training run leaves behind, and how to open it again.

```
RUN/config.json          every choice of the run (enough to rerun it); under "record", what it began with
RUN/history.json         per epoch: train loss, val loss, val accuracy, seconds
RUN/log.txt              what the run said while setting up (validation split, skipped files, weights)
RUN/loss_curves.png
RUN/checkpoints/last.pt  end of the last finished epoch (resume from here)
RUN/checkpoints/best.pt  lowest validation loss so far
RUN/metrics.json         after `xraykit evaluate`
```
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Union

from torch import nn

from . import plugins
from .config import RunRecord, TrainConfig
from .data.loading import choose_validation, load_data
from .errors import XrayError
from .inference import apply_normalization
from .interfaces import Backbone, XrayData
from .io import read_json
from .weights import fit_state_dict, safe_load


class Run:
    """An existing run folder. ``Run("runs/scratch").load_model()`` gives the trained network."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        config_file = self.path / "config.json"
        if not config_file.is_file():
            raise XrayError(f"{self.path}: not a run folder (no config.json); train one with `xraykit train`")
        try:
            self.config = TrainConfig.from_dict(read_json(config_file))
        except XrayError as exc:  # a value of the wrong kind: the check names the key
            raise XrayError(f"{config_file}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise XrayError(f"{config_file}: unreadable run configuration ({exc})") from None

    @classmethod
    def open(cls, run: RunLike) -> Run:
        """``run`` itself if it is a :class:`Run`, else the run folder at that path."""
        return run if isinstance(run, Run) else cls(run)

    def __repr__(self) -> str:
        return f"Run('{self.path}')"

    def _repr_html_(self) -> str:
        """A notebook shows a run as a small table: what it was, and where its last epoch ended."""
        from .report import html_table

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

    def checkpoint_path(self, which: str | None = None) -> Path:
        """``best`` or ``last``; by default the one the run's recipe selects."""
        which = which or self.config.select
        if which not in ("best", "last"):  # also keeps a name like '../x' from reaching the file system
            raise XrayError(f"{self.path}: --which must be 'best' or 'last', got '{which}'")
        path = self.path / "checkpoints" / f"{which}.pt"
        if not path.is_file() and which == "best":
            path = self.path / "checkpoints" / "last.pt"
        if not path.is_file():
            raise XrayError(f"{self.path}: no checkpoint yet ({path.name}); has an epoch finished?")
        return path

    def load_checkpoint(self, which: str | None = None) -> dict:
        path = self.checkpoint_path(which)
        state = safe_load(path)
        if not isinstance(state, dict) or "model" not in state:
            raise XrayError(f"{path}: not an xraykit checkpoint")
        return state

    def train_and_val(self, skip_bad: bool | None = None) -> tuple[XrayData, XrayData]:
        """The run's own training and validation images: its data loaded again, the split carved as in training.

        ``skip_bad`` defaults to what the run did. An :class:`XrayError` says why they cannot be
        had (a run trained on data loaded in Python, a data folder since moved).
        """
        if self.config.data == "in-memory":
            raise XrayError(f"{self.path} was trained on data loaded in Python, so its images cannot be loaded again")
        if skip_bad is None:
            skip_bad = self.record.skip_bad or bool(self.record.skipped_files)
        splits = load_data(self.config.data, self.config.image_size, skip_bad=skip_bad)
        train, val, _ = choose_validation(splits, self.config.val_from_train, self.config.seed)
        return train, val

    def load_model(self, which: str | None = None) -> nn.Module:
        """The trained network, on the CPU, in eval mode."""
        state = self.load_checkpoint(which)
        backbone = self.backbone
        model = apply_normalization(backbone.build(self.config.num_classes), self.config.normalize)
        fit_state_dict(model, state["model"], backbone, str(self.checkpoint_path(which)), load_head=True)
        return model.eval()


RunLike = Union[str, Path, Run]
