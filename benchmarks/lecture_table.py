"""The table a lecturer plans a class with: minutes and ranking of Task 1.1 (and of ``compare``) per setting.

Reads what the other benchmarks measured and kept in ``benchmarks/results`` (it trains nothing):

- ``precision-<size>px-10ep-<setting>-seed<k>.json`` from ``precision.py``: Task 1.1 with the strong
  recipe, in float32 or bfloat16, with or without progressive resizing;
- ``compare-<size>px-10ep-<precision>-seed<k>.json`` from ``compare_minutes.py``: the whole ``xraykit
  compare`` (both tasks) with the report recipe;

and prints, per image size, recipe and setting, over the seeds found: minutes (mean), test
accuracy, balanced accuracy and ROC AUC (mean and min-max), and whether the setting keeps float32's
ranking by the rule of ``auto`` (docs/performance.md): its mean AUC and its mean balanced accuracy
each at least float32's lowest seed, same size and recipe, both over at least 3 seeds. Minutes compare only between rows
measured on one machine; each row names its machine::

    python benchmarks/lecture_table.py
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PRECISION = re.compile(r"precision-(\d+)px-10ep-(.+)-seed(\d+)\.json")
COMPARE = re.compile(r"compare-(\d+)px-10ep-(.+)-seed(\d+)\.json")


def rows() -> dict[tuple[int, str, str], list[dict]]:
    """(size, recipe, setting) -> one dict per seed: minutes, compare_minutes, accuracy, balanced, auc, machine."""
    found: dict[tuple[int, str, str], list[dict]] = {}
    for path in sorted(RESULTS.glob("precision-*px-10ep-*-seed*.json")):
        m = PRECISION.fullmatch(path.name)
        if not m:
            continue
        r = json.loads(path.read_text())
        found.setdefault((int(m[1]), "strong", m[2]), []).append(
            {
                "seed": int(m[3]),
                "minutes": r["minutes"],
                "compare_minutes": None,
                "accuracy": r["accuracy"],
                "balanced": r["balanced_accuracy"],
                "auc": r["roc_auc"],
                "machine": r["machine"],
            }
        )
    for path in sorted(RESULTS.glob("compare-*px-10ep-*-seed*.json")):
        m = COMPARE.fullmatch(path.name)
        if not m:
            continue
        r = json.loads(path.read_text())
        task = r["tasks"]["task1.1-scratch"]
        setting = task["precision"]  # what it ran in ('auto' resolved, as recorded)
        found.setdefault((int(m[1]), "report", setting), []).append(
            {
                "seed": int(m[3]),
                "minutes": (sum(task["epoch_seconds"]) + task.get("feature_seconds", 0.0)) / 60,
                "compare_minutes": r["minutes"],
                "accuracy": task["test"]["accuracy"],
                "balanced": task["test"]["balanced_accuracy"],
                "auc": task["test"]["roc_auc"],
                "machine": r.get("machine", "this project's machine"),
            }
        )
    return found


def spread(values: list[float], percent: bool) -> str:
    scale, digits = (100, 1) if percent else (1, 3)
    mean, low, high = (scale * v for v in (statistics.mean(values), min(values), max(values)))
    unit = "%" if percent else ""
    return f"{mean:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f})"


def keeps_ranking(results: list[dict], float32: list[dict] | None) -> str:
    if float32 is None:
        return "no float32 to judge by"
    if len(results) < 3 or len(float32) < 3:
        return "not judged (fewer than 3 seeds)"
    auc_ok = statistics.mean(r["auc"] for r in results) >= min(r["auc"] for r in float32)
    balanced_ok = statistics.mean(r["balanced"] for r in results) >= min(r["balanced"] for r in float32)
    return (
        "yes"
        if auc_ok and balanced_ok
        else "no ("
        + ", ".join(name for name, ok in (("AUC", auc_ok), ("balanced accuracy", balanced_ok)) if not ok)
        + ")"
    )


def markdown() -> str:
    """The table in Markdown, then a line naming the machines (the docs render it from here)."""
    found = rows()
    lines = [
        "| size | recipe | setting | seeds | Task 1.1 minutes | `compare` minutes | accuracy | balanced accuracy "
        "| ROC AUC | keeps float32's ranking | machine |",
        "| ---: | --- | --- | --- | ---: | ---: | --- | --- | --- | --- | --- |",
    ]
    machines: list[str] = []
    for (size, recipe, setting), results in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], len(kv[0][2]))):
        results.sort(key=lambda r: r["seed"])
        float32 = found.get((size, recipe, "32"))
        compare = [r["compare_minutes"] for r in results if r["compare_minutes"] is not None]
        for r in results:
            if r["machine"] not in machines:
                machines.append(r["machine"])
        marks = ",".join(str(machines.index(r["machine"]) + 1) for r in results)
        lines.append(
            f"| {size} | {recipe} | `{setting}` | {','.join(str(r['seed']) for r in results)} "
            f"| {statistics.mean(r['minutes'] for r in results):.1f} "
            f"| {f'{statistics.mean(compare):.1f}' if compare else 'not measured'} "
            f"| {spread([r['accuracy'] for r in results], True)} | {spread([r['balanced'] for r in results], True)} "
            f"| {spread([r['auc'] for r in results], False)} "
            f"| {'(the baseline)' if setting == '32' else keeps_ranking(results, float32)} | {marks} |"
        )
    lines += [
        "",
        "Machines, numbered in the last column (one number per seed): "
        + "; ".join(f"{i + 1}. {m}" for i, m in enumerate(machines))
        + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    print(markdown())


if __name__ == "__main__":
    main()
