"""xraykit: learn, teach and practise deep learning on chest X-rays.

Task 1.1 trains ResNet-18 from scratch; Task 1.2 fine-tunes ImageNet weights with every
layer frozen but the head. Both draw loss curves, report per-class test accuracy, show
misclassified images and explain predictions with Class Activation Maps (Captum).

>>> import xraykit
>>> "resnet18" in xraykit.list_backbones()
True
"""

__version__ = "0.1.0"

from .api import (  # noqa: E402
    choose_validation,
    compare,
    count_parameters,
    create_backbone,
    demo,
    evaluate,
    explain,
    explain_maps,
    explain_score,
    list_backbones,
    list_datasets,
    list_explainers,
    list_strategies,
    load_data,
    predict,
    resume,
    synth,
    synthesize,
    train,
)
from .errors import CheckpointError, ImageError, WeightsUnavailableError, XrayError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .interfaces import Backbone, DatasetSource, Explainer, Strategy, XrayData  # noqa: E402
from .runs import Run  # noqa: E402
from .training import TrainConfig  # noqa: E402

__all__ = [
    "Backbone", "CheckpointError", "DatasetSource", "Explainer", "ImageError", "Run", "Strategy", "TrainConfig",
    "WeightsUnavailableError", "XrayData", "XrayError", "choose_validation", "compare", "count_parameters",
    "create_backbone", "demo", "evaluate", "explain", "explain_maps", "explain_score", "hookimpl", "list_backbones",
    "list_datasets", "list_explainers", "list_strategies", "load_data", "predict", "resume", "synth", "synthesize",
    "train",
]
