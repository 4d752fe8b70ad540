"""A run's choices (:class:`TrainConfig`) and what happened when it began (:class:`RunRecord`).

Every option is checked once, here, when the config is made: the command line, the Python
API and ``--resume`` (which reads ``config.json``) all make one, so all three refuse a bad
value with the same one-line :class:`~xraykit.XrayError`, before any image is loaded.

Three words, one meaning each: the **task** is what the user chooses (``scratch`` is Task
1.1, ``finetune`` Task 1.2); the **strategy** is the plugin that implements a task (what
freezes, which optimizer, which lr); the **recipe** is a set of training settings
(``report`` or ``strong``) that any task can use.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .errors import XrayError

# The published coursework's recipe: plain Adam, no augmentation, unweighted loss, last epoch.
_REPORT: dict[str, Any] = dict(
    augment="none",
    normalize="dataset",
    label_smoothing=0.0,
    class_weights="none",
    balanced_sampler=False,
    schedule="constant",
    select="last",
)
RECIPES: dict[str, dict[str, Any]] = {
    "report": _REPORT,
    # A recipe whose numbers travel to X-rays from elsewhere (docs/results.md, benchmarks/robustness.py):
    # strong augmentation that covers acquisition shifts (exposure, contrast, blur, resolution, noise,
    # framing, borders), each image histogram-equalised (no gamma, contrast or brightness setting of
    # another hospital changes what the network sees; it halved the worst drop under the benchmark's
    # shifts against standardising each image), class weights for the 3:1 imbalance with label
    # smoothing, a cosine schedule, and the last epoch: a checkpoint chosen by the lowest loss on
    # validation images from the training hospital was, on the official test images, the worse one.
    "strong": {
        **_REPORT,
        "augment": "strong",
        "normalize": "equalize",
        "label_smoothing": 0.1,
        "class_weights": "auto",
        "schedule": "cosine",
    },
}
AUGMENTATIONS = ("none", "light", "strong")
NORMALIZATIONS = ("dataset", "image", "equalize")
SCHEDULES = ("constant", "cosine")
SELECTIONS = ("last", "best")
CLASS_WEIGHTS = ("none", "auto")
PRECISIONS = ("32", "bf16-mixed", "auto")  # Lightning's words; inference.resolve_precision decides what auto means
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass
class RunRecord:
    """What a run found when it began: its data, its validation split, its model, the software.

    Written once into ``config.json`` (under ``"record"``) beside the choices, read back by :class:`~xraykit.Run`.
    """

    validation: str = ""
    weights_loaded: str = ""
    train_images: int = 0
    val_images: int = 0
    train_class_counts: dict[str, int] = field(default_factory=dict)
    val_class_counts: dict[str, int] = field(default_factory=dict)
    trainable_parameters: int = 0
    total_parameters: int = 0
    skipped_files: list[str] = field(default_factory=list)
    skip_bad: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    precision: str = ""  # what the run trains in, "32" or "bf16-mixed" (its config's auto resolved); "": older runs

    @classmethod
    def from_dict(cls, d: Any) -> RunRecord:
        if not isinstance(d, dict):
            raise XrayError(f"record must be a mapping of names to values, got {d!r}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known.setdefault("precision", "32")  # a run from before 0.2 recorded none: every run then trained in float32
        return cls(**known)


@dataclass
class TrainConfig:
    """Every choice of a run, checked when made; saved as ``config.json``, enough to run it again."""

    data: str = "synthetic"
    task: str = "scratch"
    backbone: str = "resnet18"
    weights: Optional[str] = None  # None: the strategy's default (random for scratch, imagenet for finetune)
    epochs: int = 10
    lr: Optional[float] = None  # None: the strategy's default (1e-3 scratch, 1e-4 finetune)
    batch_size: int = 32
    image_size: int = 224
    seed: int = 0
    device: str = "auto"
    recipe: str = "report"
    augment: str = "none"  # none, light (small turns, zooms, relighting) or strong (augment.py)
    normalize: str = "dataset"  # dataset: one mean and std for all images; image: each by its own
    label_smoothing: float = 0.0
    class_weights: str = "none"
    balanced_sampler: bool = False
    schedule: str = "constant"
    select: str = "last"
    feature_cache: bool = True
    precision: str = "auto"  # 32 (float32), bf16-mixed (bfloat16 autocast) or auto; the run's is in record.precision
    compile: bool = False  # torch.compile the model (a C++ compiler needed; slow to start)
    val_from_train: Optional[float] = None
    num_classes: int = 2
    classes: list[str] = field(default_factory=list)
    record: RunRecord = field(default_factory=RunRecord)

    def __post_init__(self) -> None:
        for name in ("data", "task", "backbone"):
            _require(name, getattr(self, name), isinstance(getattr(self, name), str), "a name")
        _require("weights", self.weights, self.weights is None or isinstance(self.weights, str), "a name or a path")
        _one_of("recipe", self.recipe, tuple(RECIPES))
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("select", self.select, SELECTIONS)
        _one_of("class_weights", self.class_weights, CLASS_WEIGHTS)
        if isinstance(self.augment, bool):  # config.json before 0.2, and the API's True/False
            self.augment = "light" if self.augment else "none"
        _one_of("augment", self.augment, AUGMENTATIONS)
        _one_of("normalize", self.normalize, NORMALIZATIONS)
        smoothing_ok = _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 0.5
        _require("label_smoothing", self.label_smoothing, smoothing_ok, "a number from 0 to 0.5 (exclusive)")
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):  # the API's precision=32
            self.precision = str(self.precision)
        _one_of("precision", self.precision, PRECISIONS)
        for name in ("balanced_sampler", "feature_cache", "compile"):
            _require(name, getattr(self, name), isinstance(getattr(self, name), bool), "true or false")
        _whole("epochs", self.epochs, 1)
        _whole("batch_size", self.batch_size, 1)
        _whole("num_classes", self.num_classes, 2)
        _whole("seed", self.seed, 0)
        _whole("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        lr_ok = self.lr is None or (_is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0)
        _require("lr", self.lr, lr_ok, "a finite number above 0")
        fraction_ok = self.val_from_train is None or (_is_number(self.val_from_train) and 0 < self.val_from_train < 1)
        _require("val_from_train", self.val_from_train, fraction_ok, "a fraction between 0 and 1 (exclusive)")
        device_ok = isinstance(self.device, str) and _DEVICE.fullmatch(self.device) is not None
        _require("device", self.device, device_ok, "one of: auto, cpu, cuda, cuda:N, mps")
        classes_ok = isinstance(self.classes, list) and all(isinstance(c, str) for c in self.classes)
        _require("classes", self.classes, classes_ok, "a list of class names")
        if isinstance(self.record, dict):  # read from a file
            self.record = RunRecord.from_dict(self.record)

    @classmethod
    def for_recipe(cls, recipe: str = "report", **options: Any) -> TrainConfig:
        """A config whose unset (``None``) recipe options (augment, normalize, label_smoothing,
        class_weights, balanced_sampler, schedule, select) come from ``RECIPES[recipe]``; any option
        given explicitly wins."""
        _one_of("recipe", recipe, tuple(RECIPES))
        for key, value in RECIPES[recipe].items():
            if options.get(key) is None:
                options[key] = value
        return cls(recipe=recipe, **options)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``, checked like a new config."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> TrainConfig:
        """A config read from ``config.json``; an older file's ``"extra"`` becomes its record."""
        if not isinstance(d, dict):
            raise XrayError(f"expected a mapping of option names to values, got {type(d).__name__}")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "record" not in known:
            known["record"] = d["extra"] if isinstance(d.get("extra"), dict) else {}  # read like any record
        return cls(**known)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise XrayError(f"{name} {value!r} is not {expected}")


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    _require(name, value, value in allowed, "one of: " + ", ".join(allowed))


def _whole(name: str, value: Any, low: int, high: Optional[int] = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    _require(name, value, ok, f"a whole number from {low} to {high}" if high else f"a whole number of at least {low}")
