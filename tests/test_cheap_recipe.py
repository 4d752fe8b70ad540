"""The strong recipe's extra work, made cheap without changing what it computes.

Equalisation and the augmentation's blur ran on every training batch; each has a faster way to
compute the same thing, and these tests say in which sense it is the same.
"""

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from xraykit.augment import augment_strong
from xraykit.data.acquisition_shifts import gaussian_blur
from xraykit.inference import _ranks_by_counting, equalize_each_image, to_input
from xraykit.plugins import backbone


def exact_ranks(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's share of its image's pixels that are as dark or darker: the definition, by sorting."""
    flat = x.flatten(1)
    ordered = flat.sort(dim=1).values
    return torch.searchsorted(ordered, flat.contiguous(), right=True).float() / flat.shape[1]


def equalized_ranks(x: torch.Tensor) -> torch.Tensor:
    """What equalize_each_image feeds the network, turned back into ranks."""
    (y,) = equalize_each_image(torch.nn.Identity(), (x,))
    return (y * (1 / 12) ** 0.5 + 0.5).flatten(1)


@given(st.integers(0, 10_000), st.integers(1, 256), st.sampled_from([8, 31, 64]))
@settings(max_examples=40, deadline=None)
def test_equalising_an_image_of_uint8_levels_gives_its_exact_ranks_without_sorting(seed, levels, size):
    """Every image a model is given outside training has at most 256 levels (it was uint8): its ranks are exact."""
    g = torch.Generator().manual_seed(seed)
    images = (torch.randint(0, levels, (3, 1, size, size), generator=g) * (255 // levels)).to(torch.uint8)
    x = to_input(images, backbone("resnet18"))
    assert torch.allclose(equalized_ranks(x), exact_ranks(x), atol=1e-6, rtol=0)


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_equalising_any_float_image_still_gives_its_exact_ranks(seed):
    """Float levels closer than a histogram bin are sorted instead of counted: still the exact ranks."""
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(equalized_ranks(x), exact_ranks(x), atol=1e-6, rtol=0)


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_a_strongly_augmented_image_has_the_uint8_levels_that_equalisation_counts_exactly(seed):
    images = torch.randint(0, 256, (4, 1, 32, 32), generator=torch.Generator().manual_seed(seed)).float() / 255
    augmented = augment_strong(images, torch.Generator().manual_seed(seed))
    assert torch.equal(augmented * 255, (augmented * 255).round())
    assert _ranks_by_counting(augmented.flatten(1)) is not None  # counted, not sorted


def test_equalisation_with_a_gradient_still_gives_the_same_values():
    x = to_input(torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8), backbone("resnet18"))
    (with_grad,) = equalize_each_image(torch.nn.Identity(), (x.clone().requires_grad_(True),))
    (without,) = equalize_each_image(torch.nn.Identity(), (x,))
    assert torch.allclose(with_grad.detach(), without, atol=1e-6)


def blur_by_convolution(f: torch.Tensor, sigma: float) -> torch.Tensor:
    """The reference: a separable Gaussian as two torch convolutions, edges replicated."""
    radius = max(1, int(torch.tensor(3 * sigma).ceil()))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    f = F.conv2d(F.pad(f, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(f, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))


@given(st.floats(0.05, 4.0), st.integers(4, 40), st.integers(0, 1000))
@settings(max_examples=40, deadline=None)
def test_the_blur_equals_a_gaussian_convolution_with_replicated_edges(sigma, size, seed):
    f = torch.rand(2, 1, size, size + 3, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(gaussian_blur(f, sigma), blur_by_convolution(f, sigma), atol=1e-5)
