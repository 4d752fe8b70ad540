"""The strong recipe: augmentation that covers acquisition shifts, and images normalised one by one."""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xraykit
from xraykit.augment import augment_strong
from xraykit.config import RECIPES, TrainConfig
from xraykit.data.synthetic import synthetic_splits
from xraykit.inference import apply_normalization, to_input
from xraykit.plugins import backbone


@pytest.fixture(scope="module")
def images01():
    return synthetic_splits(n=64, size=32, seed=2)["train"].images[:8].float() / 255


@given(st.integers(0, 10_000))
def test_strong_augmentation_keeps_shape_and_range_and_repeats_with_its_seed(images01, seed):
    a = augment_strong(images01.clone(), torch.Generator().manual_seed(seed))
    b = augment_strong(images01.clone(), torch.Generator().manual_seed(seed))
    assert a.shape == images01.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)


def test_strong_augmentation_changes_exposure_more_than_light_augmentation_does(images01):
    g = torch.Generator().manual_seed(0)
    spread = torch.stack([augment_strong(images01.clone(), g).mean(dim=(1, 2, 3)) for _ in range(20)]).std(0)
    assert float(spread.mean()) > 0.02  # the same image comes back darker or brighter from one epoch to the next


@given(st.floats(0.3, 3.0), st.floats(-2.0, 2.0))
def test_a_per_image_normalised_model_cannot_see_brightness_or_contrast(scale, offset):
    torch.manual_seed(0)
    model = apply_normalization(backbone("resnet18").build(2), "image").eval()
    x = to_input(synthetic_splits(n=32, size=32, seed=1)["test"].images[:4], backbone("resnet18"))
    with torch.no_grad():
        assert torch.allclose(model(x * scale + offset), model(x), atol=1e-4)


def test_a_dataset_normalised_model_does_see_brightness():
    torch.manual_seed(0)
    model = apply_normalization(backbone("resnet18").build(2), "dataset").eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x + 1.0), model(x), atol=1e-4)


def test_the_strong_recipe_is_recorded_and_its_model_normalises_each_image_when_loaded_again(tmp_path):
    tiny = dict(epochs=1, batch_size=16, image_size=32, quiet=True)
    run = xraykit.train("synthetic:n=64,seed=0", "scratch", recipe="strong", out=tmp_path / "run", **tiny)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {k: saved[k] for k in RECIPES["strong"]} == RECIPES["strong"]
    model = xraykit.Run(tmp_path / "run").load_model()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x * 2 + 0.5), model(x), atol=1e-4)
    assert run.config.augment == "strong"


def test_a_config_from_before_augment_had_words_still_loads():
    assert TrainConfig.from_dict({"augment": True}).augment == "light"
    assert TrainConfig.from_dict({"augment": False}).augment == "none"


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("augment", "heavy", "none, light, strong"),
        ("normalize", "per-image", "dataset, image"),
        ("label_smoothing", 0.7, "0 to 0.5"),
        ("label_smoothing", "a bit", "0 to 0.5"),
    ],
)
def test_a_bad_recipe_option_is_refused_by_name_before_any_image_loads(option, value, words):
    with pytest.raises(xraykit.XrayError, match=option) as err:
        xraykit.train("no/such/folder", **{option: value})
    assert words in str(err.value)
