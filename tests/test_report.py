"""The report's notes: a class is told when the numbers it reads come from a bad last epoch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from xraykit.report import last_epoch_note

losses = st.lists(st.floats(min_value=0.01, max_value=10), min_size=2, max_size=12)


def history(val_losses):
    return [{"epoch": i + 1, "val_loss": v} for i, v in enumerate(val_losses)]


@given(losses)
def test_a_run_that_keeps_its_last_epoch_is_flagged_exactly_when_that_epoch_is_far_worse_than_its_best(val):
    note = last_epoch_note("Task 1.1: scratch", history(val), "last", "runs/t11", "synthetic:n=640,seed=0")
    assert (note is not None) == (val[-1] > 1.5 * min(val))
    if note:
        best_epoch = val.index(min(val)) + 1
        assert note.startswith("Task 1.1: scratch")
        assert f"{val[-1]:.2f}" in note and f"{min(val):.2f}" in note and f"epoch {best_epoch}" in note
        # ...and told how to see the best epoch's numbers, with a command that names this run and data
        # and writes them beside the last epoch's instead of over them.
        assert "xraykit evaluate runs/t11 synthetic:n=640,seed=0 --which best --out runs/t11/best" in note


@given(losses)
def test_a_run_that_keeps_its_best_epoch_is_never_flagged(val):
    assert last_epoch_note("Task 1.1: scratch", history(val), "best", "runs/t11", "DATA") is None


def test_a_last_epoch_whose_loss_is_not_a_number_is_flagged():
    note = last_epoch_note("Task 1.1: scratch", history([0.3, 0.2, float("nan")]), "last", "runs/t11", "DATA")
    assert note is not None and "epoch 2" in note
