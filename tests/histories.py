"""What two training histories may differ in (the wall clock, and nothing else), and a run stopped on purpose."""

from xraykit.loop import Callbacks

TIMINGS = ("seconds", "feature_seconds")


def without_timings(history: list[dict]) -> list[dict]:
    """``history`` with the wall-clock keys left out, for comparing two runs that should match.

    A resumed fine-tuning run computes its feature cache again, so its first resumed epoch
    records a feature pass (``feature_seconds``) that the uninterrupted run's same epoch did
    not need; that is timing, not training.
    """
    return [{k: v for k, v in record.items() if k not in TIMINGS} for record in history]


class StopAfter(Callbacks):
    """Ctrl-C at the end of epoch ``n``, after its checkpoint is written."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, record: dict) -> None:
        if record["epoch"] == self.n:
            raise KeyboardInterrupt
