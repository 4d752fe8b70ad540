"""What averaging buys, over views (test-time augmentation) and over seeds (an ensemble), on real X-rays.

Task 1.1 (the report recipe) is trained on the built-in ``sample`` at 64 px for each seed (a run
already in ``--out`` is reused), then its test split (240 images) is scored plain and with
``tta=True``, as it is and under three acquisition shifts of
:data:`xraykit.data.acquisition_shifts.FAMILY`; then the seeds' runs are joined by
:func:`xraykit.ensemble` and the ensemble is scored the same way. Printed: ROC AUC, balanced
accuracy and accuracy, mean (min-max) over seeds (one number for the ensemble), and the
evaluation's seconds. One process at a time, nothing else running::

    python benchmarks/averaging.py --seeds 0,1,2 --out runs/averaging

Then, per seed, one run trained with ``select="averaged"`` (stochastic weight averaging) is scored
with its ``last`` and its ``averaged`` checkpoint in each scenario: the same training, two answers.

Results go to ``benchmarks/results/tta-64-seed<k>.json``, ``ensemble-64.json`` and ``swa-64-seed<k>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import xraykit
from xraykit.data import acquisition_shifts as shifts
from xraykit.interfaces import XrayData

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ("as it is", "gamma 1.4 + blur", "contrast -30% + noise + JPEG q30", "darker, more contrast, zoom out")


def scenario(test: XrayData, name: str) -> XrayData:
    if name == "as it is":
        return test
    images = shifts.FAMILY[name](test.images)
    return XrayData(images, test.labels, test.classes, patients=test.patients)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="runs/tta")
    args = ap.parse_args()
    test = xraykit.load_data("sample", args.image_size)["test"]
    results = []
    for seed in map(int, args.seeds.split(",")):
        folder = Path(args.out) / f"seed{seed}"
        run = xraykit.Run(folder) if (folder / "config.json").is_file() else xraykit.train(
            "sample", "scratch", epochs=args.epochs, image_size=args.image_size, seed=seed, out=folder, quiet=True,
        )  # fmt: skip
        row: dict = {"seed": seed, "xraykit": xraykit.__version__, "scenarios": {}}
        for name in SCENARIOS:
            for tta in (False, True):
                started = time.perf_counter()
                m = xraykit.evaluate(
                    run, {"test": scenario(test, name)}, tta=tta, cam=False, quiet=True,
                    out=Path(args.out) / f"seed{seed}" / "eval",
                )  # fmt: skip
                row["scenarios"].setdefault(name, {})["tta" if tta else "plain"] = {
                    "roc_auc": m["roc_auc"],
                    "balanced_accuracy": m["balanced_accuracy"],
                    "accuracy": m["accuracy"],
                    "seconds": time.perf_counter() - started,
                }
        (RESULTS / f"tta-{args.image_size}-seed{seed}.json").write_text(json.dumps(row, indent=1))
        results.append(row)
        print(f"seed {seed} done", flush=True)

    joined_folder = Path(args.out) / "ensemble"
    joined = (
        xraykit.Run(joined_folder)
        if (joined_folder / "config.json").is_file()
        else xraykit.ensemble([Path(args.out) / f"seed{r['seed']}" for r in results], out=joined_folder)
    )
    together: dict = {"members": [r["seed"] for r in results], "xraykit": xraykit.__version__, "scenarios": {}}
    for name in SCENARIOS:
        started = time.perf_counter()
        m = xraykit.evaluate(joined, {"test": scenario(test, name)}, cam=False, quiet=True, out=joined_folder / "eval")
        together["scenarios"][name] = {
            "roc_auc": m["roc_auc"],
            "balanced_accuracy": m["balanced_accuracy"],
            "accuracy": m["accuracy"],
            "seconds": time.perf_counter() - started,
        }
    (RESULTS / f"ensemble-{args.image_size}.json").write_text(json.dumps(together, indent=1))

    # Weight averaging (--select averaged): one training per seed gives both checkpoints, last and averaged,
    # so the two are compared on the same run; the averaged one costs one pass over the training images.
    swa: list[dict] = []
    for seed in map(int, args.seeds.split(",")):
        folder = Path(args.out) / f"averaged-seed{seed}"
        started = time.perf_counter()
        run = xraykit.Run(folder) if (folder / "config.json").is_file() else xraykit.train(
            "sample", "scratch", epochs=args.epochs, image_size=args.image_size, seed=seed, out=folder, quiet=True,
            select="averaged",
        )  # fmt: skip
        row = {"seed": seed, "xraykit": xraykit.__version__, "train_seconds": time.perf_counter() - started}
        for which in ("last", "averaged"):
            for name in SCENARIOS:
                m = xraykit.evaluate(
                    run, {"test": scenario(test, name)}, which=which, cam=False, quiet=True, out=folder / "eval"
                )
                row.setdefault(which, {})[name] = {
                    "roc_auc": m["roc_auc"],
                    "balanced_accuracy": m["balanced_accuracy"],
                    "accuracy": m["accuracy"],
                }
        (RESULTS / f"swa-{args.image_size}-seed{seed}.json").write_text(json.dumps(row, indent=1))
        swa.append(row)

    def cell(values: list[float], scale: float, digits: int) -> str:
        mean = statistics.mean(values) * scale
        return f"{mean:.{digits}f} ({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})"

    print("| test images | | ROC AUC | balanced accuracy | accuracy | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in SCENARIOS:
        for how in ("plain", "tta"):
            got = [r["scenarios"][name][how] for r in results]
            print(
                f"| {name} | {how} | {cell([g['roc_auc'] for g in got], 1, 3)} "
                f"| {cell([g['balanced_accuracy'] for g in got], 100, 1)} "
                f"| {cell([g['accuracy'] for g in got], 100, 1)} "
                f"| {statistics.mean(g['seconds'] for g in got):.1f} |"
            )
        e = together["scenarios"][name]
        print(
            f"| {name} | ensemble of {len(results)} | {e['roc_auc']:.3f} | {100 * e['balanced_accuracy']:.1f} "
            f"| {100 * e['accuracy']:.1f} | {e['seconds']:.1f} |"
        )

    print("\nWeight averaging, mean (min-max) over seeds, the same runs' last and averaged checkpoints:")
    print("| test images | checkpoint | ROC AUC | balanced accuracy | accuracy |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name in SCENARIOS:
        for which in ("last", "averaged"):
            got = [r[which][name] for r in swa]
            print(
                f"| {name} | {which} | {cell([g['roc_auc'] for g in got], 1, 3)} "
                f"| {cell([g['balanced_accuracy'] for g in got], 100, 1)} "
                f"| {cell([g['accuracy'] for g in got], 100, 1)} |"
            )


if __name__ == "__main__":
    main()
