"""``sample`` and ``sample:source``: real chest X-rays shipped inside the package.

Synthetic X-rays are perfect for what needs a known lesion (``explain-score``) and for the
fastest runs, but they are cartoons. These let the tutorials and a class train, fine-tune and
evaluate on real X-rays offline, with models that learn: 2,675 of the training images of
Kermany, Zhang and Goldbaum (2018), in two parts that share no patient
(``scripts/make_sample_dataset.py`` made them; each image keeps its original file name):

- ``sample``, the lesson set: 151 train, 105 val and 240 test images, NORMAL and PNEUMONIA
  about 1:2, stored at 128 px;
- ``sample:source``, the source set: 2,000 train and 180 val images of other patients, stored at
  64 px, to pretrain a source model on when ImageNet's weights cannot be had (Tutorial 2).

Both are the same collection, so numbers on them flatter: the official test images were collected
apart (docs/results.md).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import XrayError
from ..interfaces import XrayData

FILE = Path(__file__).parent / "sample" / "kermany-sample.npz"
CREDIT = (
    "sample X-rays: Kermany, Zhang and Goldbaum (2018), Labeled Optical Coherence Tomography (OCT) and "
    "Chest X-Ray Images for Classification, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0"
)
SPLITS = ("train", "val", "test")
PARTS = ("lesson", "source")


def load_sample(image_size: int, part: str = "lesson") -> dict[str, XrayData]:
    """The splits of one part (``lesson``: train, val, test; ``source``: train, val) at ``image_size`` px.

    Stored as lossless PNGs (128 px for the lesson set, 64 px for the source set); resized with
    antialiasing when ``image_size`` differs.
    """
    if part not in PARTS:
        raise XrayError(f"sample:{part}: no such part of the sample (parts: sample, sample:source)")
    with np.load(FILE, allow_pickle=False) as f:
        blobs, offsets = f["png"], f["offsets"]
        chosen = np.flatnonzero(f["parts"] == PARTS.index(part))
        labels = torch.from_numpy(f["labels"][chosen].astype(np.int64))
        classes = tuple(str(c) for c in f["classes"])
        names, patients = f["names"][chosen].tolist(), f["patients"][chosen].tolist()
        splits = f["splits"][chosen]
    pixels = [np.asarray(Image.open(io.BytesIO(blobs[offsets[i] : offsets[i + 1]].tobytes()))) for i in chosen]
    images = torch.from_numpy(np.stack(pixels)).unsqueeze(1)
    if images.shape[-1] != image_size:
        resized = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear", antialias=True)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    out = {}
    for index, name in enumerate(SPLITS):
        keep = np.flatnonzero(splits == index).tolist()
        if keep:
            out[name] = XrayData(
                images[keep],
                labels[keep],
                classes,
                patients=[patients[i] for i in keep],
                paths=[names[i] for i in keep],
            )
    return out
