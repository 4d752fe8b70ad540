"""Task 1.1 (from scratch) and Task 1.2 (fine-tuning) on the same data and split, side by side.

    python examples/scratch_vs_finetune.py                       # synthetic X-rays, 64 px, 10 epochs each
    python examples/scratch_vs_finetune.py --data chest_xray     # the Kaggle folder, 224 px
    python examples/scratch_vs_finetune.py --tiny                # seconds: 64 images, 32 px, 1 epoch

Task 1.2 starts from ImageNet weights when torch's cache has them (or can download them).
Offline, it fine-tunes from the scratch run's own checkpoint instead and says so: the
mechanics (a frozen backbone, a trained head) are the same, the starting features are not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import xraykit
from xraykit import WeightsUnavailableError
from xraykit.tables import percent


def finetune_weights(scratch: xraykit.Run) -> str:
    """'imagenet' when those weights can be had, else the scratch run's last checkpoint."""
    try:
        xraykit.create_backbone("resnet18", weights="imagenet")
        return "imagenet"
    except WeightsUnavailableError as error:
        fallback = str(scratch.path / "checkpoints" / "last.pt")
        print(f"ImageNet weights unavailable ({str(error).split('(')[0].strip()});")
        print(f"fine-tuning from the scratch run's checkpoint instead: {fallback}")
        return fallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help="a Kaggle-layout folder, an .npz, or 'synthetic'")
    parser.add_argument("--image-size", type=int, default=None, help="default: 64 for synthetic, else 224")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/scratch-vs-finetune"))
    parser.add_argument("--tiny", action="store_true", help="64 synthetic images, 32 px, 1 epoch")
    args = parser.parse_args()
    data = args.data
    size = args.image_size or (64 if data.startswith("synthetic") else 224)
    if args.tiny:
        data, size, args.epochs = "synthetic:n=64", 32, 1

    # Load once, so both tasks see exactly the same images and the same validation split.
    splits = xraykit.load_data(data, image_size=size)
    scratch = xraykit.train(splits, "scratch", epochs=args.epochs, image_size=size, out=args.out / "scratch", quiet=True)
    finetune = xraykit.train(splits, "finetune", weights=finetune_weights(scratch), epochs=args.epochs,
                             image_size=size, out=args.out / "finetune", quiet=True)

    print(f"\n{'':24s} {'Task 1.1 scratch':>18s} {'Task 1.2 finetune':>18s}")
    rows = {run: xraykit.evaluate(run, splits, out=run.path, cam=False) for run in (scratch, finetune)}
    for label, key in (("test accuracy", "accuracy"), ("sensitivity", "sensitivity"), ("specificity", "specificity")):
        print(f"{label:24s} " + " ".join(f"{percent(m[key]):>18s}" for m in rows.values()))
    print(f"{'majority baseline':24s} " + " ".join(f"{percent(m['majority_baseline']['accuracy']):>18s}" for m in rows.values()))
    for label, key in (("trainable parameters", "trainable_parameters"), ("total parameters", "total_parameters")):
        print(f"{label:24s} " + " ".join(f"{getattr(run.record, key):>18,}" for run in rows))
    seconds = [sum(h["seconds"] for h in run.history) / len(run.history) for run in rows]
    print(f"{'seconds per epoch':24s} " + " ".join(f"{s:>18.2f}" for s in seconds))
    print(f"\nRun folders: {scratch.path}, {finetune.path} (loss_curves.png, metrics.json in each)")


if __name__ == "__main__":
    main()
