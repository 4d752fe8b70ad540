"""The decoded-image cache: a folder decoded once is read back as bytes, never as JPEG again."""

from __future__ import annotations

import os
import pickle
import time

import numpy as np
import pytest
import torch
from PIL import Image

from xraykit.data import cache
from xraykit.data.folders import load_folder
from xraykit.errors import ImageError

AN_HOUR_AGO = time.time() - 3600


def write_image(path, seed: int, size: int = 40, mtime: float = AN_HOUR_AGO) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A Kaggle-layout folder of 6 PNGs written an hour ago, and an empty cache folder."""
    monkeypatch.setenv("XRAYKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for i in range(3):
        write_image(root / "train" / "NORMAL" / f"n{i}.png", seed=i)
        write_image(root / "train" / "PNEUMONIA" / f"p{i}.png", seed=10 + i)
    return root


@pytest.fixture
def decoder_calls(monkeypatch):
    """Count the image files opened by PIL, whoever opens them."""
    calls = []
    real = Image.open

    def counting(fp, *args, **kwargs):
        calls.append(str(fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return calls


def refuse_to_decode(monkeypatch):
    def fail(fp, *args, **kwargs):
        raise AssertionError(f"opened {fp} again")

    monkeypatch.setattr(Image, "open", fail)


def test_a_second_load_reads_the_cache_and_never_decodes(folder, monkeypatch):
    first = load_folder(folder, image_size=24)["train"]
    refuse_to_decode(monkeypatch)
    second = load_folder(folder, image_size=24)["train"]
    assert torch.equal(first.images, second.images)
    assert first.paths == second.paths


def test_cached_pixels_equal_a_fresh_decode(folder):
    path = folder / "train" / "NORMAL" / "n0.png"
    cache.load_image_cached(path, 24)
    assert torch.equal(cache.load_image_cached(path, 24), cache.load_image(path, 24))


def test_a_modified_file_is_decoded_again(folder, decoder_calls):
    path = folder / "train" / "NORMAL" / "n1.png"
    before = cache.load_image_cached(path, 24)
    one_decode = len(decoder_calls)
    write_image(path, seed=99, mtime=AN_HOUR_AGO + 60)
    after = cache.load_image_cached(path, 24)
    assert len(decoder_calls) == 2 * one_decode > 0
    assert torch.equal(after, cache.load_image(path, 24))
    assert not torch.equal(before, after)


def test_another_size_is_another_entry(folder, decoder_calls):
    path = folder / "train" / "NORMAL" / "n0.png"
    small = cache.load_image_cached(path, 24)
    one_decode = len(decoder_calls)
    large = cache.load_image_cached(path, 32)
    assert small.shape == (1, 24, 24) and large.shape == (1, 32, 32)
    assert len(decoder_calls) == 2 * one_decode > 0
    cache.load_image_cached(path, 24), cache.load_image_cached(path, 32)
    assert len(decoder_calls) == 2 * one_decode


@pytest.mark.parametrize(
    "garbage",
    [
        b"",  # truncated to nothing
        b"\x93NUMPY\x01\x00v\x00{'descr'",  # a header cut short
        pickle.dumps({"not": "pixels"}),  # a pickle: must never be unpickled
    ],
    ids=["empty", "truncated", "pickle"],
)
def test_a_corrupt_entry_is_ignored_and_rebuilt(folder, decoder_calls, garbage):
    path = folder / "train" / "NORMAL" / "n0.png"
    expected = cache.load_image_cached(path, 24)
    one_decode = len(decoder_calls)
    entry, _ = cache.entry_path(cache.cache_dir(), path, 24)
    entry.write_bytes(garbage)
    assert torch.equal(cache.load_image_cached(path, 24), expected)
    assert len(decoder_calls) == 2 * one_decode > 0
    assert np.array_equal(np.load(entry, allow_pickle=False), expected.numpy())


def test_an_entry_of_the_wrong_shape_is_not_trusted(folder, decoder_calls):
    path = folder / "train" / "NORMAL" / "n0.png"
    expected = cache.load_image_cached(path, 24)
    entry, _ = cache.entry_path(cache.cache_dir(), path, 24)
    np.save(entry, np.zeros((1, 8, 8), dtype=np.uint8))
    assert torch.equal(cache.load_image_cached(path, 24), expected)


def test_a_file_modified_just_now_is_not_cached_yet(tmp_path, monkeypatch, decoder_calls):
    """Within the file system's timestamp granularity a second edit could keep the same mtime."""
    monkeypatch.setenv("XRAYKIT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "fresh.png"
    write_image(path, seed=1, mtime=time.time())
    cache.load_image_cached(path, 24)
    one_decode = len(decoder_calls)
    cache.load_image_cached(path, 24)
    assert len(decoder_calls) == 2 * one_decode > 0
    assert not (tmp_path / "cache").exists()


def test_the_cache_can_be_turned_off(folder, monkeypatch, decoder_calls, tmp_path):
    monkeypatch.setenv("XRAYKIT_CACHE_DIR", "off")
    load_folder(folder, image_size=24)
    first_load = len(decoder_calls)
    load_folder(folder, image_size=24)
    assert len(decoder_calls) == 2 * first_load >= 12
    assert not (tmp_path / "cache").exists()


def test_a_bad_image_still_raises_and_is_not_cached(folder):
    bad = folder / "train" / "NORMAL" / "broken.png"
    bad.write_bytes(b"not an image")
    os.utime(bad, (AN_HOUR_AGO, AN_HOUR_AGO))
    with pytest.raises(ImageError, match="broken.png"):
        cache.load_image_cached(bad, 24)
    entry, _ = cache.entry_path(cache.cache_dir(), bad, 24)
    assert not entry.exists()
