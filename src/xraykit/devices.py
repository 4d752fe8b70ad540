"""Where a model computes and in which number format: the device (``auto``: CUDA, MPS or the CPU) and
the precision (``32`` or ``bf16-mixed``), each resolved once per command; and batches moved to the device.

What ``auto`` means is measured, not assumed: docs/performance.md ("Precision") holds the benchmarks
behind :data:`AUTO_BF16_ON` and :func:`native_bf16`.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager, Optional, Union

import torch

from .config import PRECISIONS
from .errors import XrayError

Forward = Callable[[torch.Tensor], torch.Tensor]
DeviceLike = Union[str, torch.device]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if there is one, else Apple's MPS, else the CPU; any other name as torch reads it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


# Device types on which ``auto`` takes bfloat16 where the hardware computes it natively. Empty: with the
# course's recipe at 224 px bfloat16 fell below float32's spread over three seeds, though with the strong
# recipe it kept it at 128 and 224 px (docs/performance.md, "Precision").
AUTO_BF16_ON: set[str] = set()


def resolve_precision(name: Union[str, int], device: torch.device) -> str:
    """What ``--precision name`` trains and predicts in on ``device``: ``"32"`` or ``"bf16-mixed"``.

    ``32`` and ``bf16-mixed`` are themselves. ``auto`` asks for the fastest precision that learns as
    well as float32: ``bf16-mixed`` on a device type in :data:`AUTO_BF16_ON` that computes bfloat16
    natively (:func:`native_bf16`), ``32`` everywhere else (docs/performance.md, "Precision", says
    which measurement decides). ``bf16-mixed`` on a device without bfloat16 (an older GPU, MPS) is
    refused in one line.
    """
    name = str(name)  # the API's precision=32
    if name not in PRECISIONS:
        raise XrayError(f"precision {name!r} is not one of: {', '.join(PRECISIONS)}")
    if name == "auto":
        earned = device.type in AUTO_BF16_ON and native_bf16(device) and bf16_supported(device)
        return "bf16-mixed" if earned else "32"
    if name == "bf16-mixed" and not bf16_supported(device):
        raise XrayError(f"--precision bf16-mixed: {device} has no bfloat16 autocast here; use --precision 32")
    return name


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware, so that ``bf16-mixed`` is faster than float32 there.

    On the CPU: the x86 instruction sets AVX512-BF16 or AMX-BF16. Other CPUs can run bfloat16
    autocast, but emulated it is slower than float32, and ARM's bfloat16 has not been measured, so
    they count as not native.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # recent torch; older releases below
    if capabilities is not None:
        found = capabilities()
        return bool(found.get("avx512_bf16") or found.get("amx_bf16"))
    older = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # the same question in older releases
    return bool(older is not None and older())


def emulated_bf16_note(precision: str, device: torch.device) -> Optional[str]:
    """A line for whoever asked for ``bf16-mixed`` on a CPU that only emulates bfloat16, else ``None``.

    It runs, and gives what bfloat16 gives, but slower than float32 (0.70x measured on such a CPU,
    docs/performance.md): a class that copies a lecturer's ``--precision bf16-mixed`` onto laptops
    without AVX512-BF16 or AMX-BF16 should hear that ``--precision 32`` is the faster choice there.
    """
    if precision == "bf16-mixed" and device.type == "cpu" and not native_bf16(device):
        return (
            "--precision bf16-mixed: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX-BF16), so bfloat16 "
            "is emulated and slower than float32 here (0.70x measured); --precision 32 is faster"
        )
    return None


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs on ``device`` (on the CPU: a bfloat16 matrix product is tried)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    except RuntimeError:
        return False


def autocast(precision: str, device: torch.device) -> ContextManager:
    """bfloat16 autocast on ``device`` for ``bf16-mixed``; nothing at all for ``32``."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def accelerated(forward: Forward, device: torch.device, precision: str = "32") -> Forward:
    """``forward`` under bfloat16 autocast with channels-last inputs for ``bf16-mixed``; ``forward`` itself for ``32``.

    ``precision`` is resolved (:func:`resolve_precision`). Channels-last goes with bfloat16, on the
    CPU as on tensor cores (measured in docs/performance.md). The model is made channels-last by the caller.
    """
    if precision == "32":
        return forward

    def fast(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return forward(x)

    return fast


def to_device(batch: torch.Tensor, device: DeviceLike) -> torch.Tensor:
    """``batch`` on ``device``; from the host to a GPU through pinned memory, without waiting for the copy."""
    device = torch.device(device)
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


DEVICE_SHARE = 0.25  # the training images move to a GPU once when they take less than this share of its free memory


def fits_on_device(nbytes: int, free_bytes: int) -> bool:
    """Whether ``nbytes`` of images may live on a device with ``free_bytes`` free (a quarter of it, at most)."""
    return nbytes < DEVICE_SHARE * free_bytes


def images_for(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The training images where the epochs take their batches from: on a CUDA GPU, moved there once when
    they fit (5,216 Kaggle images at 224 px are 262 MB); anywhere else, where they are (each batch is copied)."""
    if device.type != "cuda" or images.device == device:
        return images
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = images.numel() * images.element_size()
    return images.to(device) if fits_on_device(nbytes, free) else images
