"""Built-in sources of X-rays: image folders, MedMNIST ``.npz`` files, the synthetic generator, the real sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from ..data.folders import load_folder
from ..data.medmnist import load_npz
from ..data.sample import load_sample
from ..data.synthetic import synthetic_splits
from ..errors import XrayError
from ..hookspecs import hookimpl
from ..interfaces import DatasetSource, XrayData


def _synthetic_options(location: str) -> dict[str, Any]:
    """``synthetic`` or ``synthetic:n=800,seed=1,contrast=0.3``."""
    options: dict[str, Any] = {}
    _, _, rest = location.partition(":")
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        key = {"contrast": "lesion_contrast"}.get(key.strip(), key.strip())
        if key not in ("n", "seed", "lesion_contrast"):
            raise XrayError(f"{location}: unknown synthetic option '{key}' (known: n, seed, contrast)")
        try:
            options[key] = float(value) if key == "lesion_contrast" else int(value)
        except ValueError:
            raise XrayError(f"{location}: option '{key}' needs a number, got '{value}'") from None
    return options


def _load_synthetic(
    location: str, *, image_size: int, skip_bad: bool, on_skip: Optional[Callable[[str], None]]
) -> dict[str, XrayData]:
    return synthetic_splits(size=image_size, **_synthetic_options(location))


def _load_folder(
    location: str, *, image_size: int, skip_bad: bool, on_skip: Optional[Callable[[str], None]]
) -> dict[str, XrayData]:
    return load_folder(location, image_size, skip_bad, on_skip)


def _load_npz(
    location: str, *, image_size: int, skip_bad: bool, on_skip: Optional[Callable[[str], None]]
) -> dict[str, XrayData]:
    return load_npz(location, image_size)


def _load_sample(
    location: str, *, image_size: int, skip_bad: bool, on_skip: Optional[Callable[[str], None]]
) -> dict[str, XrayData]:
    _, _, part = location.partition(":")
    return load_sample(image_size, part or "lesson")


def _is_sample(location: str) -> bool:
    return location == "sample" or location.startswith("sample:")


def _is_synthetic(location: str) -> bool:
    return location == "synthetic" or location.startswith("synthetic:")


def _is_folder(location: str) -> bool:
    return Path(location).is_dir()


def _is_npz(location: str) -> bool:
    return location.endswith(".npz")


SYNTHETIC = DatasetSource(
    name="synthetic",
    can_load=_is_synthetic,
    load=_load_synthetic,
    description="built-in synthetic chest X-rays with lesion masks: synthetic or synthetic:n=640,seed=0,contrast=0.35",
)

SAMPLE = DatasetSource(
    name="sample",
    can_load=_is_sample,
    load=_load_sample,
    description="real chest X-rays shipped with xraykit (Kermany et al. 2018, CC BY 4.0), split by patient: "
    "sample (151 train, 105 val, 240 test) or sample:source (2,180 of other patients, to pretrain on)",
)

FOLDER = DatasetSource(
    name="folder",
    can_load=_is_folder,
    load=_load_folder,
    description="image folders in the Kaggle layout: DATA/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg",
)

MEDMNIST = DatasetSource(
    name="medmnist",
    can_load=_is_npz,
    load=_load_npz,
    description="MedMNIST .npz files such as pneumoniamnist_224.npz",
)


@hookimpl
def register_datasets(register):
    register(SYNTHETIC)
    register(SAMPLE)
    register(FOLDER)
    register(MEDMNIST)
