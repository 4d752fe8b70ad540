"""``sample``: real chest X-rays shipped inside the package, so tutorials and demos can show real
images offline (a few hundred of Kermany et al.'s training images, CC BY 4.0, patients kept together)."""

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


def test_no_patient_is_on_two_sides_of_the_sample(sample):
    sides = [set(split.patients) for split in sample.values()]
    assert all(not (a & b) for i, a in enumerate(sides) for b in sides[i + 1 :])


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
