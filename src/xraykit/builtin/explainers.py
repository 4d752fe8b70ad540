"""Attribution methods, all computed through Captum.

``cam`` is Grad-CAM at the backbone's declared CAM layer. For a ResNet (last conv stage,
global average pool, one linear layer) it equals the original Class Activation Map,
``sum_k w_ck * A_k``, divided by the number of spatial positions. Captum's defaults
differ from the CAM paper in two ways (no ReLU, nearest-neighbour upsampling), so both
are explicit options here, set to the paper's choices.

``guided-gradcam`` sharpens that map with guided backpropagation, ``occlusion`` asks the
model directly (grey out a patch, watch the score fall) and ``integrated-gradients``
accumulates gradients along the straight path from a black image to the X-ray.

Every method runs with the model in eval mode and hands it back exactly as it came
(each module's ``training`` flag, weights, buffers, no hook left behind): looking at a
model must not change it.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from captum.attr import GuidedGradCam, IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion
from torch import nn

from ..attribution import evaluating, upsample_to
from ..errors import XrayError
from ..hookspecs import hookimpl
from ..interfaces import Backbone, Explainer

UPSAMPLING = ("bilinear", "bicubic", "nearest", "none")
ALIGNMENTS = ("tiles", "receptive-field")
# Pixels per forward pass when a method perturbs each input many times (occlusion, IG):
# 16 images at 224 px, about 200 at 64 px; enough to keep a CPU busy, small enough for
# the backward pass of integrated gradients to fit in a laptop's memory.
PIXELS_PER_PASS = 16 * 224 * 224


def black_level(backbone: Backbone) -> float:
    """The normalized value of a 0-intensity pixel: what a black image looks like to the network."""
    return (0.0 - backbone.mean) / backbone.std


def _cam_layer(model: nn.Module, backbone: Backbone, method: str, layer: Optional[str] = None) -> nn.Module:
    if backbone.cam_layer is None:
        raise XrayError(f"backbone '{backbone.name}' declares no CAM layer, so '{method}' cannot explain it")
    name = layer if layer is not None else backbone.cam_layer
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise XrayError(
            f"backbone '{backbone.name}' has no layer '{name}' (its CAM layer is '{backbone.cam_layer}'; "
            "any submodule name works, e.g. from print(model))"
        ) from None


def _check_upsample(upsample: str, align: str = "tiles") -> None:
    if upsample not in UPSAMPLING:
        raise XrayError(f"upsample must be one of {', '.join(UPSAMPLING)}; got '{upsample}'")
    if align not in ALIGNMENTS:
        raise XrayError(f"align must be one of {', '.join(ALIGNMENTS)}; got '{align}'")


def _images_per_pass(inputs: torch.Tensor) -> int:
    return max(1, PIXELS_PER_PASS // (inputs.shape[-2] * inputs.shape[-1]))


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    backbone: Backbone,
    relu: bool = True,
    upsample: str = "bilinear",
    align: str = "tiles",
    layer: Optional[str] = None,
) -> torch.Tensor:
    """LayerGradCam at ``backbone.cam_layer``, upsampled to the input size: ``(B, H, W)``.

    ``relu=False`` keeps the negative evidence; ``upsample="none"`` returns the map at the
    layer's own resolution (``(B, h, w)``, 2 x 2 for ResNet-18 at 64 px), which is the one
    that equals the classic CAM divided by ``h * w``. ``align`` says where each cell's
    value goes in the image (see :func:`xraykit.attribution.upsample_to`); the default is the paper's.

    ``layer`` names another module to take the gradient-weighted activations from. The
    declared CAM layer (ResNet's ``layer4``) is the one with the classic CAM meaning, but
    its grid is 1/32 of the image; ``layer3`` (1/16) or ``layer2`` (1/8) are finer and see
    less context, which is the trade Grad-CAM's authors describe for earlier layers.
    """
    _check_upsample(upsample, align)
    with evaluating(model):
        chosen = _cam_layer(model, backbone, "cam", layer)
        maps = LayerGradCam(model, chosen).attribute(inputs, target=targets, relu_attributions=relu)
        if upsample != "none":
            maps = upsample_to(maps, (inputs.shape[-2], inputs.shape[-1]), upsample, align)
    return maps.sum(1).detach()


def guided_grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    backbone: Backbone,
    upsample: str = "bilinear",
    layer: Optional[str] = None,
) -> torch.Tensor:
    """GuidedGradCam: guided backpropagation times the (ReLU'd, upsampled) Grad-CAM map at ``layer``.

    ``upsample`` and ``layer`` as in :func:`grad_cam`.
    """
    _check_upsample(upsample)
    if upsample == "none":
        raise XrayError("guided-gradcam multiplies by a pixel-level map, so it needs an upsampling mode, not 'none'")
    inputs = inputs if inputs.requires_grad else inputs.detach().requires_grad_()
    with evaluating(model), warnings.catch_warnings():
        # Captum warns that it hooks the ReLUs; it removes the hooks again, which the tests check.
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        chosen = _cam_layer(model, backbone, "guided-gradcam", layer)
        maps = GuidedGradCam(model, chosen).attribute(inputs, target=targets, interpolate_mode=upsample)
    return maps.sum(1).detach()


def occlusion(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    backbone: Backbone,
    patch: Optional[int] = None,
    stride: Optional[int] = None,
) -> torch.Tensor:
    """Captum Occlusion: how much the target's score drops when a black square hides each spot.

    ``patch`` is the square's side in pixels (default: an eighth of the image, 8 px at 64,
    28 px at 224, about the size of a lesion); ``stride`` defaults to half a patch, so
    every pixel is judged by several overlapping squares.
    """
    size = min(inputs.shape[-2:])
    patch = patch if patch is not None else max(2, round(size / 8))
    stride = stride if stride is not None else max(1, patch // 2)
    if not 1 <= patch <= size or stride < 1:
        raise XrayError(
            f"occlusion needs 1 <= patch <= {size} pixels and stride >= 1; got patch {patch}, stride {stride}"
        )
    per_pass = max(1, _images_per_pass(inputs) // len(inputs))  # Captum sends len(inputs) images per perturbation
    with evaluating(model), torch.no_grad():
        maps = Occlusion(model).attribute(
            inputs,
            sliding_window_shapes=(inputs.shape[1], patch, patch),
            strides=(inputs.shape[1], stride, stride),
            baselines=black_level(backbone),
            target=targets,
            perturbations_per_eval=per_pass,
        )
    return maps.sum(1).detach()


def integrated_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    backbone: Backbone,
    steps: int = 50,
    noise_samples: int = 0,
    noise_level: float = 0.15,
) -> torch.Tensor:
    """Integrated gradients from a black image (every pixel at intensity 0) to the input.

    ``noise_samples > 0`` averages that many copies with Gaussian noise added (Captum's
    NoiseTunnel, SmoothGrad): less speckle, ``noise_samples`` times the cost.
    ``noise_level`` is the noise's standard deviation as a fraction of the 0-255 range
    (SmoothGrad suggests 10-20 %).
    """
    if steps < 1 or noise_samples < 0 or noise_level < 0:
        raise XrayError("integrated-gradients needs steps >= 1, noise_samples >= 0 and noise_level >= 0")
    ig = IntegratedGradients(model)
    kwargs = dict(
        baselines=black_level(backbone),
        target=targets,
        n_steps=steps,
        internal_batch_size=max(_images_per_pass(inputs), len(inputs) * max(1, noise_samples)),
    )
    with evaluating(model):
        if noise_samples:
            maps = NoiseTunnel(ig).attribute(
                inputs, nt_type="smoothgrad", nt_samples=noise_samples, stdevs=noise_level / backbone.std, **kwargs
            )
        else:
            maps = ig.attribute(inputs, **kwargs)
    return maps.sum(1).detach()


def _has_cam_layer(backbone: Backbone) -> bool:
    return backbone.cam_layer is not None


CAM = Explainer(
    name="cam",
    attribute=grad_cam,
    description="Class Activation Map: Captum LayerGradCam at the CAM layer, ReLU, bilinear upsampling",
    supports=_has_cam_layer,
)
GUIDED_GRAD_CAM = Explainer(
    name="guided-gradcam",
    attribute=guided_grad_cam,
    description="Captum GuidedGradCam: guided backpropagation times the CAM, pixel-sharp",
    supports=_has_cam_layer,
)
OCCLUSION = Explainer(
    name="occlusion",
    attribute=occlusion,
    description="Captum Occlusion: score drop when a black patch hides each spot (option patch=PIXELS)",
)
INTEGRATED_GRADIENTS = Explainer(
    name="integrated-gradients",
    attribute=integrated_gradients,
    description="Captum IntegratedGradients from a black image (option noise_samples=N adds NoiseTunnel)",
)


@hookimpl
def register_explainers(register):
    for explainer in (CAM, GUIDED_GRAD_CAM, OCCLUSION, INTEGRATED_GRADIENTS):
        register(explainer)
