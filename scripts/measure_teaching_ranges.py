"""Measure the expected results quoted in the teaching guide (docs/teaching.md), over several seeds.

    python scripts/measure_teaching_ranges.py                 # every exercise, seeds 0-4 (demo: 0-2)
    python scripts/measure_teaching_ranges.py --only overfit  # one exercise
    python scripts/measure_teaching_ranges.py --seeds 2       # fewer seeds, faster

Each exercise runs exactly what the guide tells students to run, through the Python API that
the CLI calls, once per seed, and prints the smallest and largest value of each number. The
guide quotes these ranges; rerun this after a change to training, data or explainers, and
update the guide from its output (it also writes the raw numbers as JSON with --json FILE).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import xraykit


def _train(out: Path, data: str, seed: int, **options) -> xraykit.Run:
    return xraykit.train(data, out=out, seed=seed, quiet=True, **options)


def demo(tmp: Path, seed: int) -> dict:
    """Exercise 1: `xraykit demo --seed S`: both tasks at the demo's defaults, and CAM scored."""
    out = tmp / f"demo-{seed}"
    summary = xraykit.demo(out, seed=seed, quiet=True)
    t11, t12 = summary["tasks"]["Task 1.1: scratch"], summary["tasks"]["Task 1.2: finetune"]
    score = xraykit.explain_score(out / "task1.1-scratch", f"synthetic:n=640,seed={seed}", methods=["cam"])
    return {"task1.1 accuracy": t11["accuracy"], "task1.1 sensitivity": t11["sensitivity"],
            "task1.1 specificity": t11["specificity"], "task1.2 accuracy": t12["accuracy"],
            "task1.2 weights": t12["weights"], "majority baseline": t11["majority_baseline"]["accuracy"],
            "cam pointing game (task 1.1)": score["methods"]["cam"]["pointing_game"],
            "cam inside share (task 1.1)": score["methods"]["cam"]["inside_share"],
            "chance (mask area)": score["chance"]["mask_area_fraction"], "demo seconds": summary["seconds"]}


def overfit(tmp: Path, seed: int) -> dict:
    """Exercise 2: 40 training images (half of 80), 8 epochs, batch 8, 32 px: training loss falls, validation does not."""
    run = _train(tmp / f"overfit-{seed}", "synthetic:n=80", seed, task="scratch", val_from_train=0.5, epochs=8,
                 batch_size=8, image_size=32)
    h = run.history
    best = min(h, key=lambda e: e["val_loss"])
    return {"final train loss": h[-1]["train_loss"], "final val loss": h[-1]["val_loss"],
            "epoch of lowest val loss": best["epoch"], "final gap (val - train)": h[-1]["val_loss"] - h[-1]["train_loss"]}


def underfit(tmp: Path, seed: int) -> dict:
    """Exercise 3: learning rate 1e-6: both losses stay near ln 2 = 0.693."""
    run = _train(tmp / f"underfit-{seed}", "synthetic:n=160", seed, task="scratch", epochs=4, lr=1e-6, image_size=32)
    h = run.history
    return {"train loss epoch 1": h[0]["train_loss"], "train loss epoch 4": h[-1]["train_loss"],
            "val loss epoch 4": h[-1]["val_loss"]}


def contrast(tmp: Path, seed: int) -> dict:
    """Exercise 4: tinycnn at 32 px, 10 epochs: easy lesions (contrast 0.35) against faint ones (0.15)."""
    result = {}
    for c in (0.35, 0.15):
        data = f"synthetic:n=320,contrast={c}"
        run = _train(tmp / f"contrast-{c}-{seed}", data, seed, backbone="tinycnn", epochs=10, image_size=32)
        result[f"tinycnn accuracy, contrast {c}"] = xraykit.evaluate(run, data, out=tmp / "eval", cam=False)["accuracy"]
    return result


def backbones(tmp: Path, seed: int) -> dict:
    """Exercise 5: tinycnn against resnet18 at 32 px on the same data: accuracy and seconds per epoch."""
    result = {}
    for name in ("tinycnn", "resnet18"):
        run = _train(tmp / f"bb-{name}-{seed}", "synthetic:n=320", seed, backbone=name, epochs=5, image_size=32)
        m = xraykit.evaluate(run, "synthetic:n=320", out=tmp / "eval", cam=False)
        result[f"{name} accuracy"] = m["accuracy"]
        result[f"{name} s/epoch"] = sum(e["seconds"] for e in run.history) / len(run.history)
    return result


EXERCISES = {"demo": demo, "overfit": overfit, "underfit": underfit, "contrast": contrast, "backbones": backbones}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(EXERCISES), action="append", help="run only these exercises")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (the demo uses at most 3)")
    parser.add_argument("--json", type=Path, help="write every measured value here")
    args = parser.parse_args()
    raw: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(EXERCISES):
            seeds = range(min(args.seeds, 3) if name == "demo" else args.seeds)
            started = time.perf_counter()
            for seed in seeds:
                for key, value in EXERCISES[name](Path(tmp), seed).items():
                    raw.setdefault(name, {}).setdefault(key, []).append(value)
            print(f"## {name} (seeds {seeds.start}-{seeds.stop - 1}, {time.perf_counter() - started:.0f} s)")
            for key, values in raw[name].items():
                if all(isinstance(v, (int, float)) for v in values):
                    print(f"  {key}: {min(values):.3f} to {max(values):.3f}   ({', '.join(f'{v:.3f}' for v in values)})")
                else:
                    print(f"  {key}: {sorted(set(map(str, values)))}")
            if args.json:
                args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
