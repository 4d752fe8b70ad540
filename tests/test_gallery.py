"""The gallery of explanations, and the demo's CAM chosen by where its maps point.

A gallery puts the same few test images (each class, right and wrong) under several explainer
variants, each column headed by its pointing game on the known lesions: the score that
``explain-score`` gives the same variant. The demo draws its CAM at the setting whose maps point
into the *validation* lesions most often, so the figure on its first screen is one worth reading.
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import xraykit
from xraykit import explaining, figures, scoring
from xraykit.cli import app
from xraykit.errors import XrayError
from xraykit.inference import predict_proba
from xraykit.variants import parse_variant, variant_label

from helpers import assert_one_line_error

# ----------------------------------------------------------------------------- variants as text


def test_a_variant_is_a_method_and_its_options_in_one_word():
    assert parse_variant("cam") == ("cam", {})
    assert parse_variant("cam:align=receptive-field") == ("cam", {"align": "receptive-field"})
    assert parse_variant("cam:layer=layer3,align=receptive-field") == (
        "cam",
        {"layer": "layer3", "align": "receptive-field"},
    )
    assert parse_variant("occlusion:patch=8") == ("occlusion", {"patch": 8})
    assert parse_variant("cam:relu=false") == ("cam", {"relu": False})


_keys = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True)
_values = st.one_of(
    st.integers(-5, 500), st.booleans(), st.sampled_from(["layer3", "receptive-field", "nearest", "layer4.1"])
)


@given(
    method=st.sampled_from(["cam", "guided-gradcam", "occlusion", "integrated-gradients", "my-plugin"]),
    options=st.dictionaries(_keys, _values, max_size=4),
)
def test_a_variants_label_reads_back_as_the_same_method_and_options(method, options):
    assert parse_variant(variant_label(method, options)) == (method, options)


@pytest.mark.parametrize("text", ["", ":layer=layer3", "cam:layer", "cam:layer=layer3,align", "cam=1"])
def test_a_malformed_variant_is_refused_naming_it(text):
    with pytest.raises(XrayError, match="variant"):
        parse_variant(text)


# ----------------------------------------------------------------------------- the gallery

DATA = "synthetic:n=48"
VARIANTS = ["cam", "cam:align=receptive-field", "occlusion:patch=8"]


@pytest.fixture(scope="module")
def gallery(tiny_run, module_tmp):
    out = module_tmp / "gallery"
    return out, xraykit.explain_gallery(tiny_run, DATA, variants=VARIANTS, limit=3, out=out)


def test_the_gallery_writes_its_figure_and_a_json_of_what_it_shows(gallery):
    out, summary = gallery
    assert (out / "explain_gallery.png").stat().st_size > 0
    assert json.loads((out / "explain_gallery.json").read_text()) == summary
    assert [v["variant"] for v in summary["variants"]] == VARIANTS


def test_each_variants_pointing_game_is_the_one_explain_score_gives_it(gallery, tiny_run, tmp_path):
    _, summary = gallery
    for shown in summary["variants"]:
        method, options = parse_variant(shown["variant"])
        scored = xraykit.explain_score(
            tiny_run, DATA, methods=[method], options={method: options}, limit=3, out=tmp_path
        )["methods"][method]
        assert shown["pointing_game"] == pytest.approx(scored["pointing_game"])
        assert shown["inside_share"] == pytest.approx(scored["inside_share"])
    assert summary["images_scored"] == 3


def test_the_gallery_shows_each_class_right_and_wrong_where_the_test_split_has_one(gallery, tiny_run):
    _, summary = gallery
    test = xraykit.load_data(DATA, tiny_run.config.image_size)["test"]
    predicted = predict_proba(tiny_run.load_model(), test.images, tiny_run.backbone).argmax(1)
    present = {(test.classes[t], bool(t == p)) for t, p in zip(test.labels.tolist(), predicted.tolist())}
    shown = [(p["true"], p["correct"]) for p in summary["images"]]
    assert set(shown) == present
    assert len(shown) == len(present)  # one of each kind by default
    for p in summary["images"]:
        assert p["correct"] == (p["true"] == p["predicted"])
        assert test.classes[int(test.labels[p["index"]])] == p["true"]
        assert test.classes[int(predicted[p["index"]])] == p["predicted"]


def test_the_gallery_of_images_without_lesion_masks_draws_the_maps_and_scores_nothing(tiny_run, tiny_splits, tmp_path):
    test = tiny_splits["test"]
    no_masks = {"test": xraykit.XrayData(test.images, test.labels, test.classes)}
    summary = xraykit.explain_gallery(tiny_run, no_masks, variants=["cam"], per_kind=2, out=tmp_path)
    assert (tmp_path / "explain_gallery.png").is_file()
    assert summary["variants"][0]["pointing_game"] is None and summary["images_scored"] == 0
    assert 1 <= len(summary["images"]) <= 8


def test_the_gallery_refuses_an_option_its_explainer_does_not_take(tiny_run, tmp_path):
    with pytest.raises(XrayError, match="patch"):
        xraykit.explain_gallery(tiny_run, DATA, variants=["cam:patch=3"], out=tmp_path)
    assert not (tmp_path / "explain_gallery.png").exists()


@given(rows=st.integers(1, 4), variants=st.integers(1, 3))
def test_the_gallery_figure_has_the_image_and_one_map_per_variant_in_each_row(rows, variants):
    images = torch.randint(0, 255, (rows, 1, 16, 16), dtype=torch.uint8)
    maps = torch.rand(variants, rows, 16, 16)
    headers = [f"v{j}\npointing game 0.5{j}" for j in range(variants)]
    fig = figures.attribution_gallery(images, maps, [f"image {i}" for i in range(rows)], headers, path=None)
    *axes, bar = fig.get_axes()
    assert len(axes) == rows * (variants + 1)
    top = [ax.get_title() for ax in axes[: variants + 1]]
    assert top[1:] == headers
    assert "maximum" in bar.get_xlabel()  # a colour bar says what the colours mean


def test_the_cli_draws_a_gallery_and_prints_each_variants_score(tiny_run, tmp_path):
    args = ["explain-gallery", str(tiny_run.path), DATA, "--limit", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args + ["--variant", "cam", "--variant", "cam:layer=layer3"])
    assert result.exit_code == 0, result.output
    assert "cam:layer=layer3" in result.output and "pointing game" in result.output
    assert (tmp_path / "explain_gallery.png").is_file()


@pytest.mark.parametrize(
    "variant, fragment", [("cam:layer", "cam:layer"), ("nope", "nope"), ("cam:layer=layer9", "layer9")]
)
def test_the_cli_refuses_a_bad_variant_in_one_line(tiny_run, tmp_path, variant, fragment):
    result = CliRunner().invoke(
        app, ["explain-gallery", str(tiny_run.path), DATA, "--variant", variant, "--out", str(tmp_path)]
    )
    assert_one_line_error(result, fragment)


# ----------------------------------------------------------------------------- the demo's CAM setting


def test_the_cam_setting_chosen_is_the_first_of_those_whose_maps_point_into_the_lesions_most_often(tiny_run):
    val = xraykit.load_data(DATA, tiny_run.config.image_size)["val"]
    sick = (val.labels == 1) & val.masks.flatten(1).any(1)
    images, masks = val.images[sick], val.masks[sick]
    model, bb = tiny_run.load_model(), tiny_run.backbone
    choice = explaining.choose_cam_setting(model, bb, images, masks, target=1)

    targets = torch.ones(len(images), dtype=torch.long)
    scores = [
        float(scoring.pointing_game(xraykit.explain_maps(model, bb, images, targets, "cam", **s), masks).mean())
        for s in explaining.CAM_SETTINGS
    ]
    best = max(scores)
    assert choice["options"] == explaining.CAM_SETTINGS[scores.index(best)]
    assert choice["pointing_game"] == pytest.approx(best)
    assert choice["variant"] == variant_label("cam", choice["options"])
    assert choice["images"] == len(images)


def test_a_backbone_without_resnets_earlier_layers_chooses_among_the_settings_of_its_own_cam_layer(tiny_splits):
    class Small(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=4, padding=1), torch.nn.ReLU())
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.features(x).mean((2, 3)))

    torch.manual_seed(0)
    bb = xraykit.Backbone(name="small", build=lambda n: Small(), head="fc", stem="features.0", cam_layer="features")
    val = tiny_splits["val"]
    sick = (val.labels == 1) & val.masks.flatten(1).any(1)
    choice = explaining.choose_cam_setting(Small().eval(), bb, val.images[sick], val.masks[sick], target=1)
    assert "layer" not in choice["options"]
    assert set(choice["scores"]) == {"cam", "cam:align=receptive-field"}
