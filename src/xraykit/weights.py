"""Loading weights safely and fitting them to a backbone.

Two kinds of file arrive here: a backbone's original pretrained weights (torchvision's
format: three input channels, an ImageNet head of 1000 classes) and xraykit's own
checkpoints. Both are untrusted input, so both load with ``weights_only=True``: a file
that holds anything but tensors and plain values is refused, never executed.
"""

from __future__ import annotations

import pickle
import re
import socket
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from .errors import CheckpointError, WeightsUnavailableError
from .interfaces import Backbone

CHECKPOINT_FORMAT = "xraykit-checkpoint"


def safe_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``, with errors that name the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder, not a weights file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol says nothing a user can act on
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        called = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if called:
            raise CheckpointError(
                f"{path}: refused to load: besides tensors the file holds Python objects that could run code when "
                f"unpickled (it asks for {called.group(1)}); xraykit loads only tensors and plain values"
            ) from None
        with open(path, "rb") as f:
            is_pickle = f.read(1) == b"\x80"  # the PROTO opcode that starts every binary pickle
        if is_pickle:
            raise CheckpointError(
                f"{path}: refused to load: a Python pickle that torch's safe loader (weights_only=True) cannot read, "
                "and unpickling it any other way could run code; save weights with torch.save(model.state_dict(), PATH)"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable PyTorch weights file (neither a torch.save zip nor a pickle)"
        ) from None
    except Exception as exc:  # zip errors, truncated files, text files
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({type(exc).__name__}: {exc})") from None


def state_dict_from(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights inside a loaded file: an xraykit checkpoint or a bare state dict."""
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj["model"]
    elif isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state dict of tensors in this file")
    return dict(obj)


def fit_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], backbone: Backbone, source: str, load_head: bool = True
) -> None:
    """Copy ``state`` into ``model``, adapting what pretrained weights always differ in.

    The stem's RGB filters are summed over the channel axis: on a grayscale image shown as
    three equal channels they give exactly the same output as the one-channel filter. With
    ``load_head=False`` the head (ImageNet's 1000 classes, or any other) is left at its
    fresh initialisation: a new ``fc`` to train. With ``load_head=True`` (a trained run's
    own checkpoint) the head must fit like every other tensor: a silently random head
    would make every prediction meaningless. Any other difference is an error naming the
    first tensor, in the model's order, that does not fit.
    """
    target = model.state_dict()
    head, stem = backbone.head + ".", backbone.stem + ".weight"
    new = {}
    for key, want in target.items():
        if key.startswith(head) and not load_head:
            continue
        if key not in state:
            raise CheckpointError(
                f"{source}: no tensor '{key}' (expected shape {tuple(want.shape)}); is it a {backbone.name} checkpoint?"
            )
        got = state[key]
        _check_values(got, want, key, source)
        if got.shape == want.shape:
            new[key] = got
        elif (
            key == stem
            and got.dim() == 4
            and got.shape[1] == 3
            and want.shape[1] == 1
            and got.shape[0] == want.shape[0]
        ):
            new[key] = got.sum(dim=1, keepdim=True)
        else:
            raise CheckpointError(
                f"{source}: tensor '{key}' has shape {tuple(got.shape)}, "
                f"the {backbone.name} model needs {tuple(want.shape)}"
            )
    # A deeper network of the same family (ResNet-34 for ResNet-18) holds every tensor the
    # model needs, with the right shapes, plus more: refuse it rather than load part of it.
    extra = [key for key in state if key not in target and not key.startswith(head)]
    if extra:
        raise CheckpointError(
            f"{source}: tensor '{extra[0]}' is not part of the {backbone.name} model ({len(extra)} such tensors); "
            f"is it a {backbone.name} checkpoint?"
        )
    model.load_state_dict(new, strict=False)


def _check_values(got: torch.Tensor, want: torch.Tensor, key: str, source: str) -> None:
    """Refuse a tensor whose kind of number differs from the model's, or that holds NaN or infinity.

    ``load_state_dict`` would cast integers or booleans to floats without a word, and NaN
    or infinite weights give NaN outputs that still argmax to a class: plausible-looking
    numbers from a broken file.
    """
    if want.is_floating_point() != got.is_floating_point() or (got.dtype == torch.bool) != (want.dtype == torch.bool):
        kind = "floating-point numbers" if want.is_floating_point() else f"{want.dtype} values"
        raise CheckpointError(f"{source}: tensor '{key}' holds {got.dtype} values, the model needs {kind}")
    if got.is_floating_point() or got.is_complex():
        bad = int((~torch.isfinite(got)).sum())
        if bad:
            what = "NaN" if bool(torch.isnan(got).any()) else "infinite"
            raise CheckpointError(
                f"{source}: tensor '{key}' holds {bad} {what} value{'s' if bad != 1 else ''} "
                f"(of {got.numel()}); a model with such weights gives meaningless outputs"
            )


def check_finite_state(state: Mapping[str, Any], source: str) -> None:
    """Every floating-point tensor of ``state`` finite, or an error naming ``source`` and the first that is not."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            _check_values(value, value, key, source)


def download(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` (torch hub's downloader), giving up after 20 s of silence."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        torch.hub.download_url_to_file(url, str(dst), progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def torchvision_weights(weights_enum: Any, backbone_name: str) -> dict[str, torch.Tensor]:
    """A torchvision weights entry (e.g. ``ResNet18_Weights.IMAGENET1K_V1``) from torch's cache.

    Downloads into the cache when it is missing; offline, raises an error that names the
    file to place there and the ``--weights PATH`` alternative. Never falls back silently.
    """
    url = weights_enum.url
    filename = url.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a TORCH_HOME that cannot be made (under a file, /proc, no permission)
            raise WeightsUnavailableError(
                f"ImageNet weights for {backbone_name}: torch's cache folder {cached.parent} cannot be made "
                f"({exc.strerror}); set TORCH_HOME to a folder you can write, or pass --weights PATH"
            ) from None
        try:
            download(url, cached)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"ImageNet weights for {backbone_name} are not in torch's cache and could not be downloaded "
                f"({type(exc).__name__}: {exc}). Put {filename} (from {url}) at {cached}, "
                f"or pass --weights PATH with a copy of it."
            ) from None
    return state_dict_from(safe_load(cached), cached)


def load_weights(
    model: nn.Module, backbone: Backbone, weights: Optional[str], load_head: bool = False
) -> Optional[str]:
    """Load starting ``weights`` (a name such as ``imagenet``, or a file path) into ``model``.

    The head stays new (``load_head=False``): both tasks replace ``fc`` by a fresh layer.
    Returns a short description of what was loaded, or ``None`` for random init.
    """
    if weights is None or weights in ("none", "random", "scratch"):
        return None
    if weights in backbone.pretrained:
        fit_state_dict(model, backbone.pretrained[weights](), backbone, f"{backbone.name} {weights} weights", load_head)
        return f"{weights} weights"
    path = Path(weights)
    if not path.exists():
        names = ", ".join(sorted(backbone.pretrained)) or "none"
        raise CheckpointError(f"{weights}: no such file, and not a weights name of {backbone.name} (names: {names})")
    state = state_dict_from(safe_load(path), path)
    if backbone.adapt_state_dict is not None:
        state = backbone.adapt_state_dict(state)
    fit_state_dict(model, state, backbone, str(path), load_head)
    return f"weights from {path}"
