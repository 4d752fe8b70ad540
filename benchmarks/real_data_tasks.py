"""Task 1.1 and Task 1.2 on a real Kaggle-layout folder, with a held-out split carved by patient.

The official Kaggle test split is kept out of this repository's data, so this script carves
BOTH validation and test sets from ``train/`` (each patient on one side only), trains the
requested tasks and prints validation and test metrics and seconds per epoch.

    python benchmarks/real_data_tasks.py ../shared/data/chest_xray --image-size 128 --epochs 10

Without ImageNet weights (offline), Task 1.2 fine-tunes from this run's own Task 1.1
checkpoint instead (``--finetune-from``), and says so. Validation metrics are those of the
checkpoint the recipe keeps (last for ``report``, best validation loss for ``strong``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import xraykit
from xraykit.data.splits import patient_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--tasks", default="scratch,finetune", help="comma-separated: scratch, finetune, strong")
    ap.add_argument("--finetune-from", default="imagenet", help="'imagenet', a weights file, or 'scratch' (this run's Task 1.1)")
    ap.add_argument("--out", default="runs/real")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="evaluate a task's finished run in OUT again instead of retraining it")
    args = ap.parse_args()

    started = time.perf_counter()
    full = xraykit.load_data(args.data, args.image_size)["train"]
    print(f"decoded {len(full)} images at {args.image_size} px in {time.perf_counter() - started:.1f} s")
    # Patient-level: 10% test, then 10% of the whole (1/9 of the rest) validation.
    rest_idx, test_idx = patient_split(full, 0.1, seed=args.seed)
    rest, test = full.subset(rest_idx), full.subset(test_idx)
    train_idx, val_idx = patient_split(rest, 1 / 9, seed=args.seed + 1)
    train, val = rest.subset(train_idx), rest.subset(val_idx)
    assert not set(train.patients) & set(test.patients) and not set(val.patients) & set(test.patients)
    print(f"train {train.class_counts()}  val {val.class_counts()}  test {test.class_counts()} (by patient)")
    splits = {"train": train, "val": val, "test": test}

    out = Path(args.out)
    results = {}
    for task in args.tasks.split(","):
        label = f"{task}-{args.image_size}"
        kwargs = dict(epochs=args.epochs, image_size=args.image_size, seed=args.seed, out=out / label, quiet=True)
        done = out / label / "history.json"
        if args.reuse and done.exists() and len(json.loads(done.read_text())) == args.epochs:
            print(f"{label}: reusing the finished run in {out / label}")
            run = xraykit.Run(out / label)
        elif task == "strong":
            run = xraykit.train(splits, "scratch", recipe="strong", **kwargs)
        elif task == "finetune":
            weights = args.finetune_from
            if weights == "scratch":
                weights = str(out / f"scratch-{args.image_size}" / "checkpoints" / "last.pt")
                print(f"finetune: starting from this run's Task 1.1 checkpoint {weights} (not ImageNet)")
            run = xraykit.train(splits, "finetune", weights=weights, **kwargs)
        else:
            run = xraykit.train(splits, task, **kwargs)
        metrics = xraykit.evaluate(run, splits, cam=False)
        val_metrics = xraykit.evaluate(run, {"test": val}, cam=False, out=out / label / "val-metrics")
        history = run.history
        results[label] = {
            "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
            "final_val_loss": history[-1]["val_loss"], "final_val_accuracy": history[-1]["val_accuracy"],
            "best_val_loss": min(h["val_loss"] for h in history),
            "history": history,
            "val": {k: val_metrics[k] for k in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc")},
            "test": {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "per_class_accuracy", "sensitivity",
                                             "specificity", "roc_auc", "majority_baseline", "confusion_matrix")},
            "weights": run.record.weights_loaded, "checkpoint": metrics["checkpoint"],
        }
        print(json.dumps({label: results[label]}, indent=1))
    print(f"total {time.perf_counter() - started:.0f} s; torch threads {torch.get_num_threads()}")
    (out / f"results-{args.image_size}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
