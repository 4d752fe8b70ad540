"""``sample``: a few hundred real chest X-rays shipped inside the package.

Synthetic X-rays are perfect for what needs a known lesion (``explain-score``) and for the
fastest runs, but they are cartoons. This sample lets the tutorials, the demo and a class show
real X-rays and real maps offline: 360 of the training images of Kermany, Zhang and Goldbaum
(2018), NORMAL and PNEUMONIA at about the folder's 1:3 balance, decoded at 128 px and split by
patient into train, val and test (``scripts/make_sample_dataset.py`` made it; each image keeps
its original file name). It is far too small for a good model: it is for seeing, not for results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..interfaces import XrayData

FILE = Path(__file__).parent / "sample" / "kermany-sample.npz"
CREDIT = (
    "sample X-rays: Kermany, Zhang and Goldbaum (2018), Labeled Optical Coherence Tomography (OCT) and "
    "Chest X-Ray Images for Classification, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2, CC BY 4.0"
)
SPLITS = ("train", "val", "test")


def load_sample(image_size: int) -> dict[str, XrayData]:
    """The sample's train, val and test splits at ``image_size`` px (stored at 128 px; resized with antialiasing)."""
    with np.load(FILE, allow_pickle=False) as f:
        images = torch.from_numpy(f["images"]).unsqueeze(1)
        labels = torch.from_numpy(f["labels"].astype(np.int64))
        classes = tuple(str(c) for c in f["classes"])
        names, patients, splits = f["names"].tolist(), f["patients"].tolist(), f["splits"]
    if images.shape[-1] != image_size:
        resized = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear", antialias=True)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    out = {}
    for index, name in enumerate(SPLITS):
        keep = np.flatnonzero(splits == index).tolist()
        out[name] = XrayData(
            images[keep],
            labels[keep],
            classes,
            patients=[patients[i] for i in keep],
            paths=[names[i] for i in keep],
        )
    return out
