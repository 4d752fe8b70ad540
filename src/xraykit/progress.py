"""Rich progress bars for training: epoch, batch and running loss."""

from __future__ import annotations

from typing import Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from . import distributed
from .cli_views import console
from .loop import Callbacks


class RichCallbacks(Callbacks):
    """One live bar for the batches of the current epoch (running loss), a line per finished epoch."""

    def __init__(self, label: str = "train") -> None:
        self.label = label
        self.progress: Progress | None = None
        self.task: TaskID = TaskID(0)
        self.epochs = 0

    def on_epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epochs = epochs
        if self.progress is None:
            self.progress = Progress(
                TextColumn("{task.fields[label]} epoch {task.fields[epoch]}", style="bold", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("batches  loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=batches, label=self.label, epoch="", loss="-")
        self.progress.reset(self.task, total=batches, label=self.label, epoch=f"{epoch}/{epochs}", loss="-")

    def on_batch_end(self, batch: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=batch, loss=f"{loss:.4f}")

    def on_epoch_end(self, record: dict) -> None:
        console.print(
            Text.assemble(
                (self.label, "bold"),
                f" epoch {record['epoch']:>2}/{self.epochs}: train loss {record['train_loss']:.4f}  "
                f"val loss {record['val_loss']:.4f}  val acc {record['val_accuracy']:.3f}  ({record['seconds']:.1f} s)",
            )
        )
        if record["epoch"] >= self.epochs and self.progress is not None:
            self.progress.stop()
            self.progress = None

    def message(self, text: str) -> None:
        console.print(Text.assemble((f"{self.label}:", "cyan"), " ", text))


class QuietCallbacks(Callbacks):
    """No bars; messages still go to the terminal, since xraykit never changes course silently."""

    def message(self, text: str) -> None:
        console.print(text)


def callbacks_for(label: str, quiet: bool, callbacks: Optional[Callbacks] = None) -> Callbacks:
    """``callbacks`` if given; else bars (or, ``quiet``, messages alone) in the one process that reports."""
    if callbacks is not None:
        return callbacks
    if not distributed.is_main():  # under torchrun only rank 0 reports
        return Callbacks()
    return QuietCallbacks() if quiet else RichCallbacks(label)
