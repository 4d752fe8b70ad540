"""The shift report: how far new X-rays are from a run's training images, without their labels."""

import json

import matplotlib.cbook
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xraykit
from xraykit.data import acquisition_shifts as shifts
from xraykit.data.images import load_image
from xraykit.data.synthetic import synthetic_splits
from xraykit.inference import head_inputs
from xraykit.shift_measures import build_reference, intensity_stats, stat_distance
from xraykit.shift_report import shift


@pytest.fixture(scope="module")
def xrays():
    return synthetic_splits(n=96, size=32, seed=3)["test"].images


def _distance(images, shifted, stat):
    return stat_distance(intensity_stats(images)[stat], intensity_stats(shifted)[stat])


# Each shift family with the statistic it moves, its size from 0 (no change) upwards.
SHIFT_LAWS = {
    "darker (gamma above 1)": (lambda x, s: shifts.gamma(x, 1 + s), "brightness"),
    "brighter (gamma below 1)": (lambda x, s: shifts.gamma(x, 1 / (1 + s)), "brightness"),
    "blurrier": (lambda x, s: shifts.blur(x, 2 * s), "sharpness"),
    "less contrasted": (lambda x, s: shifts.contrast(x, 1 - s / 2), "contrast"),
}


@pytest.mark.parametrize("family", SHIFT_LAWS)
@given(size=st.floats(0.0, 1.5), extra=st.floats(0.0, 1.5))
def test_a_larger_shift_never_scores_as_a_smaller_one(xrays, family, size, extra):
    apply, stat = SHIFT_LAWS[family]
    smaller, larger = apply(xrays, size), apply(xrays, size + extra)
    assert _distance(xrays, larger, stat) >= _distance(xrays, smaller, stat) - 1e-9


def test_the_same_images_are_no_shift_at_all(xrays):
    for name, values in intensity_stats(xrays).items():
        assert stat_distance(values, values) == 0.0, name


def _features(model, backbone, images):
    return head_inputs(model, backbone, images, 64, "cpu")


def test_a_photo_is_far_from_the_training_xrays_and_test_xrays_are_not(tiny_run, tiny_splits):
    model = tiny_run.load_model()
    ref = build_reference(_features, tiny_run.backbone, model, tiny_splits["train"], tiny_splits["val"])
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:  # a photograph of a person, not an X-ray
        photo = load_image(f.name, 32).unsqueeze(0)
    assert bool(ref.far(ref.distances(_features(model, tiny_run.backbone, photo)))[0])
    test_distances = ref.distances(_features(model, tiny_run.backbone, tiny_splits["test"].images))
    assert float(ref.far(test_distances).float().mean()) <= 0.1
    assert float(ref.percentiles(ref.distances(_features(model, tiny_run.backbone, photo)))[0]) == 1.0


@pytest.fixture(scope="module")
def named_run(module_tmp):
    """A run trained on data named by a string, so the report can load its training images again."""
    out = module_tmp / "shift" / "run"
    return xraykit.train(
        "synthetic:n=96,seed=0", "scratch", epochs=1, batch_size=16, image_size=32, out=out, quiet=True
    )


def test_the_report_says_in_words_that_darker_images_are_darker(named_run, tmp_path):
    splits = synthetic_splits(n=96, size=32, seed=5)
    test = splits["test"]
    darker = xraykit.XrayData(shifts.gamma(test.images, 2.5), test.labels, test.classes, paths=test.paths)
    report = shift(named_run, {"test": darker}, out=tmp_path)
    assert any("darker" in v for v in report["verdicts"]), report["verdicts"]
    assert report["intensity_distance"]["brightness"] > 1.0
    saved = json.loads((tmp_path / "shift.json").read_text())
    assert saved["verdicts"] == report["verdicts"]
    assert (tmp_path / "shift.png").stat().st_size > 0 and (tmp_path / "shift_unusual.png").stat().st_size > 0
    assert (named_run.path / "reference-last.pt").is_file()  # made once, kept for the next report


def test_larger_shifts_rank_above_smaller_ones_in_the_report(named_run, tmp_path):
    test = synthetic_splits(n=96, size=32, seed=5)["test"]
    scores = []
    for g in (1.0, 1.6, 2.6):
        data = {"test": xraykit.XrayData(shifts.gamma(test.images, g), test.labels, test.classes)}
        scores.append(shift(named_run, data, out=tmp_path)["intensity_distance"]["brightness"])
    assert scores[0] < scores[1] < scores[2]


def test_a_handful_of_validation_images_cannot_say_what_is_typical():
    from xraykit.shift_report import MIN_CALIBRATION_IMAGES, _feature_verdict

    assert "too few" in _feature_verdict("these NORMAL images", 0.5, 100, MIN_CALIBRATION_IMAGES - 1)
    assert "not to hold" in _feature_verdict("these NORMAL images", 0.5, 100, MIN_CALIBRATION_IMAGES)
    assert "typical" in _feature_verdict("these NORMAL images", 0.05, 100, MIN_CALIBRATION_IMAGES)


@given(st.integers(20, 400), st.integers(0, 10**6))
def test_images_drawn_like_the_validation_images_are_rarely_called_unusual(n, seed):
    """Among n images like the validation ones, each lies beyond the 95th percentile with probability 5%:
    the verdict must not call chance a shift (at most 1% of such groups may be flagged)."""
    from xraykit.shift_report import _feature_verdict

    g = torch.Generator().manual_seed(seed)
    flagged = 0
    for _ in range(200):
        unusual = int((torch.rand(n, generator=g) > 0.95).sum())
        flagged += "not to hold" in _feature_verdict("these images", unusual / n, n, 100)
    assert flagged <= 0.02 * 200


@pytest.mark.parametrize("share, n", [(0.34, 80), (0.11, 160), (0.2, 40)])
def test_an_excess_that_chance_cannot_explain_is_called_a_shift(share, n):
    from xraykit.shift_report import _feature_verdict

    assert "not to hold" in _feature_verdict("these images", share, n, 100)


def test_the_report_says_what_it_cannot_see_and_how_many_labels_would_tell(named_run, tmp_path):
    """Features that look typical do not rule out a new share of pneumonia or labels that mean something
    else: the report says so, and how many labelled images would measure the accuracy to +-5 points."""
    from xraykit.uncertainty import labels_needed

    test = synthetic_splits(n=96, size=32, seed=5)["test"]
    report = shift(named_run, {"test": test}, out=tmp_path)
    needed = report["labels_needed"]
    assert needed["half_width"] == 0.05 and needed["at_worst"] == labels_needed(0.05, 0.5)
    assert needed["images"] == labels_needed(0.05, needed["assumed_accuracy"])
    said = " ".join(report["verdicts"])
    assert "label or concept shift" in said and f"label {needed['images']}" in said
