"""How many minutes does ``xraykit compare`` take a student, in float32 and in bfloat16, and what does it reach?

Runs the real command (``python -m xraykit compare``, both tasks, the report recipe) on a
Kaggle-layout folder made of links into ``DATA/train``: 10% of patients become ``test/``
(the carved test split of ``robustness.py`` and ``precision.py``, since the official test
split is not in this repository), the rest ``train/``, from which ``compare`` carves its own
validation by patient as it does for any folder without ``val/``. For each precision it prints
the wall-clock minutes of the whole command (decoding, both trainings, evaluation, CAMs, report),
each task's seconds per epoch, and each task's test accuracy overall and per class, with the
ratio of minutes to float32 of the same run; then Task 1.1 of one precision against the other on
the same test images (accuracy difference, bootstrap interval, McNemar's p):

    python benchmarks/compare_minutes.py ../shared/data/chest_xray     # 224 px, 10 epochs, bf16-mixed then 32

Task 1.2 starts from ImageNet weights when torch's cache holds them. Offline it needs a
stand-in (``--weights PATH``); without one, this script writes a randomly initialised
ResNet-18 state dict and passes that, and says so in its table: Task 1.2's *minutes* are then
real (the same frozen backbone, the same feature pass, the same head training) but its
accuracy is that of a linear head on random features, not of fine-tuning.

Each finished precision is written to ``benchmarks/results/compare-<size>px-<epochs>ep-<precision>-seed<k>.json``
with the machine it ran on (the seed-0 and seed-1 files named ``auto`` were run while ``auto`` meant
``bf16-mixed``; their tasks record what it resolved to), and reused on the next call (``--rerun`` to run again), so the
table can be built up over sessions. A tiny run, to see that it works (results go to --out):

    python benchmarks/compare_minutes.py ../shared/data/chest_xray --image-size 32 --epochs 1 --limit 300
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import xraykit
from xraykit.data.splits import patient_split
from xraykit.inference import predict_proba
from xraykit.uncertainty import paired_difference

sys.path.insert(0, str(Path(__file__).parent))
from precision import machine  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TASKS = {
    "task1.1-scratch": "Task 1.1: scratch",
    "task1.2-finetune": "Task 1.2: finetune",
}  # run folder: label in metrics.json


def make_folder(data: str, folder: Path, limit: int | None) -> dict[str, dict[str, int]]:
    """``folder/{train,test}/{NORMAL,PNEUMONIA}`` as links to ``data/train``'s files, test = 10% of patients."""
    full = xraykit.load_data(data, 32)["train"]  # only paths, labels and patients are used; 32 px decodes fast
    if limit:
        full = full.subset(torch.randperm(len(full), generator=torch.Generator().manual_seed(0))[:limit])
    rest_idx, test_idx = patient_split(full, 0.1, seed=0)
    counts: dict[str, dict[str, int]] = {}
    for split, idx in (("train", rest_idx), ("test", test_idx)):
        counts[split] = {c: 0 for c in full.classes}
        for i in idx:
            cls = full.classes[int(full.labels[i])]
            src = Path(full.paths[i]).resolve()
            dst = folder / split / cls / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(src)
            counts[split][cls] += 1
    return counts


def stand_in_weights(path: Path) -> Path:
    """A randomly initialised torchvision ResNet-18 state dict (seed 1234): ImageNet's shapes, not its knowledge."""
    if not path.exists():
        import torchvision

        torch.manual_seed(1234)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def run_folder(args: argparse.Namespace, precision: str) -> Path:
    return Path(args.out) / f"{args.image_size}px-{args.epochs}ep-{precision}-seed{args.seed}"


def result_file(args: argparse.Namespace, precision: str) -> Path:
    """Where one precision's result is kept: the results folder, or ``--out`` for a ``--limit`` check."""
    folder = Path(args.out) if args.limit else RESULTS
    return folder / f"compare-{args.image_size}px-{args.epochs}ep-{precision}-seed{args.seed}.json"


def paired(args: argparse.Namespace, folder: Path, precisions: list[str]) -> dict:
    """Task 1.1 of the first precision against the second on the same test images: the difference in
    accuracy, its bootstrap interval and McNemar's p (each model predicts in its own precision)."""
    test = xraykit.load_data(str(folder), args.image_size)["test"]
    correct = {}
    for precision in precisions:
        run = xraykit.Run(run_folder(args, precision) / "task1.1-scratch")
        probs = predict_proba(run.load_model(), test.images, run.backbone, precision=run.record.precision)
        correct[precision] = probs.argmax(1) == test.labels
    a, b = precisions
    return {"a": a, "b": b, "images": len(test), **paired_difference(correct[a], correct[b])}


def one(args: argparse.Namespace, folder: Path, precision: str, weights: str) -> dict:
    out = run_folder(args, precision)
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "xraykit",
        "compare",
        str(folder),
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--image-size",
        str(args.image_size),
        "--precision",
        precision,
        "--weights",
        weights,
        "--seed",
        str(args.seed),
        "--quiet",
    ]
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"compare failed with exit code {done.returncode}")
    summary = json.loads((out / "metrics.json").read_text())
    tasks = {}
    for name, label in TASKS.items():
        run = xraykit.Run(out / name)
        metrics = summary["tasks"][label]
        tasks[name] = {
            "precision": run.record.precision,  # what the run's --precision resolved to
            "epoch_seconds": [round(h["seconds"], 1) for h in run.history],
            "feature_seconds": sum(h.get("feature_seconds", 0.0) for h in run.history),
            "test": {
                k: metrics[k]
                for k in ("accuracy", "balanced_accuracy", "roc_auc", "per_class_accuracy")
                if k in metrics
            },
        }
    return {"precision": precision, "minutes": seconds / 60, "tasks": tasks, "summary": summary, "machine": machine()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--precisions", default="bf16-mixed,32")
    ap.add_argument(
        "--weights", default=None, help="Task 1.2's start: 'imagenet' or PATH; default a random stand-in (offline)"
    )
    ap.add_argument("--out", default="runs/compare-minutes")
    ap.add_argument(
        "--limit", type=int, default=None, help="use this many training images (a quick check; not saved in results)"
    )
    ap.add_argument("--seed", type=int, default=0, help="compare's --seed: init, data order and its validation split")
    ap.add_argument("--rerun", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    folder = out / ("data" if not args.limit else f"data-{args.limit}")
    counts = make_folder(args.data, folder, args.limit)
    print(f"folder {folder}: {counts}", flush=True)
    weights = args.weights or str(stand_in_weights(out / "stand-in-resnet18.pth"))
    stand_in = args.weights is None

    results = {}
    for precision in args.precisions.split(","):
        saved = result_file(args, precision)
        if saved.exists() and not args.rerun:
            print(f"{precision}: reusing {saved}")
            results[precision] = json.loads(saved.read_text())
            continue
        result = one(args, folder, precision, weights)
        result.update(counts=counts, weights="random stand-in (offline)" if stand_in else weights)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(result, indent=1))
        results[precision] = result

    ran = [p for p in results if run_folder(args, p).joinpath("task1.1-scratch", "config.json").exists()]
    if len(ran) == 2:
        d = paired(args, folder, ran)
        print(
            f"Task 1.1, {d['b']} minus {d['a']} on the same {d['images']} test images (seed {args.seed}): "
            f"{100 * d['difference']:+.1f} points "
            f"(95% interval {100 * d['interval'][0]:+.1f} to {100 * d['interval'][1]:+.1f}), "
            f"McNemar's exact p = {d['mcnemar_p']:.3f}"
        )
        for precision in ran:
            results[precision]["paired_task1.1"] = d
            saved = result_file(args, precision)
            saved.write_text(json.dumps(results[precision], indent=1))

    base = results.get("32")
    print(f"\nxraykit compare, {args.image_size} px, {args.epochs} epochs per task, seed {args.seed}, {machine()}")
    print("precision | minutes (x float32) | task | precision used | s/epoch (mean) | test acc | per class")
    for precision, r in results.items():
        ratio = f" ({base['minutes'] / r['minutes']:.2f}x)" if base else ""
        for name, t in r["tasks"].items():
            secs = t["epoch_seconds"]
            test = t["test"] or {}
            per_class = test.get("per_class_accuracy", {})
            label = name + (
                " [stand-in weights]" if name.startswith("task1.2") and "stand-in" in r.get("weights", "") else ""
            )
            print(
                f"{precision} | {r['minutes']:.1f}{ratio} | {label} | {t['precision']} | "
                f"{sum(secs) / max(1, len(secs)):.1f} | "
                f"{test.get('accuracy', float('nan')):.3f} | " + ", ".join(f"{k} {v:.3f}" for k, v in per_class.items())
            )


if __name__ == "__main__":
    main()
