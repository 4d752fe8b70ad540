"""MedMNIST ``.npz`` files (PneumoniaMNIST): read as splits, never unpickled, bad arrays named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xraykit
from xraykit.data.medmnist import load_npz
from xraykit.errors import XrayError

SIZES = {"train": 10, "val": 4, "test": 6}


def pneumoniamnist(path, side: int = 28, sizes=SIZES, **overrides):
    """A file shaped like MedMNIST's: ``{split}_images`` uint8 N x side x side, ``{split}_labels`` N x 1."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in sizes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_a_pneumoniamnist_file_loads_every_split_with_its_labels(tmp_path):
    path = pneumoniamnist(tmp_path / "pneumoniamnist.npz")
    splits = load_npz(path, image_size=28)
    assert set(splits) == {"train", "val", "test"}
    with np.load(path) as raw:
        for split, data in splits.items():
            assert data.classes == ("NORMAL", "PNEUMONIA")
            assert data.images.shape == (SIZES[split], 1, 28, 28) and data.images.dtype == torch.uint8
            assert torch.equal(data.images[:, 0], torch.from_numpy(raw[f"{split}_images"]))
            assert data.labels.tolist() == raw[f"{split}_labels"].reshape(-1).tolist()
            assert len(set(data.patients)) == len(data)


def test_images_are_resized_to_the_image_size(tmp_path):
    splits = load_npz(pneumoniamnist(tmp_path / "pneumoniamnist_64.npz", side=64), image_size=32)
    assert splits["train"].images.shape == (10, 1, 32, 32)


def test_rgb_images_become_one_channel(tmp_path):
    rgb = np.stack([np.full((10, 28, 28), v, dtype=np.uint8) for v in (30, 60, 90)], axis=-1)
    splits = load_npz(pneumoniamnist(tmp_path / "x.npz", train_images=rgb), image_size=28)
    assert splits["train"].images.shape == (10, 1, 28, 28)
    assert (splits["train"].images == 60).all()


def test_load_data_reads_an_npz_path(tmp_path):
    splits = xraykit.load_data(str(pneumoniamnist(tmp_path / "pneumoniamnist_224.npz")), image_size=28)
    assert len(splits["test"]) == SIZES["test"]


def test_a_file_with_only_a_test_split_loads_it(tmp_path):
    splits = load_npz(pneumoniamnist(tmp_path / "t.npz", sizes={"test": 3}), image_size=28)
    assert list(splits) == ["test"]


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    # allow_pickle stays off: an .npz is untrusted input, and unpickling can run code.
    labels = np.empty(10, dtype=object)
    labels[:] = [[0]] * 10
    path = pneumoniamnist(tmp_path / "evil.npz", train_labels=labels)
    with pytest.raises(XrayError, match=r"evil\.npz"):
        load_npz(path, image_size=28)


@pytest.mark.parametrize(
    "overrides, problem",
    [
        (dict(train_images=np.zeros((10, 28, 28), dtype=np.float32)), "train_images"),
        (dict(train_images=np.zeros((10, 28), dtype=np.uint8)), "train_images"),
        (dict(train_labels=None), "train_labels"),
        (dict(train_labels=np.zeros((7, 1), dtype=np.uint8)), "train_labels"),
        (dict(train_labels=np.full((10, 1), 3, dtype=np.uint8)), "train_labels"),
        (dict(train_labels=np.zeros((10, 14), dtype=np.uint8)), "train_labels"),
    ],
)
def test_a_malformed_array_is_an_error_naming_the_file_and_the_array(tmp_path, overrides, problem):
    path = pneumoniamnist(tmp_path / "bad.npz", **overrides)
    with pytest.raises(XrayError, match=rf"bad\.npz.*{problem}"):
        load_npz(path, image_size=28)


def test_a_file_that_is_not_an_npz_is_an_error_naming_it(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("not a zip file")
    with pytest.raises(XrayError, match=r"notes\.npz"):
        load_npz(path, image_size=28)


def test_an_npz_without_image_arrays_is_an_error(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(XrayError, match="MedMNIST"):
        load_npz(tmp_path / "other.npz", image_size=28)


def test_a_missing_npz_is_an_error_naming_it(tmp_path):
    with pytest.raises(XrayError, match=r"gone\.npz"):
        load_npz(tmp_path / "gone.npz", image_size=28)
