"""Make xraykit's built-in real chest X-rays: ``src/xraykit/data/sample/kermany-sample.npz``.

    python scripts/make_sample_dataset.py ../shared/data/chest_xray/train

Two parts, drawn from the training folder of Kermany, Zhang and Goldbaum (2018, CC BY 4.0), no
patient in both:

- **the lesson set** (``sample``): 150 train, 105 val and 240 test images, NORMAL and PNEUMONIA 1:2,
  at 128 px: what the tutorials train, fine-tune and evaluate on;
- **the source set** (``sample:source``): 2,000 train and 180 val images, 7:13, at 64 px, from other
  patients: what a source model is pretrained on, so that transfer learning can be taught offline.

Images are grouped by patient and by content (30 groups of the folder's images are byte-identical:
a copy never lands on two sides), the groups shuffled with seed 0 and taken whole until each split
holds its count. Every image is decoded by xraykit's own loader and stored as a lossless PNG, with
its original file name, so any image can be traced back to the published dataset.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from xraykit.data.folders import patient_id
from xraykit.data.images import load_image

OUT = Path(__file__).resolve().parent.parent / "src" / "xraykit" / "data" / "sample" / "kermany-sample.npz"
CLASSES = ("NORMAL", "PNEUMONIA")
# part -> (size in px, {split: (NORMAL, PNEUMONIA) images})
PARTS = {
    "lesson": (128, {"train": (50, 100), "val": (35, 70), "test": (80, 160)}),
    "source": (64, {"train": (700, 1300), "val": (60, 120)}),
}
SPLITS = ("train", "val", "test")


def groups(folder: Path) -> list[list[Path]]:
    """The folder's images in groups that must stay together: one patient's, and byte-identical copies."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    paths = sorted(folder.glob("*.jpeg"))
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        parent[find("p:" + patient_id(path.name))] = find("h:" + digest)
        parent.setdefault("f:" + path.name, "p:" + patient_id(path.name))
    together: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        together[find("f:" + path.name)].append(path)
    return [together[key] for key in sorted(together)]


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_folder", type=Path)
    args = ap.parse_args()
    rng = random.Random(0)
    pool = {}
    for cls in CLASSES:
        pool[cls] = groups(args.train_folder / cls)
        rng.shuffle(pool[cls])
    blobs, labels, names, patients, parts, splits = [], [], [], [], [], []
    for p, (size, wanted) in enumerate(PARTS.values()):
        for split, counts in wanted.items():
            for label, cls in enumerate(CLASSES):
                taken = 0
                while taken < counts[label]:
                    for path in pool[cls].pop():
                        blobs.append(png(load_image(path, size)[0].numpy()))
                        labels.append(label)
                        names.append(f"{cls}/{path.name}")
                        patients.append(patient_id(path.name))
                        parts.append(p)
                        splits.append(SPLITS.index(split))
                        taken += 1
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        OUT,
        png=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets.astype(np.int64),
        labels=np.array(labels, dtype=np.uint8),
        classes=np.array(CLASSES),
        names=np.array(names),
        patients=np.array(patients),
        parts=np.array(parts, dtype=np.uint8),
        part_names=np.array(list(PARTS)),
        splits=np.array(splits, dtype=np.uint8),
    )
    for p, part in enumerate(PARTS):
        for s, split in enumerate(SPLITS):
            chosen = [lab for lab, pa, sp in zip(labels, parts, splits) if pa == p and sp == s]
            if chosen:
                print(f"{part} {split}: {chosen.count(0)} NORMAL, {chosen.count(1)} PNEUMONIA")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
