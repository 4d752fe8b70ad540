"""xraykit: learn, teach and practise deep learning on chest X-rays.

Task 1.1 trains ResNet-18 from scratch; Task 1.2 fine-tunes ImageNet weights with every
layer frozen but the head. Both draw loss curves, report per-class test accuracy, show
misclassified images and explain predictions with Class Activation Maps (Captum).

This module is the facade: ``__all__`` below is the public API, the list that
``docs/reference`` documents. Behind it, one home per concept::

    config.py          TrainConfig: every training option, declared once (default, help, choices); RECIPES
    training.py        train(), resume(): set a run up, then hand over to the loop
    preflight.py       what is checked before a run starts (device, trial batch, a checkpoint to resume)
    loop.py            fit(): the training loop, read top to bottom, and its helpers
    averaging.py       weight averaging over the last epochs (--select averaged, SWA)
    inputs.py          how images reach the model in training (as they are, shrunk, augmented, cached features)
    augment.py         training-time augmentation
    devices.py         the device and the precision, each resolved once; batches moved to the device
    inference.py       the network's input, logits, probabilities, what its head receives
    distributed.py     several processes under torchrun
    runs.py            Run: a run folder read back; claimed by one run and locked while it trains
    io.py              atomic file writes; where outputs may not go
    weights.py         weights and checkpoints loaded safely (weights_only) and fitted to a backbone
    errors.py          XrayError, the one-line error, and how it names a file
    evaluation.py      evaluate(), the misclassified gallery
    predicting.py      predict(): a label for each image file, with a hint of how unusual it is
    ensembles.py       ensemble(): several runs answering as one
    metrics.py         the numbers from predictions and labels
    uncertainty.py     95% intervals, paired comparisons
    calibration.py     thresholds and temperature, fitted on validation images only
    adaptation.py      label-free adaptation (AdaBN, prior by BBSE or EM)
    tta.py             test-time augmentation: views that keep the anatomy
    shift_measures.py  how far new X-rays are from the training ones, without labels
    shift_report.py    shift(): that measure as verdicts and figures
    explaining.py      explain(), explain_maps(), explain_score(), the CAM setting that points best
    gallery.py         explain_gallery(): several explainers side by side
    attribution.py     what every explainer shares (eval mode, upsampling a layer's map)
    scoring.py         pointing game and inside share against known lesions
    variants.py        explainer variants as text (cam:layer=layer3) and KEY=VALUE options
    comparing.py       compare(), demo(): both tasks on one page
    tables.py          numbers as people read them; the one list of metric rows every view renders
    report.py          report.md
    figures.py         loss curves, confusion matrix, galleries, CAM overlays
    progress.py        progress bars
    data/              loading.py (load_data, choose_validation), folders.py, images.py, cache.py,
                       splits.py, copies.py (the same pixels found), medmnist.py, sample.py, synthetic.py,
                       acquisition_shifts.py
    hookspecs.py       the plugin contract: four hooks
    interfaces.py      Backbone, Strategy, Explainer, DatasetSource, XrayData
    plugins.py         the registries: list_plugins(), backbone(), strategy(), explainer(), create_backbone()
    builtin/           the built-in plugins; they import the core, never the reverse
    cli.py             the command line, a thin layer over this API; cli_options.py (its training options,
                       made from TrainConfig) and cli_views.py (its one-line errors, tables and lines)

Words: a *task* is what the user chooses (``scratch``, ``finetune``), the *strategy* is the
plugin that implements it, a *recipe* is a set of training settings (``report``, ``strong``).

>>> import xraykit
>>> "resnet18" in xraykit.list_plugins("backbone")
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
    "predict": "predicting",
    "ensemble": "ensembles",
    "explain": "explaining",
    "explain_maps": "explaining",
    "explain_gallery": "gallery",
    "explain_score": "explaining",
    "Backbone": "interfaces",
    "DatasetSource": "interfaces",
    "Explainer": "interfaces",
    "Strategy": "interfaces",
    "XrayData": "interfaces",
    "count_parameters": "plugins",
    "create_backbone": "plugins",
    "list_plugins": "plugins",
    "Run": "runs",
    "shift": "shift_report",
    "show": "figures",
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
    from .ensembles import ensemble
    from .evaluation import evaluate
    from .explaining import explain, explain_maps, explain_score
    from .figures import show
    from .gallery import explain_gallery
    from .interfaces import Backbone, DatasetSource, Explainer, Strategy, XrayData
    from .plugins import (
        count_parameters,
        create_backbone,
        list_plugins,
    )
    from .predicting import predict
    from .runs import Run
    from .shift_report import shift
    from .training import resume, train

__version__ = "0.4.0"

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
    "ensemble",
    "evaluate",
    "explain",
    "explain_gallery",
    "explain_maps",
    "explain_score",
    "hookimpl",
    "list_plugins",
    "load_data",
    "predict",
    "resume",
    "shift",
    "show",
    "synth",
    "synthesize",
    "train",
]
