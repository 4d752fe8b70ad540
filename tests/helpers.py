"""Helpers several test modules share: a small image folder, the CLI's one-line error, the backbones to test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import Phase
from PIL import Image

from xraykit import plugins

S = 32
CLASSES = ("NORMAL", "PNEUMONIA")
# What every metrics.json holds for two classes, under these plain keys.
METRIC_KEYS = (
    "accuracy", "balanced_accuracy", "per_class_accuracy", "sensitivity", "specificity", "precision", "f1",
    "roc_auc", "confusion_matrix", "threshold", "majority_baseline",
)  # fmt: skip
BACKBONES = sorted(plugins.entries("backbone"))
# Shrinking a failure would rebuild models hundreds of times (and keep them alive): report the first one.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def write_folder(root: Path, splits=("train",), n: int = 6) -> Path:
    """``n`` small PNGs per class and split, one patient each, the classes told apart by brightness."""
    rng = np.random.default_rng(0)
    for split in splits:
        for c, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 120, (S, S)) + 100 * c
                Image.fromarray(pixels.astype(np.uint8), mode="L").save(folder / f"person{100 * c + i}_{split}.png")
    return root


# A training run as small as one can be: the command-line options of the bad-input tests.
TINY = ["--epochs", "1", "--image-size", "32", "--batch-size", "4", "--seed", "0", "--quiet"]


def data_folder(tmp: Path) -> Path:
    """A small image folder with train/ and test/, under ``tmp/data``."""
    return write_folder(tmp / "data", splits=("train", "test"))


def a_file(tmp: Path) -> Path:
    """A plain file where a folder is expected."""
    path = tmp / "afile"
    path.write_text("not a folder")
    return path


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit code 2, one line on stderr starting with "Error:", no traceback; returns the line."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
