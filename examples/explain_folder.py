"""Explain every X-ray in a folder with a trained run: one overlay figure per image, and a summary.

    python examples/explain_folder.py RUN FOLDER [--method cam] [--out DIR]
    python examples/explain_folder.py --tiny      # makes a tiny run and a folder of synthetic X-rays first

Writes ``OUT/NAME_METHOD.png`` for each image (the X-ray beside its heatmap, titled with the
prediction) and ``OUT/predictions.json`` (label and probabilities per image). Images in a
folder named after a class (``.../PNEUMONIA/x.png``) are titled with that true label too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import xraykit
from xraykit.data.images import is_image_file
from xraykit.io import write_json


def tiny_setup(where: Path) -> tuple[Path, Path]:
    """A 1-epoch run on 64 synthetic X-rays, and the folder of its PNEUMONIA test images."""
    xraykit.synth(where / "xrays", n=64, size=32)
    run = xraykit.train(str(where / "xrays"), "scratch", epochs=1, image_size=32, out=where / "run", quiet=True)
    return run.path, where / "xrays" / "test" / "PNEUMONIA"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="run folder made by `xraykit train`")
    parser.add_argument("folder", nargs="?", type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--method", default="cam", help="a registered explainer (see `xraykit plugins`)")
    parser.add_argument("--out", type=Path, default=None, help="default: FOLDER-explained")
    parser.add_argument("--tiny", action="store_true", help="make a tiny run and folder first")
    args = parser.parse_args()
    if args.tiny:
        args.run, args.folder = tiny_setup(Path("explain-folder-tiny"))
    if args.run is None or args.folder is None:
        parser.error("give RUN and FOLDER, or --tiny")

    images = sorted(p for p in args.folder.rglob("*") if is_image_file(p))
    if not images:
        raise SystemExit(f"{args.folder}: no images")
    out = args.out or args.folder.with_name(args.folder.name + "-explained")
    figures = xraykit.explain(args.run, images, method=args.method, out=out)
    predictions = xraykit.predict(args.run, images)
    write_json(out / "predictions.json", predictions)
    counts: dict[str, int] = {}
    for p in predictions:
        counts[p["label"]] = counts.get(p["label"], 0) + 1
    print(f"{len(figures)} figures in {out}/ ({args.method}); predicted: "
          + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
