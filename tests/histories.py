"""What two training histories may differ in: the wall clock, and nothing else."""

TIMINGS = ("seconds", "feature_seconds")


def without_timings(history: list[dict]) -> list[dict]:
    """``history`` with the wall-clock keys left out, for comparing two runs that should match.

    A resumed fine-tuning run computes its feature cache again, so its first resumed epoch
    records a feature pass (``feature_seconds``) that the uninterrupted run's same epoch did
    not need; that is timing, not training.
    """
    return [{k: v for k, v in record.items() if k not in TIMINGS} for record in history]
