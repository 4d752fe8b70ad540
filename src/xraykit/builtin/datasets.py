"""Built-in sources of X-rays: image folders, MedMNIST ``.npz`` files, the synthetic generator."""

from __future__ import annotations

from pathlib import Path

from ..data.folders import load_folder
from ..data.medmnist import load_npz
from ..data.synthetic import synthetic_splits
from ..errors import XrayError
from ..hookspecs import hookimpl
from ..interfaces import DatasetSource


def _synthetic_options(location: str) -> dict:
    """``synthetic`` or ``synthetic:n=800,seed=1,contrast=0.3``."""
    options: dict = {}
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


def _load_synthetic(location: str, image_size: int = 64, **_) -> dict:
    return synthetic_splits(size=image_size, **_synthetic_options(location))


SYNTHETIC = DatasetSource(
    name="synthetic",
    can_load=lambda loc: loc == "synthetic" or loc.startswith("synthetic:"),
    load=_load_synthetic,
    description="built-in synthetic chest X-rays with lesion masks: synthetic or synthetic:n=640,seed=0,contrast=0.35",
)

FOLDER = DatasetSource(
    name="folder",
    can_load=lambda loc: Path(loc).is_dir(),
    load=lambda loc, image_size=224, skip_bad=False, on_skip=None, **_: load_folder(loc, image_size, skip_bad, on_skip),
    description="image folders in the Kaggle layout: DATA/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg",
)

MEDMNIST = DatasetSource(
    name="medmnist",
    can_load=lambda loc: loc.endswith(".npz"),
    load=lambda loc, image_size=224, **_: load_npz(loc, image_size),
    description="MedMNIST .npz files such as pneumoniamnist_224.npz",
)


@hookimpl
def register_datasets(register):
    register(SYNTHETIC)
    register(FOLDER)
    register(MEDMNIST)
