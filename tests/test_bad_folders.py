"""Image folders people did not make: each problem is one line naming the file, or, with --skip-bad, a warning.

From the command line a bad input means exit code 2 and one line on stderr, no
traceback. ``--skip-bad`` turns unreadable files into one warning each, a count printed
at the end and kept in the run (``config.json`` and ``log.txt``), and trains on the rest.
Valid but unusual images (16-bit, RGBA, CMYK, EXIF-rotated) are no problem at all, and
hidden files (``.DS_Store``, ``._x.jpeg``, ``.ipynb_checkpoints/``) are not looked at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit.cli import app
from xraykit.data.folders import load_folder
from xraykit.errors import ImageError, XrayError, display_path

from helpers import CLASSES, S, assert_one_line_error, write_folder
from test_bad_images import jpeg_bytes, png_declaring

runner = CliRunner()


def bad_file(kind: str, folder: Path) -> Path:
    """One unreadable file of ``kind`` in ``folder``; returns its path."""
    good_jpeg = jpeg_bytes(Image.new("L", (64, 64), 128))
    if kind == "non-UTF-8 name, broken":
        raw = os.fsencode(folder) + b"/scan-\xff.jpeg"
        with open(raw, "wb") as f:
            f.write(good_jpeg[:100])
        return Path(os.fsdecode(raw))
    name, write = {
        "zero-byte file": ("zero.jpeg", lambda p: p.write_bytes(b"")),
        "truncated JPEG": ("cut.jpeg", lambda p: p.write_bytes(good_jpeg[: len(good_jpeg) // 2])),
        "text file named .jpeg": ("notes.jpeg", lambda p: p.write_text("follow-up in two weeks\n")),
        "HTML page named .jpeg": ("download.jpeg", lambda p: p.write_text("<!DOCTYPE html><html></html>")),
        "decompression bomb": ("bomb.png", lambda p: p.write_bytes(png_declaring(30_000, 30_000))),
        "symlink loop": ("loop.jpeg", lambda p: p.symlink_to(p.name)),
        "dangling symlink": ("moved.jpeg", lambda p: p.symlink_to("/nonexistent/scan.jpeg")),
        "name that looks like markup": ("scan [bold]2[red].jpeg", lambda p: p.write_bytes(b"\xff\xd8\xff")),
    }[kind]
    write(folder / name)
    return folder / name


BAD_KINDS = [
    "zero-byte file",
    "truncated JPEG",
    "text file named .jpeg",
    "HTML page named .jpeg",
    "decompression bomb",
    "symlink loop",
    "dangling symlink",
    "non-UTF-8 name, broken",
    "name that looks like markup",
]


def train_cli(data: Path, out: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "train",
            str(data),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--image-size",
            str(S),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ],
    )


def squash(text: str) -> str:
    """Terminal output without whitespace: rich wraps long lines at the console's width."""
    return "".join(text.split())


# ----------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_an_unreadable_image_stops_train_with_one_line_naming_it(tmp_path, kind):
    data = write_folder(tmp_path / "DATA")
    bad = bad_file(kind, data / "train" / "PNEUMONIA")
    result = train_cli(data, tmp_path / "run")
    line = assert_one_line_error(result, f"Error: {display_path(bad)}: ", "--skip-bad")
    line.encode("utf-8")
    assert not (tmp_path / "run" / "config.json").exists()


def test_the_error_says_how_many_files_are_unreadable(tmp_path):
    data = write_folder(tmp_path / "DATA")
    bad = [
        bad_file(kind, data / "train" / "NORMAL")
        for kind in ("zero-byte file", "truncated JPEG", "text file named .jpeg")
    ]
    with pytest.raises(
        ImageError, match=r"; 1 of 3 unreadable files here; --skip-bad leaves unreadable files out$"
    ) as exc:
        load_folder(data, image_size=S)
    assert str(exc.value).startswith(f"{min(bad)}: ")  # the first in name order: cut.jpeg


def test_skip_bad_warns_once_per_file_records_the_count_and_trains_on_the_rest(tmp_path):
    data = write_folder(tmp_path / "DATA")
    bad = [bad_file(kind, data / "train" / CLASSES[i % 2]) for i, kind in enumerate(BAD_KINDS)]
    result = train_cli(data, tmp_path / "run", "--skip-bad")
    assert result.exit_code == 0, result.output
    out = squash(result.stdout)
    for path in bad:
        assert out.count(squash(f"skipped {display_path(path)}:")) == 1, display_path(path)
    assert squash(f"Skipped {len(bad)} unreadable files") in out

    run = xraykit.Run(tmp_path / "run")
    assert len(run.record.skipped_files) == len(bad)
    assert run.record.train_images + run.record.val_images == 2 * 6
    log = (run.path / "log.txt").read_text(encoding="utf-8")
    assert f"{len(bad)} unreadable files skipped" in log
    assert all(display_path(p) in log for p in bad)


def test_skip_bad_still_refuses_a_class_left_with_no_readable_image(tmp_path):
    data = tmp_path / "DATA"
    write_folder(data)
    shutil.rmtree(data / "train" / "NORMAL")
    (data / "train" / "NORMAL").mkdir()
    bad_file("zero-byte file", data / "train" / "NORMAL")
    bad_file("truncated JPEG", data / "train" / "NORMAL")
    result = train_cli(data, tmp_path / "run", "--skip-bad")
    assert_one_line_error(result, str(data / "train" / "NORMAL"), "none of its 2 image files could be read")


def test_evaluate_with_skip_bad_warns_and_records_the_skipped_files(tiny_run, tmp_path):
    data = write_folder(tmp_path / "DATA", splits=("test",))
    bad = bad_file("truncated JPEG", data / "test" / "NORMAL")
    result = runner.invoke(
        app,
        ["evaluate", str(tiny_run.path), str(data), "--out", str(tmp_path / "eval"), "--skip-bad", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert squash(f"skipped {bad}:") in squash(result.stdout)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 12 and len(metrics["skipped_files"]) == 1


# ----------------------------------------------------------------------------- valid files and hidden files


def test_unusual_but_valid_images_load_without_complaint(tmp_path):
    data = write_folder(tmp_path / "DATA")
    folder = data / "train" / "NORMAL"
    Image.fromarray(np.arange(S * S, dtype=np.uint16).reshape(S, S) * 4).save(folder / "sixteen_bit.png")
    Image.new("RGBA", (S, S), (90, 90, 90, 128)).save(folder / "rgba.png")
    (folder / "cmyk.jpeg").write_bytes(jpeg_bytes(Image.new("L", (S, S), 90).convert("CMYK")))
    exif = Image.Exif()
    exif[0x0112] = 6
    (folder / "rotated.jpeg").write_bytes(jpeg_bytes(Image.new("L", (2 * S, S), 90), exif=exif))
    skipped = []
    splits = load_folder(data, image_size=S, skip_bad=True, on_skip=skipped.append)
    assert skipped == []
    assert splits["train"].class_counts() == {"NORMAL": 10, "PNEUMONIA": 6}


def test_hidden_files_and_folders_are_ignored(tmp_path):
    data = write_folder(tmp_path / "DATA")
    (data / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (data / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (data / "train" / "NORMAL" / "._person0_train.png").write_bytes(b"\x00\x05\x16\x07AppleDouble" + bytes(60))
    (data / "train" / ".ipynb_checkpoints").mkdir()
    (data / "train" / "NORMAL" / ".ipynb_checkpoints").mkdir()
    skipped = []
    splits = load_folder(data, image_size=S, skip_bad=True, on_skip=skipped.append)
    assert skipped == []
    assert splits["train"].classes == CLASSES
    assert all("/." not in p for p in splits["train"].paths)


def test_a_valid_image_with_a_non_utf8_name_loads(tmp_path):
    data = write_folder(tmp_path / "DATA")
    raw = os.fsencode(data / "train" / "NORMAL") + b"/caf\xe9.png"
    with open(raw, "wb") as f:
        Image.new("L", (S, S), 40).save(f, format="PNG")
    splits = load_folder(data, image_size=S)
    assert os.fsdecode(raw) in splits["train"].paths


# ----------------------------------------------------------------------------- folder structure


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path):
    data = write_folder(tmp_path / "DATA")
    (data / "train" / "COVID").mkdir()
    result = train_cli(data, tmp_path / "run", "--skip-bad")
    assert_one_line_error(result, f"{data / 'train' / 'COVID'}: no images")


def test_a_class_folder_of_other_file_types_says_which_types_it_found(tmp_path):
    data = write_folder(tmp_path / "DATA")
    (data / "train" / "COVID").mkdir()
    (data / "train" / "COVID" / "scan1.dcm").write_bytes(b"DICM")
    with pytest.raises(XrayError, match=r"COVID: no images .* it holds only \.dcm files"):
        load_folder(data, image_size=S)


def test_a_missing_train_split_is_an_error_naming_the_folder(tmp_path):
    data = write_folder(tmp_path / "DATA", splits=("val", "test"))
    result = train_cli(data, tmp_path / "run")
    assert_one_line_error(result, str(data), "train")


def test_a_missing_val_split_carves_validation_from_train(tmp_path):
    data = write_folder(tmp_path / "DATA", splits=("train", "test"))
    train, val, how = xraykit.choose_validation(load_folder(data, image_size=S), None, seed=0)
    assert len(train) + len(val) == 12 and len(val) > 0
    assert "because there is no val/" in how


def test_a_missing_test_split_is_an_error_for_evaluate(tiny_run, tmp_path):
    data = write_folder(tmp_path / "DATA", splits=("train",))
    result = runner.invoke(app, ["evaluate", str(tiny_run.path), str(data), "--out", str(tmp_path / "eval")])
    assert_one_line_error(result, f"{data}: no test split")


def test_a_split_whose_class_folders_differ_from_train_is_an_error_naming_both(tmp_path):
    data = write_folder(tmp_path / "DATA", splits=("train", "val"))
    (data / "val" / "PNEUMONIA").rename(data / "val" / "VIRAL")
    result = train_cli(data, tmp_path / "run")
    assert_one_line_error(result, str(data / "val"), "NORMAL, VIRAL", "NORMAL, PNEUMONIA")


def test_a_single_class_folder_cannot_be_trained(tmp_path):
    data = write_folder(tmp_path / "DATA")
    shutil.rmtree(data / "train" / "PNEUMONIA")
    result = train_cli(data, tmp_path / "run")
    assert_one_line_error(result, "NORMAL", "at least two")


@pytest.mark.parametrize("link", ["loop", "dangling"])
def test_a_class_folder_that_is_a_broken_link_is_an_error(tmp_path, link):
    data = write_folder(tmp_path / "DATA")
    target = "COVID" if link == "loop" else "/mnt/unmounted/COVID"
    (data / "train" / "COVID").symlink_to(target)
    result = train_cli(data, tmp_path / "run")
    assert_one_line_error(result, str(data / "train" / "COVID"), "symbolic link")


def test_a_symlink_loop_below_a_class_folder_is_not_followed(tmp_path):
    data = write_folder(tmp_path / "DATA")
    (data / "train" / "NORMAL" / "up").symlink_to("..")
    assert load_folder(data, image_size=S)["train"].class_counts() == {"NORMAL": 6, "PNEUMONIA": 6}


def test_a_class_folder_with_a_non_utf8_name_is_an_error(tmp_path):
    data = write_folder(tmp_path / "DATA")
    os.rename(data / "train" / "PNEUMONIA", os.fsencode(data / "train") + b"/PNEUMON\xcdA")
    result = train_cli(data, tmp_path / "run")
    assert_one_line_error(result, "PNEUMON\\xcdA", "not valid UTF-8")
