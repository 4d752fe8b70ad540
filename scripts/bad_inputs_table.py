"""Run the real ``xraykit`` CLI on bad inputs and print what the user sees, as a Markdown table.

The one table of every bad input the project knows. Each row builds one bad input in a
temporary directory (most are a small Kaggle-layout folder, DATA/train/{NORMAL,PNEUMONIA}/*.png,
six 32x32 grayscale PNGs per class, with one problem in it), runs the command shown as a
process of its own (``xraykit train DATA --epochs 1 --image-size 32 --batch-size 4 --out OUT --seed 0``
unless the row says otherwise; forked from one process that imported torch once, see
``cli_launcher.py``, except the rows that start two commands at once or signal one, which start
the ``xraykit`` executable itself), and reports its exit code, the last line of stderr (for
``--skip-bad``: the warning line and the count) and a verdict against what the row expects:

- ``error``: exit code 2, one line, no traceback;
- ``skip``: exit code 0 with the bad file named as skipped;
- ``valid``: exit code 0 (an unusual but valid input, used: the images-used count says so).

A traceback, or an exit code that is not what the row expects (a bad input accepted: a silent
wrong result), is a failure; the last line counts them. ``tests/test_bad_inputs_table.py`` runs
this table and requires 0 tracebacks and 0 silent wrong results.

Run from the repository root, on the CPU (takes a few minutes)::

    nice -n 19 env OMP_NUM_THREADS=1 python scripts/bad_inputs_table.py > /tmp/bad_inputs_table.md
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_launcher import Launcher  # noqa: E402

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


def png_bytes(pixels: np.ndarray) -> bytes:
    return image_png(Image.fromarray(pixels, mode="L"))


GOOD_PNG = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8))


def idat_flipped(count: int = 60) -> bytes:
    """A valid 64x64 PNG with ``count`` bytes inside its IDAT data inverted (the CRC left as it was)."""
    out = bytearray(GOOD_PNG)
    start = GOOD_PNG.index(b"IDAT") + 4 + 20
    for k in range(count):
        out[start + k] ^= 0xFF
    return bytes(out)


def header_claiming(width: int, height: int) -> bytes:
    """The 64x64 PNG with its IHDR rewritten (valid CRC) to declare ``width`` x ``height`` pixels."""
    at = GOOD_PNG.index(b"IHDR")
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return GOOD_PNG[: at + 4] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + GOOD_PNG[at + 21 :]


# One bad file in train/PNEUMONIA: (row label, file name, bytes, what must happen).
BAD_FILES = [
    ("zero-byte file .jpeg", "zero.jpeg", b"", "error"),
    ("truncated JPEG (first half)", "cut.jpeg", GOOD_JPEG[: len(GOOD_JPEG) // 2], "error"),
    ("text file named .jpeg", "notes.jpeg", b"follow-up in two weeks\n", "error"),
    ("16-bit PNG (valid)", "sixteen.png",
     image_png(Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)), "valid"),
    ("RGBA PNG (valid)", "rgba.png", image_png(Image.new("RGBA", (32, 32), (90, 90, 90, 128))), "valid"),
    ("CMYK JPEG (valid)", "cmyk.jpeg", jpeg_bytes(Image.new("L", (32, 32), 90).convert("CMYK")), "valid"),
    ("JPEG with EXIF rotation (valid)", "rotated.jpeg", exif_rotated(), "valid"),
    ("decompression bomb (PNG declaring 30000x30000)", "bomb.png", png_declaring(30_000, 30_000), "error"),
    ("PNG with 60 bytes flipped inside IDAT", "flipped.png", idat_flipped(), "error"),
    ("PNG header claiming 2000x2000 for 64x64 data", "claims.png", header_claiming(2000, 2000), "error"),
    ("newline in a file name (empty file)", "two\nlines.png", b"", "error"),
]  # fmt: skip

TRAIN_IMAGES = 12  # write_folder's six per class


@dataclass
class Row:
    label: str
    expect: str  # error, skip or valid
    args: list[str] = field(default_factory=list)  # the xraykit command, when the row is one command
    shown: str = ""
    custom: Optional[Callable[[Row], tuple[int, str, bool]]] = None  # (code, what the user sees, traceback?)
    used: Optional[Path] = None  # for a valid train row: the run whose image count to show


_launcher: Optional[Launcher] = None  # started by table()


def run(args: list[str]) -> tuple[int, str, str]:
    """``xraykit ARGS`` in a process of its own, forked from one that imported torch once (cli_launcher.py)."""
    assert _launcher is not None, "run() runs inside table()"
    return _launcher.run(args)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing)"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def train_args(data, out: Path, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return ["train", str(data), "--epochs", "1", "--image-size", "32", "--batch-size", "4",
            "--out", str(out), "--seed", "0", "--quiet", *extra]  # fmt: skip


class WritesAFile:
    """Unpickling this calls exec, which would create PWNED."""

    def __reduce__(self):
        return (exec, (f"open({str(PWNED)!r}, 'w').write('pwned')",))


def npz(path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {
        "train_images": rng.integers(0, 255, (12, 28, 28)).astype(np.uint8),
        "train_labels": np.array([[0], [1]] * 6, dtype=np.uint8),
        "test_images": rng.integers(0, 255, (4, 28, 28)).astype(np.uint8),
        "test_labels": np.array([[0], [1]] * 2, dtype=np.uint8),
    }
    base.update(arrays)
    np.savez(path, **base)
    return path


def npz_declaring(path: Path, shape: tuple[int, ...]) -> Path:
    """A small .npz whose train_images member declares ``shape`` (uint8) in its header but holds 200 KB."""
    import zipfile

    npz(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        members = {name: z.read(name) for name in z.namelist() if name != "train_images.npy"}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("train_images.npy", header.getvalue() + bytes(200_000))
    return path


def weights_file(path: Path, key: str, change: Callable[[torch.Tensor], torch.Tensor]) -> Path:
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    state[key] = change(state[key].clone())
    torch.save(state, path)
    return path


def with_value(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def change(t: torch.Tensor) -> torch.Tensor:
        t[(0,) * t.dim()] = value  # the first element, whatever the layout (a bf16 run's is channels-last)
        return t

    return change


def edit_config(run_dir: Path, **changes) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    config.update(changes)
    (run_dir / "config.json").write_text(json.dumps(config))


def edit_checkpoints(run_dir: Path, change: Callable[[dict], None]) -> None:
    for ckpt in (run_dir / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        change(state)
        torch.save(state, ckpt)


def copy_run(good: Path, dst: Path, damage: Optional[Callable[[Path], None]] = None) -> Path:
    shutil.copytree(good, dst)
    if damage:
        damage(dst)
    return dst


def short(args: list[str], tmp: Path) -> str:
    return "xraykit " + " ".join(a.replace("\n", "\\n") for a in args).replace(str(tmp) + "/", "")


def race(tmp: Path, data: Path) -> Callable[[Row], tuple[int, str, bool]]:
    """Two `train` into one --out at the same moment: one must win, the other be refused, nothing mixed."""

    def go(row: Row) -> tuple[int, str, bool]:
        out = tmp / "race"
        procs = [subprocess.Popen(["xraykit", *train_args(data, out, ["--seed", str(seed)])], env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for seed in (1, 2)]  # fmt: skip
        results = [(p.wait(), *(s.decode(errors="backslashreplace") for s in p.communicate())) for p in procs]
        codes = sorted(code for code, _, _ in results)
        refused = [last_line(err) for code, _, err in results if code == 2]
        seeds = {json.loads((out / "config.json").read_text())["seed"]} if (out / "config.json").exists() else set()
        if (out / "checkpoints" / "last.pt").exists():
            seeds.add(torch.load(out / "checkpoints" / "last.pt", weights_only=True)["config"]["seed"])
        mixed = len(seeds) != 1
        seen = f"exit codes {codes}; refused: {refused[0] if refused else '(none)'}; "
        seen += f"folder mixed: {'yes' if mixed else 'no'}"
        ok = codes == [0, 2] and not mixed
        return (2 if ok else 0), seen, any("Traceback" in o + e for _, o, e in results)

    return go


def synth_race(tmp: Path) -> Callable[[Row], tuple[int, str, bool]]:
    """Two `synth` into one new folder at the same moment: one writes its data set, the other is refused."""

    def go(row: Row) -> tuple[int, str, bool]:
        out = tmp / "synth-race"
        command = ["xraykit", "synth", str(out), "--n", "40", "--size", "32", "--seed"]
        procs = [subprocess.Popen([*command, str(seed)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for seed in (1, 2)]  # fmt: skip
        results = [(p.wait(), *(s.decode(errors="backslashreplace") for s in p.communicate())) for p in procs]
        codes = sorted(code for code, _, _ in results)
        refused = [last_line(err) for code, _, err in results if code == 2]
        images = sum(1 for p in (out / "train").rglob("*.png")) if (out / "train").is_dir() else 0
        seen = f"exit codes {codes}; refused: {refused[0] if refused else '(none)'}; training images: {images}"
        ok = codes == [0, 2] and images == 40
        return (2 if ok else 0), seen, any("Traceback" in o + e for _, o, e in results)

    return go


def narrow_terminal(row: Row) -> tuple[int, str, bool]:
    """``COLUMNS=0 xraykit plugins`` printed nothing at all."""
    done = subprocess.run(["xraykit", "plugins"], env={**ENV, "COLUMNS": "0"}, capture_output=True, text=True)
    listed = "resnet18" in done.stdout
    seen = f"exit {done.returncode}; resnet18 listed: {'yes' if listed else 'no'}"
    return (2 if done.returncode == 0 and listed else 0), seen, "Traceback" in done.stdout + done.stderr


def plugin_raises(tmp: Path) -> Callable[[Row], tuple[int, str, bool]]:
    """A backbone plugin whose build() raises: one line naming the plugin."""

    def go(row: Row) -> tuple[int, str, bool]:
        plugin = tmp / "fragile.py"
        plugin.write_text(
            "import xraykit\n"
            "def build(n):\n    raise RuntimeError('weights server unreachable')\n"
            "@xraykit.hookimpl\ndef register_backbones(register):\n"
            "    register(xraykit.Backbone(name='fragile', build=build, head='fc', stem='conv1', cam_layer=None))\n"
        )
        args = train_args(write_folder(tmp / "fragile-data"), tmp / "fragile-run", ["--backbone", "fragile"])
        done = subprocess.run(["xraykit", *args], env={**ENV, "XRAYKIT_PLUGINS": str(plugin)}, capture_output=True,
                              text=True)  # fmt: skip
        return done.returncode, last_line(done.stderr), "Traceback" in done.stdout + done.stderr

    return go


def ambiguous_sample(tmp: Path) -> Callable[[Row], tuple[int, str, bool]]:
    """``train sample`` where ./sample is a folder: the built-in images were used, the folder recorded."""

    def go(row: Row) -> tuple[int, str, bool]:
        here = tmp / "cwd"
        write_folder(here / "sample")
        args = train_args("sample", tmp / "amb-run")
        done = subprocess.run(["xraykit", *args], env=ENV, cwd=here, capture_output=True, text=True)
        return done.returncode, last_line(done.stderr), "Traceback" in done.stdout + done.stderr

    return go


def sigterm(tmp: Path) -> Callable[[Row], tuple[int, str, bool]]:
    """SIGTERM in the middle of a run: one line, checkpoints kept, then --resume finishes it."""

    def go(row: Row) -> tuple[int, str, bool]:
        out = tmp / "term"
        args = ["train", "synthetic:n=64", "--epochs", "30", "--image-size", "32", "--batch-size", "8",
                "--out", str(out), "--quiet"]  # fmt: skip
        proc = subprocess.Popen(["xraykit", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = (s.decode(errors="backslashreplace") for s in proc.communicate())
        code = proc.returncode
        again, o2, e2 = run(["train", "--resume", str(out), "--epochs", "2", "--quiet"])
        seen = f"{last_line(stderr)}; then --resume --epochs 2: exit {again}"
        return (2 if code == 130 and again == 0 else 0), seen, "Traceback" in stdout + stderr + o2 + e2

    return go


def rows(tmp: Path) -> list[Row]:
    """Every row of the table, its inputs made under ``tmp``."""
    out: list[Row] = []
    n = 0

    def train_row(label: str, data, expect: str = "error", extra: list[str] = ()) -> None:  # type: ignore[assignment]
        nonlocal n
        n += 1
        args = train_args(data, tmp / f"run{n}", list(extra))
        out.append(Row(label, expect, args, short(args, tmp), used=tmp / f"run{n}" if expect != "error" else None))

    def row(label: str, args: list[str], expect: str = "error") -> None:
        out.append(Row(label, expect, args, short(args, tmp)))

    for i, (label, name, data, expect) in enumerate(BAD_FILES):
        root = write_folder(tmp / f"d{i}")
        (root / "train" / "PNEUMONIA" / name).write_bytes(data)
        train_row(label, root, expect)
    root = write_folder(tmp / "empty")
    shutil.rmtree(root / "train" / "NORMAL")
    (root / "train" / "NORMAL").mkdir()
    train_row("empty class folder (train/NORMAL)", root)
    train_row("missing train split (only val/, test/)", write_folder(tmp / "notrain", splits=("val", "test")))
    root = write_folder(tmp / "mismatch")
    write_folder(root, splits=("val",), classes=("NORMAL", "COVID"))
    train_row("val/ classes differ (NORMAL, COVID)", root)
    root = write_folder(tmp / "hidden")
    (root / "train" / "PNEUMONIA" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (root / "train" / "PNEUMONIA" / "._x.jpeg").write_bytes(b"\x00\x05\x16\x07AppleDouble" + bytes(60))
    train_row("hidden files (.DS_Store, ._x.jpeg) (valid, ignored)", root, "valid")
    root = write_folder(tmp / "loop")
    (root / "train" / "PNEUMONIA" / "loop.png").symlink_to("loop.png")
    train_row("symlink loop (loop.png -> loop.png)", root)
    root = write_folder(tmp / "nonutf8")
    with open(os.fsencode(root / "train" / "PNEUMONIA") + b"/bad\xff.png", "wb") as f:
        Image.new("L", (32, 32), 200).save(f, format="PNG")
    train_row("non-UTF-8 file name b'bad\\xff.png' (valid image)", root, "valid")
    root = write_folder(tmp / "skip")
    (root / "train" / "PNEUMONIA" / "cut.jpeg").write_bytes(GOOD_JPEG[: len(GOOD_JPEG) // 2])
    train_row("truncated JPEG with --skip-bad", root, "skip", ["--skip-bad"])
    root = write_folder(tmp / "skipflip")
    (root / "train" / "PNEUMONIA" / "flipped.png").write_bytes(idat_flipped())
    train_row("PNG with IDAT bytes flipped, with --skip-bad", root, "skip", ["--skip-bad"])

    # Classes, data sources
    root = tmp / "cases"
    write_folder(root, classes=("normal", "Pneumonia"))
    train_row("class folders normal/ and Pneumonia/ (valid: Pneumonia stays the positive class)", root, "valid")
    root = write_folder(tmp / "dupcase")
    write_folder(root, classes=("normal",))
    train_row("class folders NORMAL/ and normal/ side by side", root)
    train_row("MedMNIST .npz with one class", npz(tmp / "one.npz", train_labels=np.zeros((12, 1), np.uint8)))
    train_row(".npz images of shape (N, 0, 0)", npz(tmp / "zero.npz", train_images=np.zeros((12, 0, 0), np.uint8)))
    train_row(".npz member declaring a 52 GB array in 200 KB", npz_declaring(tmp / "bomb.npz", (200_000, 512, 512)))
    train_row("synthetic:n=0", "synthetic:n=0")
    plain = write_folder(tmp / "plain")

    # Options and set-up
    for label, extra in [
        ("--val-from-train 0", ["--val-from-train", "0"]), ("--val-from-train 1.5", ["--val-from-train", "1.5"]),
        ("--lr -1", ["--lr", "-1"]), ("--lr nan", ["--lr", "nan"]), ("--device foo", ["--device", "foo"]),
        ("--batch-size 1 at 32 px", ["--batch-size", "1"]),
        ("a loss that diverges (--lr 1e30)", ["--lr", "1e30", "--epochs", "2"]),
    ]:  # fmt: skip
        train_row(label, plain, extra=extra)
    if not torch.cuda.is_available():
        train_row("--device cuda without CUDA", plain, extra=["--device", "cuda"])
    for key, change, label in [
        ("layer1.0.conv1.weight", with_value(float("nan")), "NaN"), ("bn1.bias", with_value(float("inf")), "inf"),
        ("conv1.weight", lambda t: t.long(), "int64"), ("bn1.weight", lambda t: t > 0, "bool"),
    ]:  # fmt: skip
        path = weights_file(tmp / f"w-{label}.pth", key, change)
        train_row(f"--weights file with a {label} tensor ({key})", plain, extra=["--weights", str(path)])
    blocker = tmp / "afile"
    blocker.write_text("a file")
    train_row("train --out that is a file", plain, extra=["--out", str(blocker)])
    train_row("train --out under a file", plain, extra=["--out", str(blocker / "run")])
    train_row("train --out under /proc", plain, extra=["--out", "/proc/xraykit/run"])
    row("synth --size 100000", ["synth", str(tmp / "s1"), "--size", "100000"])
    row("synth --contrast nan", ["synth", str(tmp / "s2"), "--contrast", "nan"])
    row("synth into an existing data set", ["synth", str(plain), "--n", "4", "--size", "16"])
    row("synth OUT that is a file", ["synth", str(blocker), "--n", "4", "--size", "16"])
    row("compare offline (no ImageNet weights for Task 1.2)",
        ["compare", str(write_folder(tmp / "cmp", splits=("train", "test"))), "--out", str(tmp / "cmp-out"),
         "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--quiet"])  # fmt: skip
    out.append(
        Row(
            "two `train` into one --out at the same moment",
            "error",
            shown="2 x " + short(train_args(plain, tmp / "race"), tmp),
            custom=race(tmp, plain),
        )
    )
    out.append(Row("SIGTERM during a run, then --resume", "error", shown="kill -TERM; xraykit train --resume term",
                   custom=sigterm(tmp)))  # fmt: skip
    out.append(Row("two `synth` into one new folder at the same moment", "error",
                   shown="2 x xraykit synth synth-race --n 40 --size 32", custom=synth_race(tmp)))  # fmt: skip
    out.append(Row("COLUMNS=0 (a width no table fits in)", "error", shown="COLUMNS=0 xraykit plugins",
                   custom=narrow_terminal))  # fmt: skip
    out.append(Row("a backbone plugin whose build() raises", "error",
                   shown="XRAYKIT_PLUGINS=fragile.py xraykit train DATA --backbone fragile",
                   custom=plugin_raises(tmp)))  # fmt: skip

    # Outputs that would land inside the data, names that are markup, a name two sources claim
    inside = write_folder(tmp / "inside", splits=("train", "test"))
    train_row("train --out DATA/train (the run would become a class)", inside, extra=["--out", str(inside / "train")])
    train_row("train --out DATA/train/NORMAL", inside, extra=["--out", str(inside / "train" / "NORMAL" / "run")])
    named = tmp / "named [v2]" / "d["
    write_folder(named / "x]", classes=("NORMAL", "PNEUMONIA [viral] <img src=x onerror=alert(1)>"))
    train_row("class folder and path that are Rich markup and HTML (valid)", named / "x]", "valid")
    out.append(Row("'sample' with a folder named sample in the working directory", "error",
                   shown="cd FOLDER-WITH-sample; xraykit train sample", custom=ambiguous_sample(tmp)))  # fmt: skip
    return out


def run_folder_rows(tmp: Path, good: Path) -> list[Row]:
    """Rows on damaged copies of a real tiny run."""
    out: list[Row] = []
    image = tmp / "xray.png"
    Image.new("L", (32, 32), 90).save(image)
    test = write_folder(tmp / "testdata", splits=("test",))

    state = torch.load(good / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    state["model"]["fc.weight"] = torch.zeros(3, 512)  # the model needs (2, 512)
    PWNED.unlink(missing_ok=True)

    def replace_with(payload):
        return lambda d: [torch.save(payload, c) for c in (d / "checkpoints").glob("*.pt")]

    def nan(st: dict) -> None:
        st["model"]["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")

    def resnet34(st: dict) -> None:
        import torchvision

        st["model"] = torchvision.models.resnet34(num_classes=2).state_dict()

    def command(label: str, damage, verb: str, *more: str) -> None:
        run_dir = copy_run(good, tmp / f"rf{len(out)}", damage)
        if verb == "predict":
            args = ["predict", str(run_dir), str(image)]
        elif verb == "evaluate":
            args = ["evaluate", str(run_dir), str(test), *more]
        elif verb == "explain":
            args = ["explain", str(run_dir), str(image), *more]
        else:
            args = ["train", "--resume", str(run_dir), "--quiet", *more]
        out.append(Row(label, "error", args, short(args, tmp)))

    command("hostile pickle as checkpoints/last.pt", replace_with({"model": WritesAFile()}), "predict")
    command("checkpoint with fc.weight of shape (3, 512)", replace_with(state), "predict")
    for verb in ("predict", "evaluate"):
        command(f"checkpoint with a NaN weight ({verb})", lambda d: edit_checkpoints(d, nan), verb)
    command("checkpoint with a NaN weight (--resume)", lambda d: edit_checkpoints(d, nan), "resume", "--epochs", "2")
    command("checkpoint without its optimizer state (--resume)",
            lambda d: edit_checkpoints(d, lambda st: st.pop("optimizer")), "resume", "--epochs", "2")  # fmt: skip
    command("another backbone's checkpoint (ResNet-34) on --resume",
            lambda d: edit_checkpoints(d, resnet34), "resume", "--epochs", "2")  # fmt: skip
    command("corrupt history.json, resuming a finished run",
            lambda d: (d / "history.json").write_text("[{"), "resume")  # fmt: skip
    for key, value in [("epochs", "ten"), ("lr", "fast"), ("seed", None), ("image_size", -5), ("schedule", "zigzag")]:
        command(f"config.json with {key}: {json.dumps(value)}", lambda d, k=key, v=value: edit_config(d, **{k: v}),
                "predict")  # fmt: skip
    command("config.json holding a list", lambda d: (d / "config.json").write_text("[1, 2]"), "predict")
    for option in (["--lr", "0.5"], ["--seed", "9"], ["--batch-size", "2"], ["--task", "finetune"]):
        command(f"--resume RUN {' '.join(option)}", None, "resume", "--epochs", "2", *option)
    run_dir = copy_run(good, tmp / "otherdata")
    args = ["train", str(write_folder(tmp / "other")), "--resume", str(run_dir), "--epochs", "2", "--quiet"]
    out.append(Row("DATA --resume RUN with other data than the run's", "error", args, short(args, tmp)))
    blocker = tmp / "afile2"
    blocker.write_text("a file")
    command("evaluate --out under a file", None, "evaluate", "--out", str(blocker / "m"))
    command("explain --out under a file", None, "explain", "--out", str(blocker / "e"))

    def two_stems(row: Row) -> tuple[int, str, bool]:
        for cls in ("NORMAL", "PNEUMONIA"):
            (tmp / "stems" / cls).mkdir(parents=True, exist_ok=True)
            Image.new("L", (32, 32), 90).save(tmp / "stems" / cls / "x.png")
        code, o, e = run(["explain", str(good), str(tmp / "stems/NORMAL/x.png"), str(tmp / "stems/PNEUMONIA/x.png"),
                          "--out", str(tmp / "stems-out")])  # fmt: skip
        figures = sorted(p.name for p in (tmp / "stems-out").glob("*.png"))
        ok = code == 0 and len(figures) == 2
        return (2 if ok else 0), f"exit {code}; figures written: {', '.join(figures)}", "Traceback" in o + e

    out.append(Row("explain on two images with the same file stem", "error",
                   shown="xraykit explain RUN stems/NORMAL/x.png stems/PNEUMONIA/x.png", custom=two_stems))  # fmt: skip

    # Outputs that would land in the data or over an input, derived files that would go stale
    into = write_folder(tmp / "into", splits=("test",))
    for verb in ("evaluate", "shift"):
        args = [verb, str(good), str(into), "--out", str(into / "test" / "PNEUMONIA")]
        out.append(Row(f"{verb} --out DATA/test/PNEUMONIA (figures would become test images)", "error", args,
                       short(args, tmp)))  # fmt: skip
    other = copy_run(good, tmp / "other-run")
    args = ["evaluate", str(good), str(into), "--out", str(other)]
    out.append(Row("evaluate runA --out runB (would replace runB's metrics.json)", "error", args, short(args, tmp)))
    Image.new("L", (32, 32), 180).save(tmp / "scan_cam.png")
    Image.new("L", (32, 32), 60).save(tmp / "scan.png")
    args = ["explain", str(good), str(tmp / "scan.png"), str(tmp / "scan_cam.png"), "--out", str(tmp)]
    out.append(Row("explain scan.png scan_cam.png --out their folder (a figure over an input)", "error", args,
                   short(args, tmp)))  # fmt: skip

    def stale_reference(row: Row) -> tuple[int, str, bool]:
        run_dir = copy_run(good, tmp / "stale")
        code1, o1, e1 = run(["shift", str(run_dir), str(into), "--out", str(tmp / "stale-1")])
        code2, o2, e2 = run(["train", "--resume", str(run_dir), "--epochs", "3", "--quiet"])
        code3, o3, e3 = run(["shift", str(run_dir), str(into), "--out", str(tmp / "stale-2")])
        kept = torch.load(run_dir / "reference-last.pt", weights_only=True).get("checkpoint_sha256")
        now = hashlib.sha256((run_dir / "checkpoints" / "last.pt").read_bytes()).hexdigest()
        ok = (code1, code2, code3) == (0, 0, 0) and kept == now
        seen = f"exit codes {code1}, {code2}, {code3}; reference of the resumed checkpoint: {'yes' if ok else 'no'}"
        return (2 if ok else 0), seen, any("Traceback" in t for t in (o1, e1, o2, e2, o3, e3))

    out.append(Row("shift, --resume --epochs 3, shift again (a stale reference)", "error",
                   shown="xraykit shift RUN DATA; xraykit train --resume RUN --epochs 3; xraykit shift RUN DATA",
                   custom=stale_reference))  # fmt: skip
    return out


def judge(row: Row, code: int, seen: str, traceback: bool) -> str:
    """``ok``, ``traceback`` or ``silent wrong`` (the outcome differs from what the row expects)."""
    if traceback:
        return "traceback"
    if row.custom is not None:  # a check of its own: 2 when it held
        return "ok" if code == 2 else "silent wrong"
    if row.expect == "error":
        return "ok" if code == 2 else "silent wrong"
    if row.expect == "skip":
        return "ok" if code == 0 and "skipped" in seen.lower() else "silent wrong"
    return "ok" if code == 0 else "silent wrong"


def execute(row: Row) -> tuple[Row, int, str, bool]:
    if row.custom is not None:
        code, seen, tb = row.custom(row)
        return row, code, seen, tb
    code, out, err = run(row.args)
    if row.expect == "skip":
        warn = [line.strip() for line in out.splitlines() if ": skipped " in line or line.startswith("Skipped ")]
        seen = "stdout: " + " / ".join(warn) if warn else last_line(err)
    else:
        seen = last_line(err) if err.strip() else "(stderr empty) stdout: " + last_line(out)
    if code == 0 and row.used is not None and (row.used / "config.json").is_file():
        record = json.loads((row.used / "config.json").read_text())["record"]
        seen += f" [images used: {record['train_images'] + record['val_images']}]"
    return row, code, seen, "Traceback" in out + err


def table(jobs: int = 2) -> tuple[list[tuple[Row, int, str, bool, str]], str]:
    """Every row run (``jobs`` at a time): ``(row, exit code, what the user sees, traceback?, verdict)``, and
    the summary line."""
    global _launcher
    _launcher = Launcher(ENV)
    try:
        return _table(jobs)
    finally:
        _launcher.close()
        _launcher = None


def _table(jobs: int) -> tuple[list[tuple[Row, int, str, bool, str]], str]:
    with tempfile.TemporaryDirectory(prefix="xraykit-bad-") as name:
        tmp = Path(name)
        good = tmp / "goodrun"
        code, out, err = run(train_args(write_folder(tmp / "ckdata"), good))
        assert code == 0, err
        todo = rows(tmp) + run_folder_rows(tmp, good)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(execute, todo))
        hostile = next(i for i, (row, *_) in enumerate(done) if row.label.startswith("hostile"))
        row, code, seen, tb = done[hostile]
        done[hostile] = (row, code, seen + f"; file created: {'yes' if PWNED.exists() else 'no'}", tb)
        if PWNED.exists():
            done[hostile] = (row, 0, done[hostile][2], tb)
    results = [(row, code, seen, tb, judge(row, code, seen, tb)) for row, code, seen, tb in done]
    tracebacks = sum(verdict == "traceback" for *_, verdict in results)
    wrong = sum(verdict == "silent wrong" for *_, verdict in results)
    counts = {kind: sum(r.expect == kind for r, *_ in results) for kind in ("error", "skip", "valid")}
    summary = (
        f"{len(results)} bad inputs: {counts['error']} must be refused in one line, {counts['skip']} skipped under "
        f"--skip-bad, {counts['valid']} valid; {tracebacks} tracebacks, {wrong} silent wrong results"
    )
    return results, summary


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    results, summary = table(jobs)
    print("| bad input | command | exit code | what the user sees | traceback? | verdict |")
    print("|---|---|---|---|---|---|")
    for row, code, seen, tb, verdict in results:
        shown, traceback = cell(row.shown), "yes" if tb else "no"
        print(f"| {cell(row.label)} | `{shown}` | {code} | {cell(seen)} | {traceback} | {verdict} |")
    print()
    print(summary)


if __name__ == "__main__":
    main()
