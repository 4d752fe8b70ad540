"""Issue 13: the second round of bad input, damaged run folders and races.

Each row of ``CASES`` is one bad input: how to make it, the command, and the error line it
must give (exit code 2, one line, no traceback) or, for ``--skip-bad``, the skip it must
cause. Cases that need more than one command (two runs racing, a loss that diverges, a
crash during set-up followed by the rerun) are tests of their own below the table.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import sys
import threading
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

import xraykit
from xraykit import io as xio
from xraykit import loop, run_folder, training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bad_inputs_table  # noqa: E402  (the one table of bad inputs; its file makers serve these tests too)

from xraykit.cli import app
from xraykit.data.folders import list_images
from xraykit.data.images import display_path, load_image
from xraykit.errors import ImageError, XrayError
from xraykit.metrics import positive_class

from helpers import assert_one_line_error, write_folder

runner = CliRunner()
TINY = ["--epochs", "1", "--image-size", "32", "--batch-size", "4", "--seed", "0", "--quiet"]


# ----------------------------------------------------------------------------- damaged images


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


GOOD_PNG = png(np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8))


def idat_flipped(data: bytes = GOOD_PNG, count: int = 60) -> bytes:
    """60 bytes inside the IDAT chunk inverted; the chunk's CRC left as it was."""
    out = bytearray(data)
    start = data.index(b"IDAT") + 4 + 20
    for k in range(count):
        out[start + k] ^= 0xFF
    return bytes(out)


def header_claiming(width: int, height: int, data: bytes = GOOD_PNG) -> bytes:
    """The IHDR of a 64x64 PNG rewritten (with a valid CRC) to declare ``width`` x ``height``."""
    at = data.index(b"IHDR")
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return data[: at + 4] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[at + 4 + 13 + 4 :]


@pytest.mark.parametrize(
    "content",
    [idat_flipped(), header_claiming(2000, 2000)],
    ids=["idat-bytes-flipped", "header-2000x2000-for-64x64-data"],
)
def test_a_corrupt_png_is_an_image_error_not_a_half_black_image(tmp_path, content):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as exc:
        load_image(path, 32)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)


def test_display_path_escapes_a_newline_so_the_error_stays_on_one_line(tmp_path):
    path = tmp_path / "two\nlines.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        load_image(path, 32)
    assert "\n" not in str(exc.value) and "two\\nlines.png" in str(exc.value)
    assert display_path("a\tb\x1b") == "a\\tb\\x1b"


# ----------------------------------------------------------------------------- the table


def folder(tmp: Path) -> Path:
    return write_folder(tmp / "data", splits=("train", "test"))


def with_bad(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        root = folder(tmp)
        (root / "train" / "PNEUMONIA" / name).write_bytes(content)
        return root

    return make


def npz(tmp: Path, **arrays) -> Path:
    """A small PneumoniaMNIST-like file, ``arrays`` replacing its parts: the table script's own maker."""
    return bad_inputs_table.npz(tmp / "pneumoniamnist.npz", **arrays)


def weights_file(tmp: Path, change: Callable[[dict], None]) -> Path:
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    change(state)
    path = tmp / "weights.pth"
    torch.save(state, path)
    return path


def set_(key: str, value) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        state[key] = value(state[key]) if callable(value) else value

    return change


def nan_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone(memory_format=torch.contiguous_format)  # a bf16 run's weights are channels-last
    t.view(-1)[3] = math.nan
    return t


def inf_at(t: torch.Tensor) -> torch.Tensor:
    t = t.clone(memory_format=torch.contiguous_format)
    t.view(-1)[0] = math.inf
    return t


def train_cmd(make_data: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["train", str(make_data(tmp)), "--out", str(tmp / "run"), *TINY, *extra]


def with_weights(change) -> Callable[[Path], list[str]]:
    return lambda tmp: [
        "train", str(folder(tmp)), "--out", str(tmp / "run"), *TINY, "--weights", str(weights_file(tmp, change)),
    ]  # fmt: skip


def a_file(tmp: Path) -> Path:
    path = tmp / "afile"
    path.write_text("not a folder")
    return path


# (id, build the command in a temporary folder, fragments the one error line must hold)
CASES: list[tuple[str, Callable[[Path], list[str]], tuple[str, ...]]] = [
    ("png-idat-flipped", train_cmd(with_bad("flip.png", idat_flipped())), ("flip.png",)),
    ("png-header-2000x2000", train_cmd(with_bad("big.png", header_claiming(2000, 2000))), ("big.png",)),
    ("weights-nan", with_weights(set_("layer1.0.conv1.weight", nan_at)), ("'layer1.0.conv1.weight'", "1 NaN")),
    ("weights-inf", with_weights(set_("bn1.bias", inf_at)), ("'bn1.bias'", "infinite")),
    ("weights-int", with_weights(set_("conv1.weight", lambda t: t.long())), ("'conv1.weight'", "torch.int64")),
    ("weights-bool", with_weights(set_("fc.weight", lambda t: t > 0)), ()),  # the head is new: not loaded
    ("weights-bool-body", with_weights(set_("bn1.weight", lambda t: t > 0)), ("'bn1.weight'", "torch.bool")),
    ("npz-one-class", train_cmd(lambda t: npz(t, train_labels=np.zeros((12, 1), np.uint8))), ("one class",)),
    ("npz-0x0-images", train_cmd(lambda t: npz(t, train_images=np.zeros((12, 0, 0), np.uint8))), ("(0, 0) pixels",)),
    ("npz-empty-split", train_cmd(lambda t: npz(
        t, test_images=np.zeros((0, 28, 28), np.uint8), test_labels=np.zeros((0, 1), np.uint8))), ("empty test",)),
    ("synthetic-n-0", train_cmd(lambda t: "synthetic:n=0"), ("n of at least 1",)),  # type: ignore[arg-type, return-value]
    ("device-foo", train_cmd(folder, "--device", "foo"), ("device 'foo'",)),
    ("lr-nan", train_cmd(folder, "--lr", "nan"), ("lr nan",)),
    ("lr-negative", train_cmd(folder, "--lr", "-1"), ("lr -1",)),
    ("batch-size-1-at-32px", train_cmd(folder, "--batch-size", "1"), ("batches of 1", "--batch-size")),
    ("train-out-is-a-file", lambda t: ["train", str(folder(t)), "--out", str(a_file(t)), *TINY], ("is a file",)),
    ("train-out-under-a-file",
     lambda t: ["train", str(folder(t)), "--out", str(a_file(t) / "run"), *TINY], ("is a file",)),
    ("train-out-under-proc",
     lambda t: ["train", str(folder(t)), "--out", "/proc/xraykit-no/run", *TINY], ("/proc/xraykit-no/run",)),
    ("synth-out-is-a-file", lambda t: ["synth", str(a_file(t)), "--n", "4", "--size", "16"], ("not a folder",)),
    ("synth-out-under-a-file",
     lambda t: ["synth", str(a_file(t) / "x"), "--n", "4", "--size", "16"], ("cannot write",)),
    ("synth-size-100000", lambda t: ["synth", str(t / "s"), "--size", "100000"], ("size from 16 to 1024",)),
    ("synth-contrast-nan", lambda t: ["synth", str(t / "s"), "--contrast", "nan"], ("contrast", "nan")),
    ("synth-into-a-data-set", lambda t: ["synth", str(folder(t)), "--n", "4", "--size", "16"], ("already holds",)),
]  # fmt: skip


@pytest.mark.parametrize("make, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_bad_input_is_one_error_line(tmp_path, make, fragments):
    args = make(tmp_path)
    result = runner.invoke(app, args)
    if args[0] == "train" and "--weights" in args and not fragments:  # a bad head is never loaded: trains
        assert result.exit_code == 0, result.output
        return
    assert_one_line_error(result, *fragments)
    if args[0] == "train":  # a failed set-up leaves no run folder behind to block the rerun
        out = Path(args[args.index("--out") + 1])
        assert not (out / "config.json").exists() and not (out / run_folder.RUN_MARKER).exists()


def test_a_corrupt_png_is_skipped_under_skip_bad_and_recorded(tmp_path):
    data = with_bad("flip.png", idat_flipped())(tmp_path)
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), *TINY, "--skip-bad"])
    assert result.exit_code == 0, result.output
    skipped = xraykit.Run(tmp_path / "run").record.skipped_files
    assert len(skipped) == 1 and "flip.png" in skipped[0]


# ----------------------------------------------------------------------------- runs damaged, resumed, raced


@pytest.fixture(scope="module")
def good_run(module_tmp) -> Path:
    tmp = module_tmp / "good"
    out = tmp / "run"
    result = runner.invoke(app, ["train", str(folder(tmp)), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out


def copy_run(good_run: Path, tmp: Path) -> Path:
    import shutil

    dst = tmp / "copy"
    shutil.copytree(good_run, dst)
    return dst


def edit_checkpoint(run: Path, change: Callable[[dict], None]) -> None:
    for ckpt in (run / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, weights_only=True)
        change(state)
        torch.save(state, ckpt)


def nan_weights(state: dict) -> None:
    state["model"]["layer2.0.conv1.weight"][0, 0, 0, 0] = math.nan


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain"])
def test_a_checkpoint_with_nan_weights_is_refused_by_every_command(good_run, tmp_path, command):
    run = copy_run(good_run, tmp_path)
    edit_checkpoint(run, nan_weights)
    image = [tmp_path / "x.png"]
    Image.new("L", (32, 32), 90).save(image[0])
    data = str(write_folder(tmp_path / "d", splits=("test",)))
    args = {"predict": [str(run), str(image[0])], "evaluate": [str(run), data], "explain": [str(run), str(image[0])]}
    result = runner.invoke(app, [command, *args[command]])
    assert_one_line_error(result, "'layer2.0.conv1.weight'", "NaN")


def resume_args(run: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run), "--epochs", "2", "--quiet", *extra]


def drop_optimizer(state: dict) -> None:
    del state["optimizer"]


def resnet34_model(state: dict) -> None:
    torch.manual_seed(0)
    state["model"] = torchvision.models.resnet34(num_classes=2).state_dict()


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (lambda run: edit_checkpoint(run, drop_optimizer), ("last.pt", "'optimizer' is missing")),
        (lambda run: edit_checkpoint(run, resnet34_model), ("last.pt", "resnet18")),
        (lambda run: edit_checkpoint(run, nan_weights), ("last.pt", "NaN")),
        (lambda run: (run / "history.json").write_text("[{"), ("history.json", "not readable JSON")),
        (lambda run: _set_config(run, epochs="ten"), ("config.json", "epochs 'ten'")),
        (lambda run: _set_config(run, lr="fast"), ("config.json", "lr 'fast'")),
        (lambda run: _set_config(run, seed=None), ("config.json", "seed None")),
        (lambda run: _set_config(run, image_size=-5), ("config.json", "image_size -5")),
        (lambda run: _set_config(run, schedule="zigzag"), ("config.json", "schedule 'zigzag'")),
        (lambda run: (run / "config.json").write_text("[1, 2]"), ("config.json", "mapping")),
    ],
    ids=[
        "no-optimizer-state", "another-backbones-checkpoint", "nan-checkpoint", "corrupt-history",
        "epochs-ten", "lr-fast", "seed-null", "image-size-minus-5", "schedule-zigzag", "config-a-list",
    ],
)  # fmt: skip
def test_a_damaged_run_folder_is_one_error_line_on_resume(good_run, tmp_path, damage, fragments):
    run = copy_run(good_run, tmp_path)
    damage(run)
    # A finished run resumed as it is reads its history for the summary; the others continue to epoch 2.
    finished = fragments[0] == "history.json"
    result = runner.invoke(app, ["train", "--resume", str(run), "--quiet"] if finished else resume_args(run))
    assert_one_line_error(result, *fragments)


def _set_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "options, named",
    [(["--lr", "0.5"], "--lr"), (["--seed", "9"], "--seed"), (["--batch-size", "2"], "--batch-size"),
     (["--task", "finetune"], "--task"), (["--recipe", "strong"], "--recipe")],
)  # fmt: skip
def test_options_given_with_resume_are_refused_by_name(good_run, options, named):
    result = runner.invoke(app, resume_args(good_run, *options))
    assert_one_line_error(result, named, "only --epochs")


def test_other_data_given_with_resume_is_refused(good_run, tmp_path):
    other = write_folder(tmp_path / "other")
    result = runner.invoke(app, ["train", str(other), "--resume", str(good_run), "--epochs", "2", "--quiet"])
    assert_one_line_error(result, "--resume trains on the data the run recorded", str(other))


def test_the_same_data_given_with_resume_is_accepted(good_run, tmp_path):
    run = copy_run(good_run, tmp_path)
    data = xraykit.Run(run).config.data
    result = runner.invoke(app, ["train", data, "--resume", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(xraykit.Run(run).history) == 2


def test_two_runs_into_one_out_at_the_same_moment_one_wins_and_nothing_is_mixed(tmp_path):
    data = folder(tmp_path)
    out = tmp_path / "run"
    start = threading.Barrier(2)
    outcome: dict[int, object] = {}
    real_claim = training.claim_run_folder

    def claim_together(run_dir: Path) -> None:  # both have passed set-up; now they race for the folder
        start.wait(timeout=60)
        real_claim(run_dir)

    def one(seed: int) -> None:
        try:
            outcome[seed] = xraykit.train(
                str(data), epochs=1, image_size=32, batch_size=4, seed=seed, out=out, quiet=True
            )
        except XrayError as exc:
            outcome[seed] = exc

    training.claim_run_folder = claim_together  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        training.claim_run_folder = real_claim  # type: ignore[assignment]
    errors = [v for v in outcome.values() if isinstance(v, XrayError)]
    assert len(outcome) == 2 and len(errors) == 1, outcome
    assert "already holds a run" in str(errors[0])
    winner = next(seed for seed, v in outcome.items() if not isinstance(v, XrayError))
    assert json.loads((out / "config.json").read_text())["seed"] == winner
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["config"]["seed"] == winner


def test_a_loss_that_becomes_nan_stops_the_run_naming_the_epoch_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    data = folder(tmp_path)
    out = tmp_path / "run"
    monkeypatch.setattr(loop, "learning_rate", lambda base, epoch, epochs, schedule="constant": 1e38 if epoch else base)
    with pytest.raises(XrayError) as exc:
        xraykit.train(str(data), epochs=3, image_size=32, batch_size=4, out=out, quiet=True)
    message = str(exc.value)
    assert "epoch 2" in message and "\n" not in message and "lower --lr" in message
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_train_one_epoch_names_the_batch_whose_loss_is_not_finite():
    calls = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        out = torch.zeros(len(x), 2, requires_grad=True)
        return out * math.nan if len(calls) == 2 else out

    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(XrayError, match=r"at epoch 4, batch 2"):
        loop.train_one_epoch(
            forward, torch.zeros(8, 1), torch.zeros(8, dtype=torch.long), torch.arange(8), lambda x: x,
            torch.optim.SGD([param], lr=0.1), torch.nn.CrossEntropyLoss(), 4, "cpu", loop.Callbacks(), epoch=4,
        )  # fmt: skip


def test_a_failed_setup_leaves_no_folder_and_the_rerun_works(tmp_path):
    data = folder(tmp_path)
    out = tmp_path / "run"
    assert_one_line_error(runner.invoke(app, ["train", str(data), "--out", str(out), *TINY, "--batch-size", "1"]))
    assert not out.exists()
    result = runner.invoke(app, ["train", str(data), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output


def test_a_crash_in_the_first_epoch_removes_the_claim(tmp_path, monkeypatch):
    data = folder(tmp_path)
    out = tmp_path / "run"

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training, "fit", boom)
    with pytest.raises(RuntimeError):
        xraykit.train(str(data), epochs=1, image_size=32, batch_size=4, out=out, quiet=True)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path):
    result = runner.invoke(
        app, ["train", str(folder(tmp_path)), "--out", str(tmp_path / "r"), *TINY, "--device", "cuda"]
    )
    assert_one_line_error(result, "--device cuda", "no CUDA")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- classes by name, not by case


def test_class_folders_differing_in_case_keep_pneumonia_positive(tmp_path):
    for split in ("train", "test"):
        for name, shade in (("normal", 40), ("Pneumonia", 200)):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (32, 32), shade + i).save(tmp_path / split / name / f"person{shade + i}_{split}.png")
    paths, labels, classes = list_images(tmp_path / "train")
    assert classes == ("normal", "Pneumonia")
    assert positive_class(classes) == 1
    # val/ spelled another way is the same two classes, labelled as train's
    (tmp_path / "val" / "NORMAL").mkdir(parents=True)
    (tmp_path / "val" / "PNEUMONIA").mkdir(parents=True)
    Image.new("L", (32, 32), 40).save(tmp_path / "val" / "NORMAL" / "a.png")
    Image.new("L", (32, 32), 200).save(tmp_path / "val" / "PNEUMONIA" / "b.png")
    paths, labels, _ = list_images(tmp_path / "val", classes)
    assert [Path(p).parent.name for p in paths] == ["NORMAL", "PNEUMONIA"] and labels == [0, 1]


def test_positive_class_is_chosen_by_name_whatever_the_case():
    assert positive_class(("Pneumonia", "normal")) == 0
    assert positive_class(("NORMAL", "effusion")) == 1
    assert positive_class(("effusion", "normal")) == 0
    assert positive_class(("cat", "dog")) == 1
    with pytest.raises(XrayError, match="more than one"):
        positive_class(("pneumonia", "PNEUMONIA"))


def test_two_class_folders_differing_only_in_case_are_refused(tmp_path):
    for name in ("normal", "NORMAL", "PNEUMONIA"):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.new("L", (32, 32), 1).save(tmp_path / "train" / name / "a.png")
    with pytest.raises(XrayError, match="differ only in case"):
        list_images(tmp_path / "train")


# ----------------------------------------------------------------------------- explain, compare, files written


def test_explain_on_two_images_with_one_stem_writes_two_figures(good_run, tmp_path):
    for cls, shade in (("NORMAL", 40), ("PNEUMONIA", 200)):
        (tmp_path / cls).mkdir()
        Image.new("L", (32, 32), shade).save(tmp_path / cls / "x.png")
    written = xraykit.explain(
        good_run, [tmp_path / "NORMAL" / "x.png", tmp_path / "PNEUMONIA" / "x.png"], out=tmp_path / "e"
    )
    assert len({p.name for p in written}) == 2 and all(p.is_file() for p in written)
    again = xraykit.explain(good_run, [tmp_path / "NORMAL" / "x.png"] * 2, out=tmp_path / "f")
    assert len({p.name for p in again}) == 2


@pytest.mark.parametrize("command", ["evaluate", "explain"])
def test_an_out_that_is_a_file_is_one_line_for_evaluate_and_explain(good_run, tmp_path, command):
    blocker = a_file(tmp_path)
    image = tmp_path / "x.png"
    Image.new("L", (32, 32), 90).save(image)
    target = str(write_folder(tmp_path / "d", splits=("test",))) if command == "evaluate" else str(image)
    result = runner.invoke(app, [command, str(good_run), target, "--out", str(blocker / "sub")])
    assert_one_line_error(result, "cannot write")


def test_compare_checks_task_1_2s_weights_before_training_task_1_1(tmp_path):
    data = folder(tmp_path)
    result = runner.invoke(app, ["compare", str(data), "--out", str(tmp_path / "c"), *TINY])
    assert_one_line_error(result, "ImageNet weights")
    assert not (tmp_path / "c" / "task1.1-scratch").exists()


def test_compare_names_a_wrong_data_path_before_the_missing_weights(tmp_path):
    # Offline and with a typo in the path: the typo is what the user can fix now, so it is what they hear.
    result = runner.invoke(app, ["compare", str(tmp_path / "chest_xary"), "--out", str(tmp_path / "c"), *TINY])
    assert_one_line_error(result, "chest_xary: no such folder")


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    def full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file data/3")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(XrayError, match="cannot write this file.*is the disk full"):
        xio.save_torch(tmp_path / "x.pt", {"a": torch.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        xio.write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        xio.write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_json_is_strict_nan_and_infinity_become_null(tmp_path):
    xio.write_json(tmp_path / "h.json", [{"loss": math.nan, "auc": math.inf, "ok": 0.5, "n": [1.0, -math.inf]}])
    text = (tmp_path / "h.json").read_text()
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert parsed == [{"loss": None, "auc": None, "ok": 0.5, "n": [1.0, None]}]
