"""Progressive resizing: most epochs train on smaller images (cheaper), the last ones at the run's size.

The network is judged on images at ``--image-size``: validation and the checkpoint it saves are at that
size in every epoch, whatever size the epoch trained at.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xraykit
from xraykit.inputs import resized
from xraykit.loop import PROGRESSIVE_SHARE, training_size

TINY = dict(epochs=4, batch_size=16, image_size=32, quiet=True)


@given(st.integers(1, 60), st.integers(16, 200), st.integers(1, 300))
def test_the_first_share_of_epochs_train_small_and_the_rest_at_full_size(epochs, start, extra):
    size = start + extra
    sizes = [training_size(e, epochs, start, size) for e in range(epochs)]
    assert sizes[-1] == size  # the last epoch always trains at the size the model is judged at
    assert sizes == sorted(sizes) and set(sizes) <= {start, size}
    assert sizes.count(start) == int(PROGRESSIVE_SHARE * epochs)


@given(st.integers(1, 60), st.integers(16, 400))
def test_without_progressive_resizing_every_epoch_trains_at_the_runs_size(epochs, size):
    assert {training_size(e, epochs, None, size) for e in range(epochs)} == {size}


@given(st.integers(0, 1000), st.integers(8, 40))
def test_a_resized_batch_keeps_uint8_levels_and_the_images_mean_brightness(seed, size):
    images = torch.randint(0, 256, (3, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    small = resized(images, size)
    assert small.dtype == torch.uint8 and small.shape == (3, 1, size, size)
    assert torch.allclose(small.float().mean((1, 2, 3)), images.float().mean((1, 2, 3)), atol=6)


def test_a_progressive_run_trains_its_first_epochs_small_and_records_each_epochs_size(tmp_path):
    seen = []
    run = xraykit.train("synthetic:n=64,seed=0", "scratch", progressive=16, out=tmp_path / "run", **TINY)
    model = run.load_model()
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    with torch.no_grad():
        model(torch.zeros(1, 1, 32, 32))
    assert [h["image_size"] for h in run.history] == [16, 16, 32, 32]
    assert seen == [32]  # the saved network takes the run's size


def test_a_progressive_run_repeats_bit_for_bit_with_its_seed(tmp_path):
    a = xraykit.train("synthetic:n=64,seed=0", "scratch", progressive=16, out=tmp_path / "a", **TINY)
    b = xraykit.train("synthetic:n=64,seed=0", "scratch", progressive=16, out=tmp_path / "b", **TINY)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    pa, pb = a.load_model().state_dict(), b.load_model().state_dict()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_progressive_resizing_changes_the_training_but_not_what_is_validated(tmp_path):
    plain = xraykit.train("synthetic:n=64,seed=0", "scratch", out=tmp_path / "plain", **TINY)
    small = xraykit.train("synthetic:n=64,seed=0", "scratch", progressive=16, out=tmp_path / "small", **TINY)
    assert plain.history[0]["train_loss"] != small.history[0]["train_loss"]
    assert "image_size" not in plain.history[0]


@pytest.mark.parametrize(
    "value, words",
    [
        (32, "smaller than image_size 32"),
        (64, "smaller than image_size 32"),
        (8, "a whole number from 16"),
        (1.5, "whole"),
    ],
)
def test_a_progressive_size_that_is_not_smaller_than_the_image_is_refused_in_one_line(value, words):
    with pytest.raises(xraykit.XrayError, match="progressive") as err:
        xraykit.train("no/such/folder", progressive=value, image_size=32)
    assert words in str(err.value) and "\n" not in str(err.value)
