"""Run the real ``xraykit`` CLI on bad inputs and print what the user sees, as a Markdown table.

Each row builds one small Kaggle-layout folder (DATA/train/{NORMAL,PNEUMONIA}/*.png, six
32x32 grayscale PNGs per class) with one problem in it, in a temporary directory, runs
``xraykit train DATA --epochs 1 --image-size 32 --batch-size 4 --out OUT --seed 0`` (or the
command shown) as a subprocess and reports its exit code, whether a traceback was printed,
and the last line of stderr (for ``--skip-bad``: the warning line and the count). Two more
rows feed ``xraykit predict`` a run folder whose checkpoint is hostile or the wrong shape.

Run from the repository root, on the CPU (takes a few minutes)::

    nice -n 19 env OMP_NUM_THREADS=1 python scripts/bad_inputs_table.py > /tmp/bad_inputs_table.md
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PWNED = Path("/tmp/PWNED_xraykit")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "1000"}  # wide: rich does not wrap the lines we show


def jpeg_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **save)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares width x height 8-bit grayscale pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_folder(root: Path, splits=("train",), classes=("NORMAL", "PNEUMONIA"), n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for c, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = (rng.integers(0, 120, (32, 32)) + 100 * c).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(root / split / cls / f"person{100 * c + i}_{split}.png")
    return root


GOOD_JPEG = jpeg_bytes(Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)), mode="L"))


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    return jpeg_bytes(Image.new("L", (64, 32), 90), exif=exif)


def image_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# One bad file in train/PNEUMONIA: (row label, file name, bytes).
BAD_FILES = [
    ("zero-byte file .jpeg", "zero.jpeg", b""),
    ("truncated JPEG (first half)", "cut.jpeg", GOOD_JPEG[: len(GOOD_JPEG) // 2]),
    ("text file named .jpeg", "notes.jpeg", b"follow-up in two weeks\n"),
    ("16-bit PNG (valid)", "sixteen.png",
     image_png(Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60))),
    ("RGBA PNG (valid)", "rgba.png", image_png(Image.new("RGBA", (32, 32), (90, 90, 90, 128)))),
    ("CMYK JPEG (valid)", "cmyk.jpeg", jpeg_bytes(Image.new("L", (32, 32), 90).convert("CMYK"))),
    ("JPEG with EXIF rotation (valid)", "rotated.jpeg", exif_rotated()),
    ("decompression bomb (PNG declaring 30000x30000)", "bomb.png", png_declaring(30_000, 30_000)),
]


def folder_cases(tmp: Path):
    """Yield (label, DATA folder, extra CLI args) for every train row."""
    for i, (label, name, data) in enumerate(BAD_FILES):
        root = write_folder(tmp / f"d{i}")
        (root / "train" / "PNEUMONIA" / name).write_bytes(data)
        yield label, root, []
    root = write_folder(tmp / "empty")
    shutil.rmtree(root / "train" / "NORMAL")
    (root / "train" / "NORMAL").mkdir()
    yield "empty class folder (train/NORMAL)", root, []
    yield "missing train split (only val/, test/)", write_folder(tmp / "notrain", splits=("val", "test")), []
    root = write_folder(tmp / "mismatch")
    write_folder(root, splits=("val",), classes=("NORMAL", "COVID"))
    yield "val/ classes differ (NORMAL, COVID)", root, []
    root = write_folder(tmp / "hidden")
    (root / "train" / "PNEUMONIA" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (root / "train" / "PNEUMONIA" / "._x.jpeg").write_bytes(b"\x00\x05\x16\x07AppleDouble" + bytes(60))
    yield "hidden files (.DS_Store, ._x.jpeg)", root, []
    root = write_folder(tmp / "loop")
    (root / "train" / "PNEUMONIA" / "loop.png").symlink_to("loop.png")
    yield "symlink loop (loop.png -> loop.png)", root, []
    root = write_folder(tmp / "nonutf8")
    with open(os.fsencode(root / "train" / "PNEUMONIA") + b"/bad\xff.png", "wb") as f:
        Image.new("L", (32, 32), 200).save(f, format="PNG")
    yield "non-UTF-8 file name b'bad\\xff.png' (valid image)", root, []
    root = write_folder(tmp / "skip")
    (root / "train" / "PNEUMONIA" / "cut.jpeg").write_bytes(GOOD_JPEG[: len(GOOD_JPEG) // 2])
    yield "truncated JPEG with --skip-bad", root, ["--skip-bad"]


def run(args: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run(["xraykit", *args], capture_output=True, env=ENV)
    return proc.returncode, proc.stdout.decode(errors="backslashreplace"), proc.stderr.decode(errors="backslashreplace")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing)"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def train_args(data: Path, out: Path, extra: list[str]) -> list[str]:
    return ["train", str(data), "--epochs", "1", "--image-size", "32", "--batch-size", "4",
            "--out", str(out), "--seed", "0", *extra]


class WritesAFile:
    """Unpickling this calls exec, which would create PWNED."""
    def __reduce__(self):
        return (exec, (f"open({str(PWNED)!r}, 'w').write('pwned')",))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="xraykit-bad-") as name:
        tmp = Path(name)
        for i, (label, data, extra) in enumerate(folder_cases(tmp)):
            args = train_args(data, tmp / f"run{i}", extra)
            code, out, err = run(args)
            if "--skip-bad" in extra:
                warn = [line.strip() for line in out.splitlines()
                        if ": skipped " in line or line.startswith("Skipped ")]
                seen = "stdout: " + " / ".join(warn) if warn else last_line(err)
            else:
                seen = last_line(err) if err.strip() else "(stderr empty) stdout: " + last_line(out)
            if code == 0:  # did the odd file count? 12 plain images, plus the one added if it was used
                record = json.loads((tmp / f"run{i}" / "config.json").read_text())["record"]
                seen += f" [images used: {record['train_images'] + record['val_images']}]"
            shown = "xraykit " + " ".join(args).replace(str(tmp) + "/", "")
            rows.append((label, shown, code, seen, "Traceback" in out + err))

        # Checkpoint rows: a real tiny run, then its checkpoints replaced.
        good = tmp / "goodrun"
        code, out, err = run(train_args(write_folder(tmp / "ckdata"), good, []))
        assert code == 0, err
        image = tmp / "xray.png"
        Image.new("L", (32, 32), 90).save(image)
        state = torch.load(good / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        state["model"]["fc.weight"] = torch.zeros(3, 512)  # the model needs (2, 512)
        PWNED.unlink(missing_ok=True)
        for label, payload in [("hostile pickle as checkpoints/last.pt", {"model": WritesAFile()}),
                               ("checkpoint with fc.weight of shape (3, 512)", state)]:
            run_dir = tmp / label.split()[0]
            shutil.copytree(good, run_dir)
            for ckpt in (run_dir / "checkpoints").glob("*.pt"):  # last.pt (and best.pt if there is one)
                torch.save(payload, ckpt)
            code, out, err = run(["predict", str(run_dir), str(image)])
            seen = last_line(err)
            if label.startswith("hostile"):
                seen += f"; file created: {'yes' if PWNED.exists() else 'no'}"
            shown = f"xraykit predict {run_dir.name} xray.png"
            rows.append((label, shown, code, seen, "Traceback" in out + err))

    print("| bad input | command | exit code | what the user sees | traceback? |")
    print("|---|---|---|---|---|")
    for label, shown, code, seen, tb in rows:
        print(f"| {cell(label)} | `{cell(shown)}` | {code} | {cell(seen)} | {'yes' if tb else 'no'} |")


if __name__ == "__main__":
    main()
