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

AUGMENTATIONS = ("none", "light", "strong")
NORMALIZATIONS = ("dataset", "image", "equalize")
SCHEDULES = ("constant", "cosine")
SELECTIONS = ("last", "best", "averaged")
CLASS_WEIGHTS = ("none", "auto")
PRECISIONS = ("32", "bf16-mixed", "auto")  # Lightning's words; devices.resolve_precision decides what auto means
# What each recipe changes from the report's settings, which are the defaults of TrainConfig's recipe fields.
RECIPE_CHANGES: dict[str, dict[str, Any]] = {
    # The published coursework's recipe: plain Adam, no augmentation, unweighted loss, last epoch.
    "report": {},
    # A recipe whose numbers travel to X-rays from elsewhere (docs/results.md, benchmarks/robustness.py):
    # strong augmentation that covers acquisition shifts (exposure, contrast, blur, resolution, noise,
    # framing, borders), each image histogram-equalised (no gamma, contrast or brightness setting of
    # another hospital changes what the network sees; it halved the worst drop under the benchmark's
    # shifts against standardising each image), class weights for the 3:1 imbalance with label
    # smoothing, a cosine schedule, and the last epoch: a checkpoint chosen by the lowest loss on
    # validation images from the training hospital was, on the official test images, the worse one.
    "strong": {
        "augment": "strong",
        "normalize": "equalize",
        "label_smoothing": 0.1,
        "class_weights": "auto",
        "schedule": "cosine",
    },
}
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    recipe: bool = False,
    per_task: bool = False,
    cli: bool = True,
) -> Any:
    """A :class:`TrainConfig` field with what the command line and the documentation say of it.

    This is the one declaration of a training option: ``xraykit train`` and ``xraykit compare`` make
    their options from these fields (:mod:`xraykit.cli_options`), :func:`xraykit.train` takes them as
    keywords, and the API reference lists them. ``recipe``: the default comes from ``--recipe`` (the
    value here is the report's); ``per_task``: each task has its own (``compare`` sets it per task);
    ``cli``: an option of the command line (False: filled in by xraykit itself).
    """
    metadata = {"help": help, "choices": choices, "recipe": recipe, "per_task": per_task, "cli": cli}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


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
    # What the run trains in, "32" or "bf16-mixed": its config's precision resolved once, when the run was made.
    # A run from before 0.2 recorded none; every run then trained in float32.
    precision: str = "32"
    # What was found in the data and said when the run began: an image in two class folders, ...
    data_warnings: list[str] = field(default_factory=list)
    # The validation images' fingerprint (xraykit.data.copies.fingerprint); empty in runs from before 0.4.
    val_fingerprint: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> RunRecord:
        if not isinstance(d, dict):
            raise XrayError(f"record must be a mapping of names to values, got {d!r}")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainConfig:
    """Every choice of a run, checked when made; saved as ``config.json``, enough to run it again."""

    data: str = option("synthetic", "Folder in the Kaggle layout, a MedMNIST .npz, 'sample' or 'synthetic'.", cli=False)
    task: str = option(
        "scratch",
        "Task: 'scratch' (Task 1.1), 'finetune' (Task 1.2: a new head on frozen pretrained layers) or "
        "'finetune-all' (every pretrained layer trains), each trained by the strategy of that name.",
        per_task=True,
    )
    backbone: str = option("resnet18", "Registered backbone (see `xraykit plugins`).")
    weights: Optional[str] = option(
        None, "Starting weights: 'imagenet', 'none' or a file PATH. Default: the task's.", per_task=True
    )
    epochs: int = option(10, "Epochs to train.")
    lr: Optional[float] = option(
        None, "Learning rate. Default: the task's (1e-3 scratch, 1e-4 finetune and finetune-all).", per_task=True
    )
    batch_size: int = option(32, "Images per training step.")
    image_size: int = option(224, "Images are resized to SIZE x SIZE.")
    progressive: Optional[int] = option(
        None,
        "Progressive resizing: the first 70% of the epochs train on images shrunk to this size (a quarter "
        "of the arithmetic at half the size), the rest at --image-size; validation is always at --image-size.",
    )
    seed: int = option(0, "Seed for init, data order, augmentation and the validation split.")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.")
    recipe: str = option(
        "report",
        "'report' (the published recipe) or 'strong' (strong augmentation, each image histogram-equalised, "
        "class weights, label smoothing, cosine lr); the options below marked 'from --recipe' follow it.",
        choices=tuple(RECIPE_CHANGES),
    )
    augment: str = option(
        "none",
        "'none', 'light' (small turns, shifts, zooms, relighting) or 'strong' "
        "(another hospital's exposure, contrast, blur, resolution, noise, borders).",
        choices=AUGMENTATIONS,
        recipe=True,
    )
    normalize: str = option(
        "dataset",
        "'dataset' (one mean and std for all images), 'image' (each image by its own) or 'equalize' "
        "(each image's histogram equalised: only the order of its intensities counts).",
        choices=NORMALIZATIONS,
        recipe=True,
    )
    label_smoothing: float = option(0.0, "Label smoothing of the loss, 0 to 0.5.", recipe=True)
    class_weights: str = option(
        "none", "'none' or 'auto' (weight classes by inverse frequency).", choices=CLASS_WEIGHTS, recipe=True
    )
    balanced_sampler: bool = option(False, "Sample classes equally often.", recipe=True)
    schedule: str = option("constant", "Learning rate schedule.", choices=SCHEDULES, recipe=True)
    select: str = option(
        "last",
        "Checkpoint used for evaluation: 'last', 'best' (lowest val loss) or 'averaged' (the mean of the weights "
        "after each of the last 30% of the epochs, BatchNorm measured again: stochastic weight averaging).",
        choices=SELECTIONS,
        recipe=True,
    )
    feature_cache: bool = option(True, "Train a frozen backbone's head on cached features (exact).")
    precision: str = option(
        "auto",
        "'32' (float32), 'bf16-mixed' (bfloat16 autocast: about 2x faster on CPUs with AVX512-BF16 and on GPUs, "
        "but measured to cost accuracy) or 'auto' (float32 today; see the performance page). What a run "
        "trained in is its record.precision.",
        choices=PRECISIONS,
    )
    compile: bool = option(False, "Compile the model with torch.compile (a C++ compiler; slow to start).")
    val_from_train: Optional[float] = option(
        None, "Carve this fraction of train as validation, by patient. Default when val/ has < 100 images: 0.1."
    )
    num_classes: int = option(2, "Classes: the number of class folders.", cli=False)
    classes: list[str] = option([], "Class names, in label order.", cli=False)
    record: RunRecord = field(default_factory=RunRecord, metadata={"cli": False})

    def __post_init__(self) -> None:
        if isinstance(self.augment, bool):  # config.json before 0.2, and the API's True/False
            self.augment = "light" if self.augment else "none"
        if isinstance(self.precision, int) and not isinstance(self.precision, bool):  # the API's precision=32
            self.precision = str(self.precision)
        for f in dataclasses.fields(self):  # what each declaration says: its choices, or true/false
            value = getattr(self, f.name)
            if f.metadata.get("choices"):
                _one_of(f.name, value, f.metadata["choices"])
            elif f.type == "bool":
                _require(f.name, value, isinstance(value, bool), "true or false")
        for name in ("data", "task", "backbone"):
            _require(name, getattr(self, name), isinstance(getattr(self, name), str), "a name")
        _require("weights", self.weights, self.weights is None or isinstance(self.weights, str), "a name or a path")
        smoothing_ok = _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 0.5
        _require("label_smoothing", self.label_smoothing, smoothing_ok, "a number from 0 to 0.5 (exclusive)")
        _whole("epochs", self.epochs, 1)
        _whole("batch_size", self.batch_size, 1)
        _whole("num_classes", self.num_classes, 2)
        _whole("seed", self.seed, 0)
        _whole("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if self.progressive is not None:
            _whole("progressive", self.progressive, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
            smaller = self.progressive < self.image_size
            _require("progressive", self.progressive, smaller, f"smaller than image_size {self.image_size}")
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
        """A config whose unset (``None``) recipe options (:func:`recipe_fields`) come from
        ``RECIPES[recipe]``; any option given explicitly wins. A name that is no option is refused."""
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise XrayError(f"{unknown[0]!r} is not a training option; options: {', '.join(option_names())}")
        _one_of("recipe", recipe, tuple(RECIPES))
        for key, value in RECIPES[recipe].items():
            if options.get(key) is None:
                options[key] = value
        return cls(recipe=recipe, **options)

    def with_task_defaults(self, weights: Optional[str], lr: float) -> TrainConfig:
        """The config with its task's starting ``weights`` and ``lr`` where it leaves them unset (``None``).

        Resolved once, when a run is made, so that ``config.json`` records the numbers the run used.
        """
        return self.replace(
            weights=self.weights if self.weights is not None else weights,
            lr=self.lr if self.lr is not None else lr,
        )

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


def option_names(per_task: bool = True) -> tuple[str, ...]:
    """The training options a user sets (``per_task=False``: those ``compare`` sets once for both tasks)."""
    return tuple(
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.metadata.get("cli") and (per_task or not f.metadata.get("per_task"))
    )


def recipe_fields() -> tuple[str, ...]:
    """The options a recipe sets (those declared with ``recipe=True``)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("recipe"))


# Each recipe in full: the report's settings (TrainConfig's defaults) with the recipe's changes.
RECIPES: dict[str, dict[str, Any]] = {
    name: {**{f: TrainConfig.__dataclass_fields__[f].default for f in recipe_fields()}, **changes}
    for name, changes in RECIPE_CHANGES.items()
}


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
