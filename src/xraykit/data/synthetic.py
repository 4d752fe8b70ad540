"""Synthetic chest X-rays with known lesions: a learnable task and a ground truth for CAM.

Each image is drawn from its own random generator, seeded by ``(seed, index)``, so image
``i`` is the same whether you ask for 10 images or 10,000. A NORMAL image is a chest:
body, two dark lung fields, a brighter mediastinum and spine, faint ribs and noise. A
PNEUMONIA image adds one to three textured consolidations inside a lung field; their
union is the returned mask. ``lesion_contrast`` sets how much brighter a consolidation
is than the lung, so the task can be made as hard as a lesson needs.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn.functional as F

from ..interfaces import XrayData

CLASSES = ("NORMAL", "PNEUMONIA")
SYNTH_MARKER = ".xraykit-synth"  # held by the one `synth` writing a folder, removed when it is done


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a 2-D tensor (separable, reflect padding)."""
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    y = x[None, None]
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return y[0, 0]


def _ellipse(xx, yy, cx, cy, rx, ry):
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """One draw from ``g``, uniform between ``lo`` and ``hi``."""
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _start(index: int, seed: int, pneumonia_fraction: float):
    """Image ``index``'s own generator, a uniform draw on it, and its label (the first draw)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    u = partial(_uniform, g)
    label = int(torch.rand((), generator=g).item() < pneumonia_fraction)
    return g, u, label


def _chest(xx: torch.Tensor, yy: torch.Tensor, u) -> tuple[torch.Tensor, torch.Tensor]:
    """The body (a soft-tissue ellipse on dark air) and two lung fields, slightly different each time."""
    body = _ellipse(xx, yy, 0, u(0.0, 0.1), u(0.82, 0.95), u(1.05, 1.25)) < 1
    lungs = torch.zeros(xx.shape, dtype=torch.bool)
    for side in (-1, 1):
        lungs |= _ellipse(xx, yy, side * u(0.33, 0.42), u(-0.12, 0.02), u(0.22, 0.29), u(0.52, 0.66)) < 1
    return body, lungs


def lung_fields(index: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """The lung fields (``bool (size, size)``) of image ``index``: the only place its lesions may be.

    Drawn exactly as :func:`synthesize_one` draws them, so a lesson (or a test) can check
    that a mask, or a Class Activation Map, stays inside the lungs.
    """
    _, u, _ = _start(index, seed, 0.5)
    c = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return _chest(xx, yy, u)[1]


def synthesize_one(
    index: int, size: int = 64, seed: int = 0, lesion_contrast: float = 0.35, pneumonia_fraction: float = 0.5
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """One image: ``(uint8 (size, size), label, bool mask (size, size))``."""
    g, u, label = _start(index, seed, pneumonia_fraction)
    c = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    body, lungs = _chest(xx, yy, u)
    img = torch.where(body, torch.tensor(0.58), torch.tensor(0.08))
    img = torch.where(lungs, torch.tensor(0.22), img)

    # Mediastinum and spine: bright vertical structures down the middle.
    img = img + 0.18 * torch.exp(-((xx / u(0.12, 0.17)) ** 2)) * body
    img = img + 0.12 * torch.exp(-((xx / 0.05) ** 2)) * (yy > -0.6) * body

    # Ribs: faint curved bands across the lungs.
    freq, bend = u(9.0, 12.0), u(1.2, 2.0)
    ribs = (torch.sin(freq * (yy - bend * 0.25 * xx**2) * math.pi / 2) > 0.75).float()
    img = img + 0.06 * ribs * lungs

    mask = torch.zeros(size, size, dtype=torch.bool)
    if label == 1:
        lung_idx = lungs.flatten().nonzero().flatten()
        for _ in range(int(torch.randint(1, 4, (), generator=g))):
            centre = lung_idx[torch.randint(len(lung_idx), (), generator=g)]
            cy, cx = c[centre // size].item(), c[centre % size].item()
            blob = _ellipse(xx, yy, cx, cy, u(0.08, 0.17), u(0.08, 0.2)) < 1
            mask |= blob & lungs
        texture = _blur(torch.randn(size, size, generator=g), sigma=max(size / 64, 0.8))
        texture = (texture - texture.min()) / (texture.max() - texture.min() + 1e-8)
        soft = _blur(mask.float(), sigma=max(size / 96, 0.6))
        img = img + lesion_contrast * soft * (0.55 + 0.45 * texture) * lungs

    img = _blur(img, sigma=max(size / 160, 0.5))
    img = img + 0.035 * torch.randn(size, size, generator=g)
    pixels = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels, label, mask


def synthesize(
    n: int,
    size: int = 64,
    seed: int = 0,
    lesion_contrast: float = 0.35,
    pneumonia_fraction: float = 0.5,
) -> XrayData:
    """``n`` synthetic chest X-rays of ``size`` x ``size`` pixels, with lesion masks, in memory.

    :func:`synth` writes such images to a folder instead (the ``xraykit synth`` command). Image ``i`` is
    the same whether you ask for 10 images or 10,000, so a small set is a prefix of a large one.

    Args:
        n: how many images, at least 1.
        size: their width and height in pixels, 16 to 1024.
        seed: the seed of the images (at least 0); each image has its own generator, seeded by
            ``(seed, i)``.
        lesion_contrast: how much brighter a consolidation is than the lung, 0 to 1: lower makes the task
            harder, 0 leaves nothing to find.
        pneumonia_fraction: the chance of each image being PNEUMONIA; the share of the set is about this.

    Returns:
        The images (``uint8``, shape ``(n, 1, size, size)``), their labels (NORMAL 0, PNEUMONIA 1) and
            their lesion masks (empty for NORMAL), as :class:`~xraykit.XrayData`.

    Raises:
        XrayError: a count, size, seed or contrast out of range.

    >>> data = synthesize(4, size=32, seed=1)
    >>> data.images.shape, data.classes
    (torch.Size([4, 1, 32, 32]), ('NORMAL', 'PNEUMONIA'))
    """
    check_options(n, size, seed, lesion_contrast, low=1)
    images, labels, masks = [], [], []
    for i in range(n):
        img, label, mask = synthesize_one(i, size, seed, lesion_contrast, pneumonia_fraction)
        images.append(img)
        labels.append(label)
        masks.append(mask)
    return XrayData(
        images=torch.stack(images)[:, None],
        labels=torch.tensor(labels, dtype=torch.long),
        classes=CLASSES,
        patients=[f"synth-{seed}-{i:05d}" for i in range(n)],
        masks=torch.stack(masks),
    )


MAX_SIZE = 1024  # as for training (config.MAX_IMAGE_SIZE): larger synthetic chests teach nothing more


def check_options(n: Any, size: Any, seed: Any, lesion_contrast: Any, low: int) -> None:
    """Refuse, in one line, a count, size, seed or contrast the generator cannot draw from."""
    from ..errors import XrayError

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(n) or n < low:
        raise XrayError(f"synthetic data needs n of at least {low} images, got {n!r}")
    if not whole(size) or not 16 <= size <= MAX_SIZE:
        raise XrayError(f"synthetic images need a size from 16 to {MAX_SIZE} pixels, got {size!r}")
    if not whole(seed) or seed < 0:
        raise XrayError(f"synthetic data needs a seed of at least 0, got {seed!r}")
    if not isinstance(lesion_contrast, (int, float)) or not 0 <= lesion_contrast <= 1:  # also refuses NaN
        raise XrayError(f"lesion contrast must be a number from 0 to 1, got {lesion_contrast!r}")


def synthetic_splits(n: int = 640, size: int = 64, seed: int = 0, lesion_contrast: float = 0.35) -> dict[str, XrayData]:
    """Train, val and test sets from independent seeds: ``n`` training images, ``n // 4`` each for val and test."""
    check_options(n, size, seed, lesion_contrast, low=1)
    small = max(n // 4, 2)
    return {
        "train": synthesize(n, size, seed * 3, lesion_contrast),
        "val": synthesize(small, size, seed * 3 + 1, lesion_contrast),
        "test": synthesize(small, size, seed * 3 + 2, lesion_contrast),
    }


def synth(out: Union[str, Path], n: int = 200, size: int = 224, seed: int = 0, lesion_contrast: float = 0.35) -> Path:
    """Write synthetic X-rays to the folder ``out`` in the Kaggle layout, lesion masks beside them in ``OUT/masks/``.

    The command line's ``xraykit synth``: PNG files any image viewer opens, in the layout that
    :func:`xraykit.train` and ``xraykit explain-score`` read, masks included. :func:`synthesize` returns
    the images in memory instead and writes nothing.

    Args:
        out: a new or empty folder; one that holds files is refused, so two data sets are never mixed.
        n: training images, at least 4; ``val`` and ``test`` get ``n // 4`` each.
        size: the images' width and height in pixels, 16 to 1024.
        seed: the seed of the images, at least 0; each split draws from its own seed.
        lesion_contrast: how much brighter a consolidation is than the lung, 0 to 1: lower makes the task
            harder.

    Returns:
        ``out``, as a :class:`~pathlib.Path`.

    Raises:
        XrayError: a count, size, seed or contrast out of range, or an ``out`` that is a file or holds files.
    """
    from PIL import Image

    from ..errors import XrayError, display_path
    from ..io import atomic_path

    check_options(n, size, seed, lesion_contrast, low=4)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise XrayError(f"{display_path(out)}: not a folder (a file is in the way)")
    if out.is_dir():
        try:
            held = [p for p in out.iterdir() if not p.name.startswith(".")]
        except OSError as exc:
            raise XrayError(f"{display_path(out)}: cannot list this folder ({exc.strerror})") from None
        if held:  # writing into it would mix two data sets (another size, seed or count) without a word
            raise XrayError(
                f"{display_path(out)}: already holds files ({display_path(held[0].name)}, ...); "
                "synth writes a new data set into an empty or new folder"
            )
    # The folder is claimed as `train` claims a run folder: two synth started into one new folder at
    # once would both find it empty and write 800 mixed images; the marker is created by exactly one.
    marker = out / SYNTH_MARKER
    try:
        out.mkdir(parents=True, exist_ok=True)
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        raise XrayError(
            f"{display_path(out)}: another `xraykit synth` is writing here (if none is, one was stopped: "
            f"delete {display_path(marker)} or pick another folder)"
        ) from None
    except OSError as exc:
        raise XrayError(f"{display_path(out)}: cannot write here ({exc.strerror})") from None
    # One image at a time, exactly as synthetic_splits() draws them, so memory does not grow with n.
    small = max(n // 4, 2)
    plan = (("train", n, seed * 3), ("val", small, seed * 3 + 1), ("test", small, seed * 3 + 2))
    for split, count, split_seed in plan:
        for i in range(count):
            image, label, mask = synthesize_one(i, size, split_seed, lesion_contrast)
            cls, name, drawn = CLASSES[label], f"synth-{split_seed}-{i:05d}.png", mask.to(torch.uint8) * 255
            for folder, pixels in ((out / split / cls, image), (out / "masks" / split / cls, drawn)):
                with atomic_path(folder / name) as tmp:
                    Image.fromarray(pixels.numpy(), mode="L").save(tmp, format="PNG")
    marker.unlink()
    return out
