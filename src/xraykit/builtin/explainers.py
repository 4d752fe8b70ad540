"""Attribution methods, all computed through Captum.

``cam`` is Grad-CAM at the backbone's declared CAM layer. For a ResNet (last conv stage,
global average pool, one linear layer) it equals the original Class Activation Map,
``sum_k w_ck * A_k``, divided by the number of spatial positions. Captum's defaults
differ from the CAM paper in two ways (no ReLU, nearest-neighbour upsampling), so both
are explicit options here, set to the paper's choices.
"""

from __future__ import annotations

import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from ..errors import XrayError
from ..hookspecs import hookimpl
from ..interfaces import Backbone, Explainer


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    backbone: Backbone,
    relu: bool = True,
    upsample: str = "bilinear",
) -> torch.Tensor:
    """LayerGradCam at ``backbone.cam_layer``, upsampled to the input size: ``(B, H, W)``."""
    if backbone.cam_layer is None:
        raise XrayError(f"backbone '{backbone.name}' declares no CAM layer, so 'cam' cannot explain it")
    layer = model.get_submodule(backbone.cam_layer)
    maps = LayerGradCam(model, layer).attribute(inputs, target=targets, relu_attributions=relu)
    if upsample != "none":
        kwargs = {"interpolate_mode": upsample}
        maps = LayerAttribution.interpolate(maps, tuple(inputs.shape[-2:]), **kwargs)
    return maps[:, 0].detach()


CAM = Explainer(
    name="cam",
    attribute=grad_cam,
    description="Class Activation Map: Captum LayerGradCam at the CAM layer, ReLU, bilinear upsampling",
)


@hookimpl
def register_explainers(register):
    register(CAM)
