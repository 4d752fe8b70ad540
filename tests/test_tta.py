"""Test-time augmentation: views that keep the anatomy, and evaluate scoring the mean of their probabilities."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xraykit
from xraykit.data.synthetic import synthetic_splits
from xraykit.inference import mean_of_probabilities, predict_proba
from xraykit.metrics import compute_metrics
from xraykit.tta import VIEWS, views


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 4), size=st.integers(16, 80), seed=st.integers(0, 100))
def test_every_view_keeps_the_shape_and_type_and_the_first_is_the_image_itself(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)
    out = views(images)
    assert list(out) == list(VIEWS)
    assert torch.equal(out["as it is"], images)
    for view in out.values():
        assert view.shape == images.shape and view.dtype == torch.uint8


@settings(max_examples=30, deadline=None)
@given(
    answers=st.integers(1, 5),
    n=st.integers(1, 6),
    classes=st.integers(2, 4),
    scale=st.floats(0.1, 40),
    seed=st.integers(0, 10_000),
)
def test_the_mean_of_probabilities_comes_back_as_logits_whose_softmax_is_that_mean(answers, n, classes, scale, seed):
    """TTA's views and an ensemble's members answer as one this way: the law both rely on."""
    g = torch.Generator().manual_seed(seed)
    logits = [scale * torch.randn(n, classes, generator=g) for _ in range(answers)]
    joined = mean_of_probabilities(logits)
    assert joined.shape == (n, classes) and torch.isfinite(joined).all()
    expected = torch.stack([x.softmax(1) for x in logits]).mean(0)
    assert torch.allclose(joined.softmax(1), expected, atol=1e-6)


def test_a_view_moves_the_image_the_way_its_name_says_and_never_mirrors_it():
    size = 50
    image = torch.zeros(1, 1, size, size, dtype=torch.uint8)
    image[..., :, 20] = 255  # a bright vertical line at column 20, left of the middle
    image[..., 30, :] = 255  # and a horizontal one at row 30
    out = views(image)
    column = lambda x: int(x[0, 0, 5].float().argmax())  # noqa: E731  (row 5 crosses only the vertical line)
    row = lambda x: int(x[0, 0, :, 5].float().argmax())  # noqa: E731
    step = round(0.04 * size)
    assert column(out["4% right"]) == 20 + step and column(out["4% left"]) == 20 - step
    assert row(out["4% down"]) == 30 + step and row(out["4% up"]) == 30 - step
    near_edge = torch.zeros(1, 1, size, size, dtype=torch.uint8)
    near_edge[..., :, 5] = 255
    assert column(views(near_edge)["zoomed in 6%"]) < 5  # left of the middle moves further left: no mirror


def test_evaluate_with_tta_scores_the_mean_of_the_views_probabilities(tiny_run):
    test = synthetic_splits(n=96, size=32, seed=9)["test"]
    metrics = xraykit.evaluate(tiny_run, {"test": test}, tta=True, cam=False, quiet=True)
    assert metrics["tta"] == list(VIEWS)
    model = tiny_run.load_model()
    mean = torch.stack([predict_proba(model, v, tiny_run.backbone) for v in views(test.images).values()]).mean(0)
    expected = compute_metrics(mean, test.labels, tiny_run.classes)
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"])
    assert metrics["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-6)


def test_predict_with_tta_gives_the_mean_of_the_views_probabilities(tiny_run, tmp_path):
    from PIL import Image

    from xraykit.data.images import load_image

    path = tmp_path / "x.png"
    Image.fromarray(synthetic_splits(n=8, size=32, seed=4)["test"].images[0, 0].numpy(), mode="L").save(path)
    got = xraykit.predict(tiny_run, [path], tta=True)[0]
    image = load_image(path, tiny_run.config.image_size)[None]
    model = tiny_run.load_model()
    mean = torch.stack([predict_proba(model, v, tiny_run.backbone) for v in views(image).values()]).mean(0)[0]
    assert got["probabilities"] == pytest.approx(dict(zip(tiny_run.classes, mean.tolist())), abs=1e-5)
