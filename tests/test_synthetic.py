"""Synthetic chest X-rays: deterministic, independent per image, lesions only in the lungs of PNEUMONIA cases."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xraykit
from xraykit.data.synthetic import CLASSES, lung_fields, synthesize, synthetic_splits

seeds = st.integers(0, 2**20)
sizes = st.integers(16, 48)


@given(n=st.integers(1, 6), size=sizes, seed=seeds)
def test_synthesize_returns_uint8_images_bool_masks_and_binary_labels(n, size, seed):
    data = synthesize(n, size=size, seed=seed)
    assert data.images.dtype == torch.uint8 and data.images.shape == (n, 1, size, size)
    assert data.masks.dtype == torch.bool and data.masks.shape == (n, size, size)
    assert data.labels.dtype == torch.long and set(data.labels.tolist()) <= {0, 1}
    assert data.classes == CLASSES == ("NORMAL", "PNEUMONIA")
    assert len(set(data.patients)) == n


@given(n=st.integers(1, 6), size=sizes, seed=seeds)
def test_same_seed_gives_the_same_pixels_labels_and_masks(n, size, seed):
    a, b = synthesize(n, size=size, seed=seed), synthesize(n, size=size, seed=seed)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.masks, b.masks)


@given(seed=seeds)
def test_another_seed_gives_other_pixels(seed):
    assert not torch.equal(synthesize(2, size=24, seed=seed).images, synthesize(2, size=24, seed=seed + 1).images)


@given(n=st.integers(1, 5), more=st.integers(1, 5), seed=seeds)
def test_image_i_does_not_depend_on_how_many_images_are_asked_for(n, more, seed):
    few, many = synthesize(n, size=24, seed=seed), synthesize(n + more, size=24, seed=seed)
    assert torch.equal(few.images, many.images[:n])
    assert torch.equal(few.labels, many.labels[:n])
    assert torch.equal(few.masks, many.masks[:n])


@given(size=sizes, seed=seeds)
def test_masks_are_empty_exactly_for_normal_images(size, seed):
    data = synthesize(8, size=size, seed=seed)
    has_lesion = data.masks.flatten(1).any(1)
    assert torch.equal(has_lesion, data.labels == 1)


@given(size=sizes, seed=seeds)
def test_lesion_masks_lie_inside_the_lung_fields(size, seed):
    data = synthesize(8, size=size, seed=seed)
    for i, mask in enumerate(data.masks):
        lungs = lung_fields(i, size=size, seed=seed)
        assert lungs.dtype == torch.bool and lungs.shape == (size, size)
        assert not (mask & ~lungs).any(), f"image {i}: lesion pixels outside the lungs"


@given(size=sizes, seed=seeds)
def test_lung_fields_are_two_darker_regions_inside_the_chest(size, seed):
    """The lungs the masks are checked against are the ones drawn: darker than the body around them."""
    data = synthesize(4, size=size, seed=seed, lesion_contrast=0.0)
    for i in range(4):
        lungs = lung_fields(i, size=size, seed=seed)
        left, right = lungs[:, : size // 2], lungs[:, size // 2 :]
        assert left.any() and right.any()
        image = data.images[i, 0].float()
        centre_column = image[:, size // 2 - 1 : size // 2 + 1]
        assert image[lungs].mean() < centre_column.mean()


@given(seed=seeds, low=st.floats(0.0, 0.5), extra=st.floats(0.05, 0.5))
def test_lesion_contrast_only_brightens_pneumonia_images(seed, low, extra):
    """Raising the contrast never darkens a pixel, leaves NORMAL images and every mask as they were."""
    faint = synthesize(6, size=32, seed=seed, lesion_contrast=low)
    strong = synthesize(6, size=32, seed=seed, lesion_contrast=low + extra)
    assert torch.equal(faint.labels, strong.labels) and torch.equal(faint.masks, strong.masks)
    assert (strong.images >= faint.images).all()
    normal = faint.labels == 0
    assert torch.equal(faint.images[normal], strong.images[normal])


def test_lesions_are_invisible_at_contrast_zero_and_brighter_than_the_lung_at_the_default():
    flat = synthesize(16, size=48, seed=3, lesion_contrast=0.0)
    default = synthesize(16, size=48, seed=3)
    sick = (default.labels == 1).nonzero().flatten()
    assert len(sick) > 0
    for i in sick.tolist():
        mask = default.masks[i]
        rise = default.images[i, 0].float()[mask].mean() - flat.images[i, 0].float()[mask].mean()
        assert rise > 20, f"image {i}: lesion only {rise:.1f} grey levels brighter"


def test_splits_have_n_and_a_quarter_images_from_independent_seeds():
    splits = synthetic_splits(n=16, size=24, seed=2)
    assert {k: len(v) for k, v in splits.items()} == {"train": 16, "val": 4, "test": 4}
    flat = {name: {bytes(img.numpy()) for img in data.images} for name, data in splits.items()}
    assert not (flat["train"] & flat["val"]) and not (flat["train"] & flat["test"]) and not (flat["val"] & flat["test"])


def test_synth_writes_the_kaggle_layout_with_masks_that_load_back_unchanged(tmp_path):
    # Seed 0: both classes in each 2-image split (a split missing a class folder does not load back yet).
    xraykit.synth(tmp_path / "xr", n=8, size=32, seed=0)
    for split in ("train", "val", "test"):
        assert {p.name for p in (tmp_path / "xr" / split).iterdir()} <= set(CLASSES)
    expected = synthetic_splits(n=8, size=32, seed=0)
    loaded = xraykit.load_data(tmp_path / "xr", image_size=32)
    for split in ("train", "val", "test"):
        # Files are read back in name order, which is the generator's index order.
        order = sorted(range(len(expected[split])), key=lambda i: (expected[split].labels[i].item(), i))
        want = expected[split].subset(order)
        got = loaded[split]
        assert torch.equal(got.labels, want.labels), split
        assert torch.equal(got.images, want.images), split
        assert got.masks is not None and torch.equal(got.masks, want.masks), split


def test_synth_claims_its_folder_so_a_second_synth_into_it_at_once_is_refused(tmp_path):
    """Two `synth` into one new folder at the same moment both found it empty and wrote 800 mixed images;
    now the folder is claimed by a marker created exclusively, as `train` claims a run folder."""
    from xraykit.data.synthetic import SYNTH_MARKER
    from xraykit.errors import XrayError

    out = tmp_path / "xr"
    out.mkdir()
    (out / SYNTH_MARKER).touch()  # another synth holds it
    with pytest.raises(XrayError, match="another `xraykit synth` is writing here"):
        xraykit.synth(out, n=8, size=32, seed=0)
    assert [p.name for p in out.iterdir()] == [SYNTH_MARKER]
    xraykit.synth(tmp_path / "done", n=8, size=32, seed=0)
    assert not (tmp_path / "done" / SYNTH_MARKER).exists()  # released when it is done
