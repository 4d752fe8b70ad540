"""Grayscale stays one channel until the model: folding an RGB stem loses nothing.

A grayscale X-ray shown to an RGB network is three equal channels. A convolution is linear
in its input channels, so summing the RGB filters over the channel axis gives a
one-channel filter with exactly the same output, on a third of the input bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given
from hypothesis import strategies as st

from xraykit import plugins
from xraykit.builtin.resnet import build_resnet18
from xraykit.weights import fit_state_dict


@given(
    out_channels=st.integers(1, 8),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 3),
    padding=st.integers(0, 3),
    size=st.integers(8, 24),
    batch=st.integers(1, 3),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_summed_rgb_filters_on_one_channel_equal_the_rgb_conv_on_three_equal_channels(
    out_channels, kernel, stride, padding, size, batch, bias, seed
):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_channels, 3, kernel, kernel, generator=g)
    b = torch.randn(out_channels, generator=g) if bias else None
    gray = torch.rand(batch, 1, size + kernel, size + kernel, generator=g)

    rgb_out = F.conv2d(gray.expand(-1, 3, -1, -1), weight, b, stride=stride, padding=padding)
    folded_out = F.conv2d(gray, weight.sum(dim=1, keepdim=True), b, stride=stride, padding=padding)

    torch.testing.assert_close(folded_out, rgb_out, rtol=1e-5, atol=1e-5)
    assert gray.numel() * 3 == gray.expand(-1, 3, -1, -1).numel()


def _randomized_torchvision_resnet18(seed: int) -> torch.nn.Module:
    """A torchvision ResNet-18 whose weights and BatchNorm statistics are all random, not the defaults."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_a_folded_resnet18_gives_the_rgb_models_logits_on_grayscale_images():
    rgb = _randomized_torchvision_resnet18(seed=3)
    backbone = plugins.get("backbone", "resnet18")
    gray_model = build_resnet18(num_classes=1000)
    fit_state_dict(gray_model, rgb.state_dict(), backbone, "random RGB ResNet-18", load_head=True)
    gray_model.eval()
    assert gray_model.conv1.weight.shape[1] == 1

    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = rgb(x.expand(-1, 3, -1, -1))
        got = gray_model(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_every_tensor_but_the_stem_is_copied_unchanged():
    rgb = _randomized_torchvision_resnet18(seed=4)
    gray_model = build_resnet18(num_classes=1000)
    fit_state_dict(gray_model, rgb.state_dict(), plugins.get("backbone", "resnet18"), "rgb", load_head=True)
    source, folded = rgb.state_dict(), gray_model.state_dict()
    assert set(source) == set(folded)
    for key in source:
        expected = source[key].sum(dim=1, keepdim=True) if key == "conv1.weight" else source[key]
        assert torch.equal(folded[key], expected), key
