"""Measure the expected results and minutes quoted in the teaching guide (docs/teaching.md), over seeds.

    python scripts/measure_teaching_ranges.py --json benchmarks/results/teaching.json
    python scripts/measure_teaching_ranges.py --only overfit   # one exercise
    python scripts/measure_teaching_ranges.py --seeds 2        # fewer seeds, faster

Each exercise runs exactly what the guide tells students to run, through the Python API that the
command line calls, once per seed, with torch's default threads (what a student's laptop does),
one exercise at a time. It prints the smallest and largest value of each number and the minutes
each exercise took per seed; the guide quotes these. Rerun it after a change to training, data or
explainers and update the guide from its output.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import xraykit
from xraykit import plugins


def _train(out: Path, data: str, seed: int, **options) -> xraykit.Run:
    return xraykit.train(data, out=out, seed=seed, quiet=True, **options)


def _evaluated(run: xraykit.Run, data: str, tmp: Path) -> dict:
    m = xraykit.evaluate(run, data, out=tmp / "eval", cam=False, quiet=True)
    return {"accuracy": m["accuracy"], "accuracy low": m["intervals"]["accuracy"][0], "roc auc": m["roc_auc"]}


def demo(tmp: Path, seed: int) -> dict:
    """Exercise 1: `xraykit demo --seed S`: both tasks at the demo's defaults."""
    summary = xraykit.demo(tmp / f"demo-{seed}", seed=seed, quiet=True)
    t11, t12 = summary["tasks"]["Task 1.1: scratch"], summary["tasks"]["Task 1.2: finetune"]
    return {
        "task1.1 accuracy": t11["accuracy"],
        "task1.1 best-checkpoint accuracy": t11["other_checkpoint"]["accuracy"],
        "task1.2 accuracy": t12["accuracy"],
        "majority baseline": t11["majority_baseline"]["accuracy"],
    }


def overfit(tmp: Path, seed: int) -> dict:
    """Exercise 2: a quarter of sample's training images, 25 epochs, batch 8, 64 px."""
    run = _train(tmp / f"overfit-{seed}", "sample", seed, val_from_train=0.75, epochs=25, batch_size=8, image_size=64)
    h = run.history
    best = min(h, key=lambda e: e["val_loss"])
    return {
        "final train loss": h[-1]["train_loss"],
        "lowest val loss": best["val_loss"],
        "epoch of lowest val loss": best["epoch"],
        "final val loss": h[-1]["val_loss"],
    }


def underfit(tmp: Path, seed: int) -> dict:
    """Exercise 3: learning rate 1e-6 on sample at 32 px: both losses stay where they started."""
    run = _train(tmp / f"underfit-{seed}", "sample", seed, epochs=4, lr=1e-6, image_size=32)
    fixed = _train(tmp / f"fixed-{seed}", "sample", seed, epochs=4, image_size=32)
    h, f = run.history, fixed.history
    return {
        "train loss epoch 1": h[0]["train_loss"],
        "train loss epoch 4": h[-1]["train_loss"],
        "val loss epoch 4": h[-1]["val_loss"],
        "default lr: train loss epoch 4": f[-1]["train_loss"],
        "default lr: val accuracy epoch 4": f[-1]["val_accuracy"],
    }


def counting(tmp: Path, seed: int) -> dict:
    """Exercise 4: --task finetune from a checkpoint of the same backbone: what trains."""
    start = _train(tmp / f"count-start-{seed}", "sample", seed, epochs=1, image_size=32)
    weights = str(start.path / "checkpoints" / "last.pt")
    run = _train(tmp / f"count-{seed}", "sample", seed, task="finetune", weights=weights, epochs=1, image_size=32)
    return {"trainable": run.record.trainable_parameters, "total": run.record.total_parameters}


def transfer(tmp: Path, seed: int) -> dict:
    """Exercise 5: Tutorial 2 for a seed: a source on sample:source, then scratch, frozen and full fine-tuning."""
    source = _train(tmp / f"source-{seed}", "sample:source", seed, epochs=3, image_size=64)
    weights = str(source.path / "checkpoints" / "last.pt")
    result = {}
    for task, extra in (("scratch", {}), ("finetune", {"weights": weights}), ("finetune-all", {"weights": weights})):
        run = _train(tmp / f"{task}-{seed}", "sample", seed, task=task, image_size=64, **extra)
        for key, value in _evaluated(run, "sample", tmp).items():
            result[f"{task} {key}"] = value
    result["majority baseline"] = 2 / 3
    return result


def contrast(tmp: Path, seed: int) -> dict:
    """Exercise 6: tinycnn at 32 px, 10 epochs: easy lesions (contrast 0.35) against faint ones (0.15)."""
    result = {}
    for c in (0.35, 0.15):
        data = f"synthetic:n=320,contrast={c}"
        run = _train(tmp / f"contrast-{c}-{seed}", data, seed, backbone="tinycnn", epochs=10, image_size=32)
        result[f"accuracy, contrast {c}"] = _evaluated(run, data, tmp)["accuracy"]
    return result


def explanations(tmp: Path, seed: int) -> dict:
    """Exercise 7: Tutorial 4's model (640 synthetic images, 64 px) scored by every explainer."""
    data = f"synthetic:n=640,seed={seed}"
    run = _train(tmp / f"explain-{seed}", data, seed, image_size=64)
    s = xraykit.explain_score(run, data, limit=30, out=tmp / "score")
    result = {f"{method} pointing game": m["pointing_game"] for method, m in s["methods"].items()}
    result["chance"] = s["chance"]["mask_area_fraction"]
    result["called PNEUMONIA"] = s["predicted_as_target"]
    return result


def backbones(tmp: Path, seed: int) -> dict:
    """Exercise 8: tinycnn against resnet18 at 32 px on the same data: accuracy and seconds per epoch."""
    result = {}
    for name in ("tinycnn", "resnet18"):
        run = _train(tmp / f"bb-{name}-{seed}", "synthetic:n=320", seed, backbone=name, epochs=5, image_size=32)
        result[f"{name} accuracy"] = _evaluated(run, "synthetic:n=320", tmp)["accuracy"]
        result[f"{name} s/epoch"] = sum(e["seconds"] for e in run.history) / len(run.history)
    return result


def mycnn(tmp: Path, seed: int) -> dict:
    """Exercise 9: Tutorial 5's plugin (docs/tutorials/plugin.md's network, registered here) as its page trains it."""
    import importlib.util
    import re

    page = (Path(__file__).resolve().parent.parent / "docs" / "tutorials" / "plugin.md").read_text()
    source = re.search(r'```python title="xraykit_mycnn.py"\n(.*?)```', page, re.S).group(1)
    (tmp / "xraykit_mycnn.py").write_text(source)
    spec = importlib.util.spec_from_file_location("xraykit_mycnn", tmp / "xraykit_mycnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins.register(module, name=f"mycnn-{seed}")
    try:
        data = "synthetic:n=640,seed=0"
        run = _train(tmp / f"mycnn-{seed}", data, seed, backbone="mycnn", image_size=32)
        result = {"final val loss": run.history[-1]["val_loss"], **_evaluated(run, data, tmp)}
    finally:
        plugins.unregister(f"mycnn-{seed}")
    return result


def _cpu() -> str:
    """The processor's model name and core count (Linux), else what the platform says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]}, {len(names)} cores"
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


EXERCISES = {
    "demo": demo,
    "overfit": overfit,
    "underfit": underfit,
    "counting": counting,
    "transfer": transfer,
    "contrast": contrast,
    "explanations": explanations,
    "backbones": backbones,
    "mycnn": mycnn,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(EXERCISES), action="append", help="run only these exercises")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--json", type=Path, help="write every measured value here")
    args = parser.parse_args()
    raw: dict = {"machine": f"{_cpu()}, xraykit {xraykit.__version__}"}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(EXERCISES):
            numbers: dict[str, list] = {}
            minutes = []
            for seed in range(args.seeds):
                started = time.perf_counter()
                for key, value in EXERCISES[name](Path(tmp), seed).items():
                    numbers.setdefault(key, []).append(value)
                minutes.append((time.perf_counter() - started) / 60)
            raw[name] = {**numbers, "minutes per seed": minutes}
            print(f"## {name} (seeds 0-{args.seeds - 1})", flush=True)
            for key, values in raw[name].items():
                print(f"  {key}: {min(values):.3f} to {max(values):.3f}   ({', '.join(f'{v:.3f}' for v in values)})")
            if args.json:
                args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
