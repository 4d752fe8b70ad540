"""From what the user names (a folder, an ``.npz`` file, ``synthetic[:options]``) to its splits;
the validation split, chosen or carved by patient."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

from .. import plugins
from ..errors import XrayError
from ..interfaces import XrayData
from . import folders
from .splits import patient_split

DataLike = Union[str, Path, dict[str, XrayData]]
MIN_VAL_IMAGES = 100


def load_data(
    data: DataLike, image_size: int = 224, skip_bad: bool = False, on_skip: Optional[Callable[[str], None]] = None
) -> dict[str, XrayData]:
    """The splits at ``data``: a folder, an ``.npz`` file, ``synthetic[:options]``, or splits already loaded.

    The first registered dataset source that can read ``data`` loads it, so a plugin can add a format.

    Args:
        data: a folder in the Kaggle layout (``DATA/{train,val,test}/{NORMAL,PNEUMONIA}``), a MedMNIST
            ``.npz`` file, ``"sample"``, ``"synthetic[:n=640,seed=0,contrast=0.35]"``, or splits already
            loaded (a dict of split name to XrayData, returned as it is).
        image_size: images are resized to ``image_size`` x ``image_size`` pixels.
        skip_bad: skip unreadable image files instead of stopping at the first.
        on_skip: called with a one-line message for each file skipped; ``None``: skipped in silence.

    Returns:
        The splits by name (``"train"``, ``"val"``, ``"test"``, those the data has).

    Raises:
        XrayError: no dataset source reads ``data`` (a mistyped path), or a file that is not a readable
            image while ``skip_bad`` is off.
    """
    if isinstance(data, dict):
        return data
    source = plugins.dataset_source(str(data))
    return source.load(str(data), image_size=image_size, skip_bad=skip_bad, on_skip=on_skip)


def data_name(data: DataLike) -> str:
    """What ``config.json`` records as a run's data: an absolute path, so that ``--resume`` works from anywhere."""
    if isinstance(data, dict):
        return "in-memory"
    return str(Path(data).resolve()) if Path(data).exists() else str(data)


def data_folder(data: Union[DataLike, None]) -> Optional[Path]:
    """The folder ``data`` names, when it names one; no command writes inside it."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        return Path(data)
    return None


def left_out_of(data: Union[DataLike, None]) -> list[str]:
    """What a data folder holds that is not read (:func:`xraykit.data.folders.left_out`); nothing for other data."""
    folder = data_folder(data)
    return folders.left_out(folder) if folder is not None else []


def describe(data: DataLike) -> str:
    """``data`` as an error message names it."""
    return "the data" if isinstance(data, dict) else str(data)


def held_out_test(splits: dict[str, XrayData], where: str) -> XrayData:
    """The ``test`` split, or an error saying where it was looked for."""
    if "test" not in splits:
        raise XrayError(
            f"{where}: no test split (expected {where}/test/{{NORMAL,PNEUMONIA}}, or pass the test folder itself)"
        )
    return splits["test"]


def choose_validation(
    splits: dict[str, XrayData], val_from_train: Optional[float], seed: int
) -> tuple[XrayData, XrayData, str]:
    """``(train, val, how)``: the official val split if it is big enough, else one carved by patient.

    Carved by patient, not by image: several X-rays of one child on both sides of the split would
    flatter the validation score. An official val split of fewer than 100 images (Kaggle's has 16) is
    too few to draw a loss curve or pick a model on.

    Args:
        splits: the splits by name, as :func:`load_data` returns them; ``"train"`` is required.
        val_from_train: carve this fraction of train (between 0 and 1) as validation, even where the data
            has its own val split; ``None``: the data's val split when it has 100 images or more, else 0.1
            of train.
        seed: the seed of the carving, so that a run and its ``--resume`` see the same split.

    Returns:
        The training images, the validation images, and ``how``: one line saying which validation was
            used and why.

    Raises:
        XrayError: no train split, or too few patients in it to carve a validation split.
    """
    if "train" not in splits:
        raise XrayError("the data has no train split (expected DATA/train/{NORMAL,PNEUMONIA})")
    train = splits["train"]
    val = splits.get("val")
    if val_from_train is None and val is not None and len(val) >= MIN_VAL_IMAGES:
        return train, val, f"validation: the data's own val split ({len(val)} images)" + _missing(train, val)
    fraction = val_from_train if val_from_train is not None else 0.1
    train_idx, val_idx = patient_split(train, fraction, seed)
    if not val_idx:  # one patient per class: nothing can be held out without losing a class
        if val is not None and len(val) and val_from_train is None:
            return (
                train,
                val,
                (
                    f"validation: the data's own val split ({len(val)} images), because train/ has "
                    f"too few patients to carve {fraction:.0%} from" + _missing(train, val)
                ),
            )
        raise XrayError(
            f"train split of {len(train)} images: too few patients to carve a validation split "
            f"({fraction:.0%}) by patient; add images or a val/ folder"
        )
    if val_from_train is not None:
        why = ""
    elif val is not None:
        why = f" because val/ has {len(val)} images (fewer than {MIN_VAL_IMAGES})"
    else:
        why = " because there is no val/"
    kept, held = train.subset(train_idx), train.subset(val_idx)
    how = (
        f"validation: {len(val_idx)} images ({fraction:.0%}) carved from train by patient{why}; "
        f"{len(train_idx)} remain for training" + _missing(kept, held)
    )
    return kept, held, how


def _missing(train: XrayData, val: XrayData) -> str:
    """What a validation split without some class of the training one cannot say, or nothing."""
    counts = val.class_counts()
    absent = [c for c, n in train.class_counts().items() if n and not counts.get(c)]
    if not absent:
        return ""
    names = " or ".join(absent)
    return f"; validation holds no {names} image, so its loss and accuracy say nothing about {names}"
