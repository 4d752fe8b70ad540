"""``report.md``: one page with both tasks' numbers and figures, for a class to read."""

from __future__ import annotations

from pathlib import Path

from .io import write_text

CREDIT = ("Real chest X-rays: Kermany, Zhang and Goldbaum (2018), Mendeley Data v2, "
          "doi:10.17632/rscbjbr9sj.2, CC BY 4.0.")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def write_report(path: Path, title: str, runs: dict, results: dict, notes: list[str], figures: list[tuple[str, str]]) -> None:
    first = next(iter(results.values()))
    classes = first["classes"]
    lines = [f"# {title}", ""]
    if notes:
        lines += [f"> **Note.** {n}" for n in notes] + [""]
    lines += [f"Data: `{first['data']}`. {next(iter(runs.values())).config.extra['validation']}.", ""]
    lines += ["## Test results", "",
              "| | " + " | ".join(results) + " |",
              "|---|" + "---|" * len(results)]
    rows = [("accuracy", lambda m: _pct(m["accuracy"])),
            ("balanced accuracy", lambda m: _pct(m["balanced_accuracy"]))]
    rows += [(f"accuracy on {c}", lambda m, c=c: _pct(m["per_class_accuracy"][c])) for c in classes]
    if "sensitivity" in first:
        rows += [("sensitivity", lambda m: _pct(m["sensitivity"])), ("specificity", lambda m: _pct(m["specificity"])),
                 ("F1", lambda m: _pct(m["f1"]))]
    rows += [("ROC AUC", lambda m: "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"),
             ("majority baseline", lambda m: f"{_pct(m['majority_baseline']['accuracy'])} (always {m['majority_baseline']['class']})"),
             ("trainable / total parameters", lambda m: f"{m['trainable_parameters']:,} / {m['total_parameters']:,}"),
             ("seconds per epoch", lambda m: f"{m['seconds_per_epoch']:.1f}"),
             ("starting weights", lambda m: m["weights"])]
    for name, fmt in rows:
        lines.append(f"| {name} | " + " | ".join(fmt(m) for m in results.values()) + " |")
    lines += ["", "Confusion matrices (rows: true class, columns: predicted; order " + ", ".join(classes) + "):", ""]
    for label, m in results.items():
        lines.append(f"- {label}: `{m['confusion_matrix']}`")
    lines += ["", "## Runs", ""]
    for label, run in runs.items():
        c = run.config
        lines.append(f"- {label}: `{run.path}` ({c.backbone}, {c.task}, lr {c.lr:g}, batch {c.batch_size}, "
                     f"{c.epochs} epochs, {c.image_size} px, recipe {c.recipe}, seed {c.seed})")
    lines.append("")
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    lines += ["---", "", f"Made by xraykit. {CREDIT}", ""]
    write_text(path, "\n".join(lines))
