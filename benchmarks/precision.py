"""Does bfloat16 learn Task 1.1 as well as float32, and how much faster? The measurement behind ``auto``.

Trains Task 1.1 with the strong recipe on the patient-level carved test split (the split of
``robustness.py``: 10% of patients for test, 1/9 of the rest for validation) in each precision
and seed, and prints per seed: seconds per epoch (and its ratio to float32 of the same seed),
test accuracy, balanced accuracy and ROC AUC; then per precision the mean and the spread
(min-max) over seeds:

    python benchmarks/precision.py ../shared/data/chest_xray            # 128 px, 10 epochs, seeds 0,1,2

Each finished (precision, seed) is written to
``benchmarks/results/precision-<size>px-<epochs>ep-<precision>-seed<k>.json`` (a ``--limit``
run's go to its ``--out`` folder instead, never into the results) and reused on the next call
(``--retrain`` to train again), so the table can be built up over several sessions; each file
records the machine it was measured on, since seconds compare only on one machine. The rule of
``auto`` (``xraykit.devices.resolve_precision``) is judged on this table and on
``compare_minutes.py``'s: the fastest precision whose mean accuracy is within float32's seed
spread, and that repeats bit for bit with the same seed (tests/test_precision.py). bfloat16
passed here (128 and 224 px, strong recipe) and failed there (224 px, the course's recipe), so
``auto`` is float32.

``--progressive 64`` trains each precision with progressive resizing from 64 px instead (the
first 70% of the epochs at 64 px, the rest at ``--image-size``), named ``...-PRECISION-progressive64-...``;
``--progressive none,64`` both ways (runs already in the results are read, not trained again).

A tiny run, to see that it works:

    python benchmarks/precision.py ../shared/data/chest_xray --image-size 32 --epochs 1 --seeds 0 --limit 200
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import xraykit
from xraykit.devices import resolve_device
from xraykit.inference import predict_proba
from xraykit.metrics import compute_metrics

sys.path.insert(0, str(Path(__file__).parent))
from robustness import carved_splits  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """The CPU's name and, on Linux, its family and model numbers: cloud CPUs often share one name
    ("AMD EPYC") across generations whose seconds differ twofold."""
    cpu = platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" in fields:
        cpu = f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    return f"{cpu}, {torch.get_num_threads()} threads"


def limited(splits: dict, limit: int) -> dict:
    """``limit`` training images drawn at random (seed 0), 100 validation images (fewer, and xraykit would
    carve its own from train), and a tenth of ``limit`` test images (at least 50)."""
    sizes = {"train": limit, "val": 100, "test": max(50, limit // 10)}
    g = torch.Generator().manual_seed(0)
    return {name: data.subset(torch.randperm(len(data), generator=g)[: sizes[name]]) for name, data in splits.items()}


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def one(args: argparse.Namespace, splits: dict, precision: str, seed: int, progressive: int | None) -> dict:
    started = time.perf_counter()
    out = Path(args.out) / f"{args.image_size}px-{precision}{tag(progressive)}-seed{seed}"
    run = xraykit.train(
        splits,
        "scratch",
        recipe="strong",
        precision=precision,
        progressive=progressive,
        epochs=args.epochs,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seed=seed,
        device=args.device,
        out=out,
        quiet=True,
        data_name=f"{args.data} (carved)",
    )
    test = splits["test"]
    device = resolve_device(args.device)
    probs = predict_proba(run.load_model(), test.images, run.backbone, device=device, precision=run.record.precision)
    metrics = compute_metrics(probs, test.labels, run.classes)
    return {
        "precision": precision,
        "progressive": progressive,
        "resolved": run.record.precision,
        "seed": seed,
        "xraykit": xraykit.__version__,
        "torch": str(torch.__version__),
        "machine": machine() if device.type == "cpu" else torch.cuda.get_device_name(device),
        "image_size": args.image_size,
        "epochs": args.epochs,
        "limit": args.limit,
        "train_images": len(splits["train"]),
        "test_images": len(test),
        "seconds_per_epoch": statistics.mean(h["seconds"] for h in run.history),
        "minutes": (time.perf_counter() - started) / 60,
        "accuracy": metrics["accuracy"],
        "balanced_accuracy": metrics["balanced_accuracy"],
        "roc_auc": metrics["roc_auc"],
    }


def tag(progressive: int | None) -> str:
    """How a run with progressive resizing from ``progressive`` px is named: ``-progressive64``, or nothing."""
    return f"-progressive{progressive}" if progressive else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="../shared/data/chest_xray")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precisions", default="32,bf16-mixed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only (a quick check)")
    ap.add_argument("--out", default="runs/precision")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument(
        "--progressive",
        default="none",
        help="progressive resizing of each run: 'none', a size to start from, or several ('none,64')",
    )
    args = ap.parse_args()

    splits = carved_splits(args.data, args.image_size)
    if args.limit:
        splits = limited(splits, args.limit)
    results_dir = Path(args.out) if args.limit else RESULTS  # a quick check's numbers are not results
    results_dir.mkdir(parents=True, exist_ok=True)
    precisions, seeds = args.precisions.split(","), [int(s) for s in args.seeds.split(",")]
    rows: dict[str, dict[int, dict]] = {}
    starts = [None if v == "none" else int(v) for v in args.progressive.split(",")]
    settings = [(p, start) for start in starts for p in precisions]
    for seed in seeds:
        for precision, progressive in settings:
            suffix = f"-limit{args.limit}" if args.limit else ""
            setting = f"{precision}{tag(progressive)}"
            name = f"precision-{args.image_size}px-{args.epochs}ep-{setting}-seed{seed}{suffix}.json"
            result_file = results_dir / name
            if result_file.is_file() and not args.retrain:
                result = json.loads(result_file.read_text())
            else:
                result = one(args, splits, precision, seed, progressive)
                result_file.write_text(json.dumps(result, indent=1))
            precision = setting
            rows.setdefault(precision, {})[seed] = result
            base = rows.get("32", {}).get(seed)
            ratio = f" ({base['seconds_per_epoch'] / result['seconds_per_epoch']:.2f}x float32)" if base else ""
            print(
                f"{precision:10} seed {seed}: {result['seconds_per_epoch']:.1f} s/epoch{ratio}; "
                f"test acc {number(result['accuracy'])}, balanced {number(result['balanced_accuracy'])}, "
                f"AUC {number(result['roc_auc'])}  [{result['machine']}]",
                flush=True,
            )

    def mean_spread(key: str, results: list[dict]) -> str:
        values = [r[key] for r in results if r[key] is not None]
        return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})" if values else "-"

    print(f"\n{args.image_size} px, {args.epochs} epochs, seeds {args.seeds}: mean (min-max over seeds)")
    print(f"{'setting':22} {'minutes':>7} {'vs 32':>6}  {'test acc':22} {'balanced acc':22} {'AUC':22}")
    base_seconds = [r["seconds_per_epoch"] for r in rows.get("32", {}).values()]
    for precision, by_seed in rows.items():
        results = list(by_seed.values())
        seconds = statistics.mean(r["seconds_per_epoch"] for r in results)
        minutes = statistics.mean(r["minutes"] for r in results)
        ratio = f"{statistics.mean(base_seconds) / seconds:.2f}x" if base_seconds else "-"
        print(
            f"{precision:22} {minutes:7.1f} {ratio:>6}  {mean_spread('accuracy', results):22} "
            f"{mean_spread('balanced_accuracy', results):22} {mean_spread('roc_auc', results)}"
        )


if __name__ == "__main__":
    main()
