"""The localisation score: pointing game and inside-mask share, on hand-made maps, then end to end."""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import xraykit
from xraykit import scoring
from xraykit.cli import app
from xraykit.errors import XrayError


def _box_mask(size: int, top: int, left: int, height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(1, size, size, dtype=torch.bool)
    mask[0, top : top + height, left : left + width] = True
    return mask


masks = st.builds(
    lambda size, top, left, h, w: _box_mask(size, top % size, left % size, h, w),
    st.integers(8, 32),
    st.integers(0, 31),
    st.integers(0, 31),
    st.integers(1, 12),
    st.integers(1, 12),
)


# ----------------------------------------------------------------------------- pointing game


def test_a_map_whose_peak_lies_inside_the_mask_is_a_hit():
    mask = _box_mask(16, 4, 4, 3, 3)
    m = torch.zeros(1, 16, 16)
    m[0, 5, 5] = 1.0
    assert scoring.pointing_game(m, mask).tolist() == [1.0]


def test_a_map_whose_peak_lies_outside_the_mask_is_a_miss_however_much_else_is_inside():
    mask = _box_mask(16, 4, 4, 3, 3)
    m = torch.zeros(1, 16, 16)
    m[0, 4:7, 4:7] = 0.9
    m[0, 12, 12] = 1.0
    assert scoring.pointing_game(m, mask).tolist() == [0.0]


@given(masks)
def test_tied_peaks_score_the_share_of_them_inside_the_mask_so_a_flat_map_scores_chance(mask):
    flat = torch.ones(mask.shape, dtype=torch.float32)
    assert scoring.pointing_game(flat, mask).item() == pytest.approx(scoring.area_fraction(mask).item())


def test_pointing_game_scores_each_image_of_a_batch():
    mask = torch.cat([_box_mask(8, 0, 0, 2, 2), _box_mask(8, 6, 6, 2, 2)])
    m = torch.zeros(2, 8, 8)
    m[:, 0, 0] = 1.0  # the first image's peak is in its lesion, the second's is not
    assert scoring.pointing_game(m, mask).tolist() == [1.0, 0.0]


# ----------------------------------------------------------------------------- inside-mask share


@given(masks, st.floats(0.01, 100.0))
def test_a_uniform_positive_map_puts_exactly_the_mask_area_fraction_inside(mask, level):
    uniform = torch.full(mask.shape, level)
    assert scoring.inside_share(uniform, mask).item() == pytest.approx(scoring.area_fraction(mask).item(), rel=1e-5)


def test_a_map_positive_only_inside_the_mask_has_share_one():
    mask = _box_mask(16, 2, 3, 5, 4)
    assert scoring.inside_share(mask.float() * 3.0, mask).tolist() == [pytest.approx(1.0)]


def test_negative_attribution_does_not_count_towards_the_share():
    mask = _box_mask(8, 0, 0, 4, 8)  # the top half
    m = torch.zeros(1, 8, 8)
    m[0, :4] = 1.0
    m[0, 4:] = -5.0  # strong negative evidence outside changes nothing
    assert scoring.inside_share(m, mask).tolist() == [pytest.approx(1.0)]


def test_a_map_with_no_positive_attribution_puts_nothing_inside():
    mask = _box_mask(8, 0, 0, 4, 4)
    assert scoring.inside_share(-torch.ones(1, 8, 8), mask).tolist() == [0.0]


@given(masks, st.integers(0, 2**16), st.floats(0.1, 1000.0))
def test_both_scores_ignore_a_positive_rescaling_of_the_map(mask, seed, scale):
    m = torch.randn(mask.shape, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(scoring.pointing_game(m, mask), scoring.pointing_game(m * scale, mask))
    assert torch.allclose(scoring.inside_share(m, mask), scoring.inside_share(m * scale, mask), atol=1e-6)


def test_maps_and_masks_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        scoring.pointing_game(torch.zeros(1, 8, 8), torch.zeros(1, 16, 16, dtype=torch.bool))


# ----------------------------------------------------------------------------- the ideal map at a grid


@given(masks)
def test_at_the_images_own_resolution_the_ideal_map_is_the_mask_and_scores_one(mask):
    size = mask.shape[-1]
    ideal = scoring.ideal_map(mask, (size, size))
    assert torch.equal(ideal > 0, mask)
    assert scoring.pointing_game(ideal, mask).item() == 1.0
    assert scoring.inside_share(ideal, mask).item() == pytest.approx(1.0)


@given(st.sampled_from([2, 4, 8]), st.sampled_from([4, 8, 16]), st.integers(0, 63), st.integers(0, 63))
def test_a_lesion_filling_exactly_one_cell_is_found_by_the_ideal_map(cells, stride, row, col):
    row, col = row % cells, col % cells
    mask = _box_mask(cells * stride, row * stride, col * stride, stride, stride)
    ideal = scoring.ideal_map(mask, (cells, cells))
    assert scoring.pointing_game(ideal, mask).item() == 1.0


@given(masks, st.sampled_from(["tiles", "receptive-field"]))
def test_the_ideal_map_has_the_masks_shape_and_values_between_zero_and_one(mask, align):
    size = mask.shape[-1]
    ideal = scoring.ideal_map(mask, (max(size // 8, 1),) * 2, align=align)
    assert ideal.shape == mask.shape
    assert ideal.min() >= 0 and ideal.max() <= 1 + 1e-6


@given(st.integers(0, 2**16))
def test_a_two_by_two_grid_upsampled_to_64_px_peaks_only_in_a_corner_square(seed):
    # ResNet-18's layer4 at 64 px: whatever its four cells hold, bilinear upsampling puts
    # the maximum at a cell centre (pixel 15.5 or 47.5) or on the flat margin beyond it,
    # never in the middle of the image where the lungs are. So no 2 x 2 map, not even the
    # ideal one, can point into most lesions there.
    from xraykit.attribution import upsample_to

    cells = torch.rand(1, 1, 2, 2, generator=torch.Generator().manual_seed(seed))
    m = upsample_to(cells, (64, 64))[0, 0]
    peaks = (m == m.max()).nonzero()
    assert ((peaks <= 16) | (peaks >= 47)).all()


# ----------------------------------------------------------------------------- explain_score, end to end


def _check_summary(summary: dict, methods: list[str]) -> None:
    assert list(summary["methods"]) == methods
    assert summary["images"] > 0
    assert 0 < summary["chance"]["mask_area_fraction"] < 1
    for scores in summary["methods"].values():
        if scores.get("ideal") is not None:
            assert 0 <= scores["ideal"]["pointing_game"] <= 1 and 0 <= scores["ideal"]["inside_share"] <= 1
        assert 0 <= scores["pointing_game"] <= 1
        assert 0 <= scores["inside_share"] <= 1
        assert scores["seconds_per_image"] >= 0


def test_explain_score_scores_each_method_on_lesioned_test_images_and_writes_json(tiny_run, tmp_path):
    summary = xraykit.explain_score(tiny_run, "synthetic:n=40", methods=["cam", "occlusion"], limit=3, out=tmp_path)
    _check_summary(summary, ["cam", "occlusion"])
    assert summary["images"] == 3
    assert summary["target"] == "PNEUMONIA"
    assert json.loads((tmp_path / "explain_score.json").read_text()) == summary


def test_explain_score_uses_every_registered_explainer_that_works_for_the_backbone_by_default(tiny_run, tmp_path):
    summary = xraykit.explain_score(tiny_run, "synthetic:n=16", limit=1, out=tmp_path)
    assert set(summary["methods"]) == set(xraykit.list_plugins("explainer"))


@pytest.mark.parametrize("layer, stride", [(None, 32), ("layer3", 16), ("layer2", 8)])
def test_explain_score_puts_beside_cam_the_ideal_map_at_the_grid_of_its_layer(tiny_run, tmp_path, layer, stride):
    options = {"cam": {"layer": layer}} if layer else None
    summary = xraykit.explain_score(
        tiny_run, "synthetic:n=16", methods=["cam", "occlusion"], limit=2, out=tmp_path, options=options
    )
    size = tiny_run.config.image_size
    assert summary["methods"]["cam"]["ideal"]["grid"] == [size // stride, size // stride]
    assert summary["methods"]["occlusion"]["ideal"] is None  # a pixel-level map has no grid to be limited by


def test_explain_score_passes_options_to_one_method(tiny_run, tmp_path):
    summary = xraykit.explain_score(
        tiny_run, "synthetic:n=16", methods=["occlusion"], limit=1, out=tmp_path, options={"occlusion": {"patch": 16}}
    )
    assert summary["methods"]["occlusion"]["options"] == {"patch": 16}


def test_explain_score_refuses_data_without_lesion_masks(tiny_run, tiny_splits, tmp_path):
    test = tiny_splits["test"]
    no_masks = {"test": xraykit.XrayData(test.images, test.labels, test.classes)}
    with pytest.raises(XrayError, match="lesion masks"):
        xraykit.explain_score(tiny_run, no_masks, out=tmp_path)


def test_explain_score_refuses_an_unknown_option(tiny_run, tmp_path):
    with pytest.raises(XrayError, match="patch"):
        xraykit.explain_score(
            tiny_run, "synthetic:n=16", methods=["cam"], limit=1, out=tmp_path, options={"cam": {"patch": 3}}
        )


def test_the_cli_scores_a_folder_written_by_synth_and_prints_a_table(tiny_run, tmp_path):
    xraykit.synth(tmp_path / "synth", n=16, size=32, seed=5)
    result = CliRunner().invoke(
        app,
        [
            "explain-score",
            str(tiny_run.path),
            str(tmp_path / "synth"),
            "--methods",
            "cam",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "score"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "pointing game" in result.output
    assert "ideal" in result.output.lower() and "on 1x1" in result.output  # cam's grid at 32 px: one cell
    saved = json.loads((tmp_path / "score" / "explain_score.json").read_text())
    _check_summary(saved, ["cam"])


def test_the_cli_says_in_one_line_when_a_folder_has_no_masks(tiny_run, tmp_path):
    import shutil

    xraykit.synth(tmp_path / "synth", n=8, size=32)
    shutil.rmtree(tmp_path / "synth" / "masks")
    result = CliRunner().invoke(
        app, ["explain-score", str(tiny_run.path), str(tmp_path / "synth"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "lesion masks" in result.output and "Traceback" not in result.output


def test_the_cli_refuses_an_unknown_method_in_one_line(tiny_run, tmp_path):
    result = CliRunner().invoke(
        app, ["explain-score", str(tiny_run.path), "synthetic:n=16", "--methods", "cam,nope", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output
