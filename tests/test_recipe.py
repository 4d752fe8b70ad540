"""The strong recipe: augmentation that covers acquisition shifts, and images normalised one by one."""

import json

import pytest
import torch
from hypothesis import given, settings
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
    with torch.no_grad():  # the loaded model equalises each image: no increasing change of intensity shows
        assert torch.allclose(model(x * 2 + 0.5), model(x), atol=1e-4)
        assert torch.allclose(model(torch.sigmoid(3 * x)), model(x), atol=1e-4)
    assert run.config.augment == "strong"


def test_a_config_from_before_augment_had_words_still_loads():
    assert TrainConfig.from_dict({"augment": True}).augment == "light"
    assert TrainConfig.from_dict({"augment": False}).augment == "none"


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("augment", "heavy", "none, light, strong"),
        ("normalize", "per-image", "dataset, image, equalize"),
        ("label_smoothing", 0.7, "0 to 0.5"),
        ("label_smoothing", "a bit", "0 to 0.5"),
    ],
)
def test_a_bad_recipe_option_is_refused_by_name_before_any_image_loads(option, value, words):
    with pytest.raises(xraykit.XrayError, match=option) as err:
        xraykit.train("no/such/folder", **{option: value})
    assert words in str(err.value)


# normalize="equalize": each image's histogram equalised, so only the order of its intensities counts.


@given(st.floats(0.4, 2.5), st.floats(0.3, 3.0), st.floats(-2.0, 2.0))
@settings(max_examples=25, deadline=None)
def test_an_equalising_model_cannot_see_any_increasing_change_of_intensity(gamma, scale, offset):
    """Gamma, contrast and brightness are all increasing maps of intensity: none changes a pixel's rank."""
    torch.manual_seed(0)
    resnet = backbone("resnet18")
    model = apply_normalization(resnet.build(2), "equalize").eval()
    images01 = synthetic_splits(n=32, size=32, seed=1)["test"].images[:4].float() / 255
    changed = (images01**gamma * scale + offset - resnet.mean) / resnet.std
    with torch.no_grad():
        assert torch.allclose(model(changed), model((images01 - resnet.mean) / resnet.std), atol=1e-5)


@given(st.integers(0, 10_000))
def test_equalisation_keeps_the_order_of_intensities_and_spreads_them_evenly(seed):
    from xraykit.inference import equalize_each_image

    x = torch.randint(0, 256, (3, 1, 16, 16), generator=torch.Generator().manual_seed(seed)).float()
    (y,) = equalize_each_image(torch.nn.Identity(), (x,))
    for image, out in zip(x.flatten(1), y.flatten(1)):
        order = image.argsort()
        assert bool((out[order].diff() >= 0).all())  # brighter in, brighter (or as bright) out
        assert bool((out.unsqueeze(0) == out.unsqueeze(1))[image.unsqueeze(0) == image.unsqueeze(1)].all())
    assert abs(float(y.mean())) < 0.15 and 0.8 < float(y.std()) < 1.2  # about mean 0, spread 1


def test_gradients_reach_the_pixels_through_equalisation_for_the_explainers_that_need_them():
    torch.manual_seed(0)
    model = apply_normalization(backbone("resnet18").build(2), "equalize").eval()
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    model(x)[:, 1].sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


def test_a_black_image_is_a_finite_input_to_an_equalising_model():
    model = apply_normalization(backbone("resnet18").build(2), "equalize").eval()
    with torch.no_grad():
        assert bool(torch.isfinite(model(torch.zeros(1, 1, 32, 32))).all())
