"""``sample`` and ``sample:source``: real chest X-rays shipped inside the package, so tutorials can train,
fine-tune and evaluate on real images offline (Kermany et al.'s training images, CC BY 4.0): a lesson
set and a source set to pretrain on, no patient and no image in both."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xraykit
from xraykit.data.sample import CREDIT, load_sample


@pytest.fixture(scope="module")
def sample():
    return load_sample(64)


def test_the_sample_has_three_splits_each_with_both_classes(sample):
    assert set(sample) == {"train", "val", "test"}
    for split in sample.values():
        assert split.classes == ("NORMAL", "PNEUMONIA")
        assert set(split.labels.tolist()) == {0, 1}
    assert len(sample["train"]) > len(sample["val"]) > 0


@pytest.fixture(scope="module")
def source():
    return load_sample(64, "source")


def test_no_patient_and_no_image_is_on_two_sides_of_the_sample_or_in_both_parts(sample, source):
    sides = [*sample.values(), *source.values()]
    patients = [set(split.patients) for split in sides]
    assert all(not (a & b) for i, a in enumerate(patients) for b in patients[i + 1 :])
    pixels = [{bytes(image.numpy()) for image in split.images} for split in sides]
    assert all(not (a & b) for i, a in enumerate(pixels) for b in pixels[i + 1 :])


def test_the_source_set_is_larger_than_the_lesson_set_and_has_no_test_split(sample, source):
    assert set(source) == {"train", "val"} and source["train"].classes == sample["train"].classes
    assert len(source["train"]) > 10 * len(sample["train"])
    assert len(xraykit.load_data("sample:source", 32)["train"]) == len(source["train"])


def test_an_unknown_part_of_the_sample_is_one_error_naming_the_parts():
    with pytest.raises(xraykit.XrayError, match="sample:source"):
        xraykit.load_data("sample:other", 32)


def test_each_image_keeps_its_original_name_and_its_folder_says_its_class(sample):
    for split in sample.values():
        for path, label in zip(split.paths, split.labels.tolist()):
            assert path.split("/")[0] == split.classes[label] and path.endswith(".jpeg")


@settings(max_examples=5, deadline=None)
@given(st.integers(16, 160))
def test_the_sample_comes_at_any_image_size(size):
    data = load_sample(size)["test"]
    assert tuple(data.images.shape[1:]) == (1, size, size) and str(data.images.dtype) == "torch.uint8"


def test_the_sample_is_a_dataset_like_any_other_and_says_whose_images_they_are():
    assert "sample" in xraykit.list_plugins("dataset")
    splits = xraykit.load_data("sample", 32)
    assert len(splits["train"]) == len(load_sample(32)["train"])
    assert "Kermany" in CREDIT and "CC BY 4.0" in CREDIT


def test_a_folder_named_sample_here_is_refused_as_ambiguous_and_dot_slash_picks_it(tmp_path, monkeypatch):
    """With ./sample present, ``sample`` could be the folder or the built-in images: neither is guessed."""
    from typer.testing import CliRunner

    from xraykit.cli import app

    from helpers import TINY, assert_one_line_error, write_folder

    write_folder(tmp_path / "sample")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "sample", "--out", str(tmp_path / "r"), *TINY])
    assert_one_line_error(result, "ambiguous", "./sample")
    result = CliRunner().invoke(app, ["train", "./sample", "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "r" / "config.json").read_text())["record"]
    assert record["train_images"] + record["val_images"] == 12  # the folder's images, not the built-in 256
