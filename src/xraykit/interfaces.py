"""The four things a plugin can add to xraykit, as small dataclasses.

A plugin builds one of these and hands it to the ``register`` callback of a hook (see
``hookspecs.py``). Plain dataclasses holding plain functions, rather than base classes to
inherit from, so a plugin author reads one definition and fills in its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Protocol, Sequence

import torch
from torch import nn


@dataclass
class XrayData:
    """A labelled set of X-rays held in memory, decoded once.

    ``images`` is ``uint8`` of shape ``(N, 1, H, W)``: grayscale stays one channel until
    the model, a third of the bytes of RGB. ``masks`` (``bool``, ``(N, H, W)``) marks
    lesions where they are known (synthetic X-rays); ``patients`` groups images of one
    person so that a split never puts them on both sides.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    patients: Optional[list[str]] = None
    paths: Optional[list[str]] = None
    masks: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be uint8 (N, 1, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.images.shape[0] != n:
            raise ValueError(f"{self.images.shape[0]} images but {n} labels")
        for name in ("patients", "paths", "masks"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{len(value)} {name} but {n} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, index: Sequence[int] | torch.Tensor) -> XrayData:
        """The images at ``index``, in that order, with everything that belongs to them."""
        idx = torch.as_tensor(index, dtype=torch.long)
        rows = idx.tolist()

        def pick(xs: Optional[list[str]]) -> Optional[list[str]]:
            return None if xs is None else [xs[i] for i in rows]

        return XrayData(
            images=self.images[idx],
            labels=self.labels[idx],
            classes=self.classes,
            patients=pick(self.patients),
            paths=pick(self.paths),
            masks=None if self.masks is None else self.masks[idx],
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


@dataclass(frozen=True)
class Backbone:
    """A network family, with everything needed to use it without guessing.

    ``build(num_classes)`` returns a randomly initialised model that takes one-channel
    images of any size and returns ``(batch, num_classes)`` logits. The dotted module names
    say where its parts are: ``head`` is the classifier that Task 1.2 trains, ``stem`` the
    first convolution (folded from three channels to one when RGB weights are loaded) and
    ``cam_layer`` the module whose output Class Activation Maps are computed from.
    ``pretrained`` maps a weights name (``"imagenet"``) to a function that returns a
    state dict in the backbone's original (torchvision) format. ``adapt_state_dict``, where
    the published files of a family use older key names than its code today (torchvision's
    DenseNet file does), turns such a state dict into the current format; it is applied to
    every file given with ``--weights PATH`` and must leave a current-format one unchanged.
    """

    name: str
    build: Callable[[int], nn.Module]
    head: str
    stem: str
    cam_layer: Optional[str] = None
    pretrained: Mapping[str, Callable[[], dict]] = field(default_factory=dict)
    adapt_state_dict: Optional[Callable[[dict], dict]] = None
    mean: float = 0.449  # ImageNet's RGB means and stds averaged, for one channel
    std: float = 0.226
    description: str = ""


@dataclass(frozen=True)
class Strategy:
    """How a backbone is trained: which parameters learn, with which optimizer and lr.

    ``freeze(model, backbone)`` sets ``requires_grad``; the trainer then optimizes only
    what still requires grad and keeps every fully frozen BatchNorm in eval mode, so its
    running statistics stay frozen too. ``weights`` is the starting point the strategy
    expects (``None`` for random init).
    """

    name: str
    freeze: Callable[[nn.Module, Backbone], None]
    lr: float
    weights: Optional[str] = None
    optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam
    description: str = ""


@dataclass(frozen=True)
class Explainer:
    """An attribution method: ``attribute(model, inputs, targets, backbone, **options)``.

    ``inputs`` is a normalized float batch ``(B, 1, H, W)``, ``targets`` the class index
    per image; the result is one map per image, ``(B, H, W)``, at the input's size.
    ``supports(backbone)`` says whether the method can explain that backbone (Grad-CAM
    needs a declared ``cam_layer``), so a command can offer only the methods that work.
    """

    name: str
    attribute: Callable[..., torch.Tensor]
    description: str = ""
    supports: Callable[[Backbone], bool] = lambda backbone: True


class LoadSplits(Protocol):
    """The signature of :attr:`DatasetSource.load`."""

    def __call__(
        self, location: str, *, image_size: int, skip_bad: bool, on_skip: Optional[Callable[[str], None]]
    ) -> dict[str, XrayData]: ...


@dataclass(frozen=True)
class DatasetSource:
    """A kind of place X-rays come from (a folder tree, an ``.npz`` file, a generator).

    ``can_load(location)`` says whether this source understands ``location``. Then
    ``load(location, *, image_size, skip_bad, on_skip)`` returns the splits found there, by
    name (``"train"``, ``"val"``, ``"test"``), each an :class:`XrayData` of ``image_size`` x
    ``image_size`` images. With ``skip_bad`` an unreadable file is passed over: ``on_skip``
    (when not ``None``) is called with one line naming it, and loading goes on; without it the
    file raises :class:`~xraykit.ImageError`. The signature in full::

        def load(location: str, *, image_size: int, skip_bad: bool,
                 on_skip: Callable[[str], None] | None) -> dict[str, XrayData]
    """

    name: str
    can_load: Callable[[str], bool]
    load: LoadSplits
    description: str = ""
