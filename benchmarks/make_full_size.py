"""A folder of Kaggle-sized JPEGs for the speed benchmark, made by upscaling small ones.

The Kaggle originals are 1-channel JPEGs of about 1000-2000 px; the course's copies are
224 px. Decoding cost depends on the pixel count, not on the content, so upscaled copies
stand in for the originals::

    python benchmarks/make_full_size.py ../shared/data/chest_xray /tmp/xray-full --n 200 --width 1600 --height 1300
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="a folder in the Kaggle layout (its train/ split is read)")
    parser.add_argument("dst", help="where to write DST/train/{CLASS}/*.jpeg")
    parser.add_argument("--n", type=int, default=200, help="images in all, split evenly over the classes")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1300)
    args = parser.parse_args()

    classes = sorted(p for p in (Path(args.src) / "train").iterdir() if p.is_dir())
    for folder in classes:
        out = Path(args.dst) / "train" / folder.name
        out.mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        for path in files[: args.n // len(classes)]:
            with Image.open(path) as img:
                big = img.convert("L").resize((args.width, args.height), Image.BICUBIC)
            big.save(out / f"{path.stem}.jpeg", quality=90)
    print(f"wrote {args.dst}/train ({args.n} images of {args.width}x{args.height})")


if __name__ == "__main__":
    main()
