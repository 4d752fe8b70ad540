"""Explainer plugins: the CAM law, shapes, batch independence, and that explaining never changes a model."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import xraykit
from xraykit import plugins
from xraykit.builtin.explainers import black_level, grad_cam, integrated_gradients, occlusion
from xraykit.cli import app
from xraykit.errors import XrayError
from xraykit.interfaces import Backbone
from xraykit.loop import set_train_mode

EXPLAINERS = sorted(plugins.entries("explainer"))
CAM_BACKBONES = sorted(name for name, e in plugins.entries("backbone").items() if e.obj.cam_layer is not None)
RESNET18 = plugins.get("backbone", "resnet18")

# Cheap settings for the slow methods; the laws do not depend on them.
FAST = {"occlusion": {"patch": 16}, "integrated-gradients": {"steps": 4}}


def _model(seed: int, backbone: Backbone = RESNET18) -> torch.nn.Module:
    torch.manual_seed(seed)
    return backbone.build(2).eval()


def _inputs(seed: int, batch: int, size: int, width: int | None = None) -> torch.Tensor:
    return torch.randn(batch, 1, size, width or size, generator=torch.Generator().manual_seed(seed))


def _explain(method: str, model, x, targets, backbone=RESNET18, **options):
    return plugins.get("explainer", method).attribute(
        model, x, targets, backbone, **{**FAST.get(method, {}), **options}
    )


# ----------------------------------------------------------------------------- the CAM law


def _classic_cam(model, x, targets):
    """sum_k w_ck A_k from the fc weights and layer4's feature maps (taken with a forward hook)."""
    features = {}
    handle = model.layer4.register_forward_hook(lambda module, inp, out: features.update(a=out.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    w = model.fc.weight.detach()[targets]  # (B, K)
    return torch.einsum("bk,bkhw->bhw", w, features["a"])


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 3), size=st.sampled_from([32, 48, 64]))
def test_grad_cam_at_layer4_equals_classic_cam_over_the_number_of_positions(seed, batch, size):
    model, x = _model(seed), _inputs(seed, batch, size)
    targets = torch.randint(0, 2, (batch,), generator=torch.Generator().manual_seed(seed))
    cam = _classic_cam(model, x, targets)
    h, w = cam.shape[-2:]
    gradcam = grad_cam(model, x, targets, RESNET18, relu=False, upsample="none")
    scale = float(cam.abs().max()) / (h * w) + 1e-12
    assert torch.allclose(gradcam, cam / (h * w), atol=1e-5 * scale, rtol=1e-4)
    gradcam_relu = grad_cam(model, x, targets, RESNET18, relu=True, upsample="none")
    assert torch.allclose(gradcam_relu, torch.relu(cam) / (h * w), atol=1e-5 * scale, rtol=1e-4)


def test_cam_defaults_are_the_papers_relu_then_bilinear_upsampling():
    model, x, t = _model(0), _inputs(0, 2, 64), torch.tensor([0, 1])
    signed = grad_cam(model, x, t, RESNET18, relu=False, upsample="none")
    expected = torch.nn.functional.interpolate(torch.relu(signed)[:, None], size=(64, 64), mode="bilinear")[:, 0]
    assert torch.allclose(grad_cam(model, x, t, RESNET18), expected, atol=1e-7)
    bilinear = grad_cam(model, x, t, RESNET18, relu=False)
    assert not torch.allclose(bilinear, grad_cam(model, x, t, RESNET18, relu=False, upsample="nearest"))


class _HotCell(torch.nn.Module):
    """A stand-in network whose CAM layer (2 x 2 or larger, stride 32) lights up one cell only."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col
        self.layer4 = torch.nn.Identity()
        self.fc = torch.nn.Linear(1, 2)

    def forward(self, x):
        grid = torch.zeros(len(x), 1, x.shape[-2] // 32, x.shape[-1] // 32)
        grid[:, :, self.row, self.col] = 1.0
        a = self.layer4(grid + 0 * x.mean())
        return self.fc(a.mean((2, 3)))


@pytest.mark.parametrize("row, col", [(0, 0), (1, 2), (3, 3)])
def test_cam_aligned_to_receptive_fields_peaks_where_the_cells_receptive_field_is_centred(row, col):
    model = _HotCell(row, col)
    with torch.no_grad():
        model.fc.weight.fill_(1.0)
    tiles = grad_cam(model, torch.zeros(1, 1, 128, 128), torch.tensor([1]), RESNET18)
    aligned = grad_cam(model, torch.zeros(1, 1, 128, 128), torch.tensor([1]), RESNET18, align="receptive-field")
    assert aligned.shape == tiles.shape == (1, 128, 128)
    assert aligned[0, 32 * row, 32 * col] == aligned.max()  # torchvision's ResNets centre cell j at pixel 32 j
    tile = (slice(32 * row, 32 * row + 32), slice(32 * col, 32 * col + 32))
    assert tiles[0][tile].max() == tiles.max()  # the paper's resize: the cell fills its 32 x 32 tile
    if 0 < row < 3:  # inside the grid the two disagree by half a tile
        assert tiles[0, 32 * row + 16, 32 * col + 16] > aligned[0, 32 * row + 16, 32 * col + 16]


@settings(max_examples=6)
@given(
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 3),
    size=st.sampled_from([32, 48, 64, 96]),
    layer=st.sampled_from([("layer2", 8), ("layer3", 16), ("layer4", 32)]),
)
def test_cam_at_an_earlier_layer_has_that_layers_finer_grid(seed, batch, size, layer):
    # The option exists because layer4's grid is 1/32 of the image (2 x 2 at 64 px): too coarse
    # to point at a lesion. layer3 halves the stride, layer2 quarters it.
    name, stride = layer
    model, x = _model(seed), _inputs(seed, batch, size)
    targets = torch.zeros(batch, dtype=torch.long)
    coarse = grad_cam(model, x, targets, RESNET18, layer=name, upsample="none")
    assert coarse.shape == (batch, -(-size // stride), -(-size // stride))
    assert (coarse >= 0).all()
    fine = grad_cam(model, x, targets, RESNET18, layer=name)
    assert fine.shape == (batch, size, size) and torch.isfinite(fine).all()


def test_cam_at_the_declared_layer_is_the_default():
    model, x, t = _model(1), _inputs(1, 2, 64), torch.tensor([0, 1])
    assert torch.equal(grad_cam(model, x, t, RESNET18, layer="layer4"), grad_cam(model, x, t, RESNET18))
    assert not torch.allclose(grad_cam(model, x, t, RESNET18, layer="layer3"), grad_cam(model, x, t, RESNET18))


@pytest.mark.parametrize("method", ["cam", "guided-gradcam"])
def test_an_unknown_cam_layer_is_refused_by_name(method):
    model, x, t = _model(0), _inputs(0, 1, 32), torch.tensor([1])
    with pytest.raises(XrayError, match="no layer 'layer9'.*layer4"):
        _explain(method, model, x, t, layer="layer9")


# ----------------------------------------------------------------------------- shapes, for every explainer


@pytest.mark.parametrize("method", EXPLAINERS)
@settings(max_examples=3)
@given(
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 3),
    height=st.sampled_from([32, 48]),
    width=st.sampled_from([32, 40]),
)
def test_every_explainer_returns_one_finite_map_per_image_at_the_input_size(method, seed, batch, height, width):
    model, x = _model(seed), _inputs(seed, batch, height, width)
    maps = _explain(method, model, x, torch.ones(batch, dtype=torch.long))
    assert maps.shape == (batch, height, width)
    assert torch.isfinite(maps).all()


@settings(max_examples=4)
@given(seed=st.integers(0, 2**16), size=st.sampled_from([32, 40, 64]))
def test_cam_with_relu_is_never_negative(seed, size):
    maps = grad_cam(_model(seed), _inputs(seed, 2, size), torch.tensor([0, 1]), RESNET18, relu=True)
    assert (maps >= 0).all()


@pytest.mark.parametrize("method", EXPLAINERS)
def test_an_images_map_does_not_depend_on_the_rest_of_its_batch(method):
    model, x, t = _model(3), _inputs(3, 3, 32), torch.tensor([1, 0, 1])
    together = _explain(method, model, x, t)
    alone = torch.cat([_explain(method, model, x[i : i + 1], t[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5 * float(alone.abs().max()) + 1e-12, rtol=1e-4)


@pytest.mark.parametrize("backbone", CAM_BACKBONES)
@pytest.mark.parametrize("method", EXPLAINERS)
def test_every_explainer_works_for_every_backbone_that_declares_a_cam_layer(method, backbone):
    bb = plugins.get("backbone", backbone)
    cheapest = {"occlusion": {"patch": 32}, "integrated-gradients": {"steps": 1}}.get(method, {})
    maps = _explain(method, _model(0, bb), _inputs(0, 2, 32), torch.tensor([0, 1]), bb, **cheapest)
    assert maps.shape == (2, 32, 32)
    assert torch.isfinite(maps).all()


def test_methods_that_need_a_cam_layer_say_so_and_refuse_a_backbone_without_one():
    from dataclasses import replace

    no_cam = replace(RESNET18, name="no-cam", cam_layer=None)
    supported = {name for name, e in plugins.entries("explainer").items() if e.obj.supports(no_cam)}
    assert supported == {"occlusion", "integrated-gradients"}
    with pytest.raises(XrayError, match="no CAM layer"):
        _explain("cam", _model(0), _inputs(0, 1, 32), torch.tensor([0]), no_cam)


# ----------------------------------------------------------------------------- explaining leaves the model alone


def _snapshot(model: torch.nn.Module) -> dict:
    hooks = {}
    for name, m in model.named_modules():
        hooks[name] = tuple(
            len(getattr(m, attr, {}))
            for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
        )
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": {name: p.grad for name, p in model.named_parameters()},
        "hooks": hooks,
        "global_hooks": (
            len(torch.nn.modules.module._global_forward_hooks),
            len(torch.nn.modules.module._global_backward_hooks),
        ),
    }


def _assert_same(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for key in ("training", "requires_grad", "hooks", "global_hooks"):
        assert before[key] == after[key], key
    assert all(g is None for g in after["grads"].values())


def _partly_frozen_in_training(seed: int) -> torch.nn.Module:
    """Mid-training: layer1 frozen (its BatchNorms stay in eval), everything else in train mode."""
    model = _model(seed)
    model.layer1.requires_grad_(False)
    set_train_mode(model)
    return model


@pytest.mark.parametrize("method", EXPLAINERS)
def test_explaining_changes_no_weight_buffer_flag_or_hook(method):
    model = _partly_frozen_in_training(7)
    before = _snapshot(model)
    _explain(method, model, _inputs(7, 2, 32), torch.tensor([0, 1]))
    _assert_same(before, _snapshot(model))


@pytest.mark.parametrize("method", EXPLAINERS)
def test_explain_maps_leaves_a_training_model_as_it_found_it(method):
    model = _partly_frozen_in_training(8)
    before = _snapshot(model)
    images = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    xraykit.explain_maps(model, RESNET18, images, torch.tensor([1, 0]), method, **FAST.get(method, {}))
    _assert_same(before, _snapshot(model))


# ----------------------------------------------------------------------------- method-specific laws


def test_integrated_gradients_of_a_black_image_is_zero_because_black_is_its_baseline():
    black = torch.full((1, 1, 32, 32), black_level(RESNET18))
    maps = integrated_gradients(_model(0), black, torch.tensor([1]), RESNET18, steps=4)
    assert torch.equal(maps, torch.zeros_like(maps))


def test_integrated_gradients_attributions_add_up_to_the_score_difference_from_black():
    model, x, t = _model(2), _inputs(2, 1, 32), torch.tensor([1])
    black = torch.full_like(x, black_level(RESNET18))
    with torch.no_grad():
        gap = (model(x) - model(black))[0, 1].item()
    total = integrated_gradients(model, x, t, RESNET18, steps=64).sum().item()
    assert total == pytest.approx(gap, rel=0.05, abs=1e-3)


def test_noise_tunnel_is_an_option_of_integrated_gradients_that_changes_the_map():
    model, x, t = _model(1), _inputs(1, 2, 32), torch.tensor([1, 1])
    plain = integrated_gradients(model, x, t, RESNET18, steps=4)
    torch.manual_seed(0)
    smooth = integrated_gradients(model, x, t, RESNET18, steps=4, noise_samples=3)
    assert smooth.shape == plain.shape and not torch.allclose(smooth, plain)


class _ReadsOnePixel(torch.nn.Module):
    """A 'model' whose PNEUMONIA score is the value of one pixel."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col

    def forward(self, x):
        v = x[:, 0, self.row, self.col]
        return torch.stack([-v, v], dim=1)


def test_occlusion_credits_exactly_the_patches_that_cover_the_pixel_the_model_reads():
    model, x = _ReadsOnePixel(10, 20), torch.ones(1, 1, 32, 32)
    maps = occlusion(model, x, torch.tensor([1]), RESNET18, patch=4, stride=4)
    assert (maps[0, 8:12, 20:24] > 0).all()
    maps[0, 8:12, 20:24] = 0
    assert (maps == 0).all()


def test_occlusion_refuses_a_patch_larger_than_the_image():
    with pytest.raises(XrayError, match="patch"):
        occlusion(_model(0), _inputs(0, 1, 32), torch.tensor([0]), RESNET18, patch=40)


# ----------------------------------------------------------------------------- the explain command


def test_explain_writes_one_figure_per_image_for_the_chosen_method_and_target(tiny_run, tmp_path):
    xraykit.synth(tmp_path / "synth", n=8, size=32)
    image = next((tmp_path / "synth" / "test" / "PNEUMONIA").glob("*.png"))
    result = CliRunner().invoke(
        app,
        [
            "explain",
            str(tiny_run.path),
            str(image),
            "--method",
            "occlusion",
            "--target",
            "PNEUMONIA",
            "--option",
            "patch=8",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / f"{image.stem}_occlusion.png").is_file()


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--target", "COVID"], "COVID"),
        (["--method", "nope"], "nope"),
        (["--option", "patch"], "KEY=VALUE"),
        (["--option", "nonsense=1"], "nonsense"),
    ],
)
def test_explain_reports_bad_choices_in_one_line(tiny_run, tmp_path, args, problem):
    xraykit.synth(tmp_path / "synth", n=8, size=32)
    image = next((tmp_path / "synth" / "test" / "NORMAL").glob("*.png"))
    result = CliRunner().invoke(app, ["explain", str(tiny_run.path), str(image), "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert problem in result.output and "Traceback" not in result.output


def test_evaluate_shows_each_misclassified_image_with_its_cam(tiny_run, tiny_splits, tmp_path, monkeypatch):
    from xraykit import evaluation, figures

    drawn = {}
    draw = figures.overlay_pairs

    def overlay_pairs(images, maps, titles, path, **kwargs):
        drawn[path.name] = (images, maps, titles)
        drawn["figure"] = draw(images, maps, titles, path, **kwargs)
        return drawn["figure"]

    monkeypatch.setattr(evaluation.figures, "overlay_pairs", overlay_pairs)
    metrics = xraykit.evaluate(tiny_run, tiny_splits, out=tmp_path)
    wrong = sum(metrics["confusion_matrix"][i][j] for i in range(2) for j in range(2) if i != j)
    assert wrong > 0  # two epochs on 96 images: some mistakes to show
    images, maps, titles = drawn["misclassified_cam.png"]
    shown = min(wrong, 12)
    assert len(images) == len(maps) == len(titles) == shown
    assert maps.shape == (shown, 32, 32)
    truth_and_guess = [title.split("\n")[:2] for title in titles]
    assert all(true[5:] != guess[5:].split(" (")[0] for true, guess in truth_and_guess)  # each one is a mistake
    panels = [ax for ax in drawn["figure"].axes if ax.images]
    assert len(panels) == 2 * shown  # the image, and the image under its map: one pair per mistake
    assert (tmp_path / "misclassified_cam.png").is_file()
