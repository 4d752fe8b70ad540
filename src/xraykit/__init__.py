"""xraykit: learn, teach and practise deep learning on chest X-rays.

Task 1.1 trains ResNet-18 from scratch; Task 1.2 fine-tunes ImageNet weights with every
layer frozen but the head. Both draw loss curves, report per-class test accuracy, show
misclassified images and explain predictions with Class Activation Maps (Captum).

This module is the facade: ``__all__`` below is the public API, the list that
``docs/reference`` documents. Behind it, one home per concept::

    config.py      TrainConfig (every option, checked once), RunRecord, RECIPES
    training.py    train(), resume(): set a run up, then hand over to the loop
    preflight.py   what is checked before a run starts (device, trial batch, a checkpoint to resume)
    run_folder.py  a run folder claimed by exactly one run, locked while it trains
    loop.py        fit(): the training loop, read top to bottom, and its helpers
    inference.py   the device, the network's input, logits, probabilities; how images reach it in training
    augment.py     training-time augmentation
    runs.py        Run: a run folder read back
    evaluation.py  evaluate(), predict(), the misclassified gallery
    uncertainty.py, calibration.py, adaptation.py  intervals, thresholds and temperature, label-free adaptation
    shift_measures.py, shift_report.py  shift(): how far new X-rays are from the training ones
    explaining.py  explain(), explain_maps(), explain_score(), explain_gallery()
    attribution.py what every explainer shares (eval mode, upsampling a layer's map)
    scoring.py     pointing game and inside share against known lesions
    comparing.py   compare(), demo(): both tasks on one page
    data/          loading.py (load_data, choose_validation), folders, MedMNIST, synthetic, splits
    plugins.py     the registries: list_*, backbone(), strategy(), explainer(), create_backbone()
    builtin/       the built-in plugins; they import the core, never the reverse
    cli.py         the command line, a thin layer over this API (cli_support.py: its errors, options, tables)

Words: a *task* is what the user chooses (``scratch``, ``finetune``), the *strategy* is the
plugin that implements it, a *recipe* is a set of training settings (``report``, ``strong``).

>>> import xraykit
>>> "resnet18" in xraykit.list_backbones()
True
"""

import importlib
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, ImageError, WeightsUnavailableError, XrayError
from .hookspecs import hookimpl

# Each public name's home module. They are imported on first use (PEP 562), not here: the
# command line answers ``xraykit --help`` without loading torch, and ``import xraykit`` is instant.
_HOMES = {
    "compare": "comparing",
    "demo": "comparing",
    "RunRecord": "config",
    "TrainConfig": "config",
    "choose_validation": "data.loading",
    "load_data": "data.loading",
    "synth": "data.synthetic",
    "synthesize": "data.synthetic",
    "evaluate": "evaluation",
    "predict": "evaluation",
    "explain": "explaining",
    "explain_maps": "explaining",
    "explain_gallery": "explaining",
    "explain_score": "explaining",
    "Backbone": "interfaces",
    "DatasetSource": "interfaces",
    "Explainer": "interfaces",
    "Strategy": "interfaces",
    "XrayData": "interfaces",
    "count_parameters": "plugins",
    "create_backbone": "plugins",
    "list_backbones": "plugins",
    "list_datasets": "plugins",
    "list_explainers": "plugins",
    "list_strategies": "plugins",
    "Run": "runs",
    "shift": "shift_report",
    "resume": "training",
    "train": "training",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'xraykit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and the API reference read
    from .comparing import compare, demo
    from .config import RunRecord, TrainConfig
    from .data.loading import choose_validation, load_data
    from .data.synthetic import synth, synthesize
    from .evaluation import evaluate, predict
    from .explaining import explain, explain_gallery, explain_maps, explain_score
    from .interfaces import Backbone, DatasetSource, Explainer, Strategy, XrayData
    from .plugins import (
        count_parameters,
        create_backbone,
        list_backbones,
        list_datasets,
        list_explainers,
        list_strategies,
    )
    from .runs import Run
    from .shift_report import shift
    from .training import resume, train

__version__ = "0.3.0"

__all__ = [
    "Backbone",
    "CheckpointError",
    "DatasetSource",
    "Explainer",
    "ImageError",
    "Run",
    "RunRecord",
    "Strategy",
    "TrainConfig",
    "WeightsUnavailableError",
    "XrayData",
    "XrayError",
    "choose_validation",
    "compare",
    "count_parameters",
    "create_backbone",
    "demo",
    "evaluate",
    "explain",
    "explain_gallery",
    "explain_maps",
    "explain_score",
    "hookimpl",
    "list_backbones",
    "list_datasets",
    "list_explainers",
    "list_strategies",
    "load_data",
    "predict",
    "resume",
    "shift",
    "synth",
    "synthesize",
    "train",
]
