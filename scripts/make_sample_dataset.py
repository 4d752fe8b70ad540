"""Make xraykit's built-in sample of real chest X-rays: ``src/xraykit/data/sample/kermany-sample.npz``.

    python scripts/make_sample_dataset.py ../shared/data/chest_xray/train

Patients are drawn at random (seed 0) from the training folder of Kermany, Zhang and Goldbaum
(2018, CC BY 4.0) until the sample holds about 120 NORMAL and 240 PNEUMONIA images (the
folder's 1:3 balance, roughly), then split by patient into train, val and test (60/20/20 of
each class's images), so that no patient is on two sides. Every image is decoded by xraykit's
own loader at 128 px; the file keeps each image's original name, so any image can be traced
back to the published dataset.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from xraykit.data.folders import patient_id
from xraykit.data.images import load_image

OUT = Path(__file__).resolve().parent.parent / "src" / "xraykit" / "data" / "sample" / "kermany-sample.npz"
SIZE = 128
WANTED = {"NORMAL": 120, "PNEUMONIA": 240}
SPLITS = ("train", "val", "test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_folder", type=Path)
    args = ap.parse_args()
    rng = random.Random(0)
    images, labels, names, patients, splits = [], [], [], [], []
    for label, cls in enumerate(WANTED):
        by_patient: dict[str, list[Path]] = defaultdict(list)
        for path in sorted((args.train_folder / cls).glob("*.jpeg")):
            by_patient[patient_id(path.name)].append(path)
        order = sorted(by_patient)
        rng.shuffle(order)
        chosen, count = [], 0
        for patient in order:
            if count >= WANTED[cls]:
                break
            chosen.append(patient)
            count += len(by_patient[patient])
        done = 0
        for patient in chosen:  # the first 60% of the images to train, the next 20% to val, the rest to test
            split = 0 if done < 0.6 * count else 1 if done < 0.8 * count else 2
            for path in by_patient[patient]:
                images.append(load_image(path, SIZE)[0].numpy())
                labels.append(label)
                names.append(f"{cls}/{path.name}")
                patients.append(patient)
                splits.append(split)
                done += 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT,
        images=np.stack(images).astype(np.uint8),
        labels=np.array(labels, dtype=np.uint8),
        classes=np.array(list(WANTED)),
        names=np.array(names),
        patients=np.array(patients),
        splits=np.array(splits, dtype=np.uint8),
    )
    for s, split in enumerate(SPLITS):
        counts = [sum(1 for lab, sp in zip(labels, splits) if sp == s and lab == k) for k in range(len(WANTED))]
        print(f"{split}: {counts[0]} NORMAL, {counts[1]} PNEUMONIA")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
