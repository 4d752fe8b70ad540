"""Where does bfloat16 autocast's error enter ResNet-18, and would keeping one part in float32 remove it?

bfloat16 keeps 8 bits of each number's mantissa where float32 keeps 24. Under CPU autocast the
convolutions and the head compute in bfloat16, and so do BatchNorm and the residual additions,
since their inputs arrive in bfloat16 (the loss is float32). This script asks which of those
parts carries the error: it trains Task 1.1's network (the report recipe: Adam, lr 1e-3) in
float32 for ``--warm`` steps on real X-rays, then, from those same weights and on the same
batches, computes the gradient in float32 and in bfloat16 with parts kept in float32:

    bf16           everything autocast puts in bfloat16
    head           the final Linear layer in float32 (float32 logits)
    stem           the first convolution and its BatchNorm in float32
    bn             every BatchNorm in float32, so the residual stream is float32 too
    bn+stem+head   all three

and prints, as a relative error against float32 (``|g - g32| / |g32|``, mean over ``--batches``
batches): the logits, the whole gradient, and each part of the network's gradient; then the
seconds of one training step (forward and backward, the settings taking turns, median) and its
speed-up over float32. The first row, ``another batch``, is float32's gradient on the next batch
against this one's: the noise that stochastic gradient descent already lives with, for scale::

    python benchmarks/bf16_error.py ../shared/data/chest_xray --image-size 224

Its result (docs/performance.md, "Where bfloat16's error enters"): the error is spread evenly, 4-12% of each
layer's gradient, and keeping any of these parts in float32 removes little of it while costing a
good share of the speed-up; it is the convolutions' own products.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import xraykit
from xraykit import plugins
from xraykit.devices import native_bf16
from xraykit.inference import to_input

PARTS = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
KEPT = {
    "bf16": [],
    "head": ["fc"],
    "stem": ["conv1", "bn1"],
    "bn": ["batchnorm"],
    "bn+stem+head": ["batchnorm", "conv1", "fc"],
}


class InFloat32:
    """A module's forward with autocast off and its inputs made float32 (stored on the module, so
    that its state dict and hooks stay as they were)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return type(self.module).forward(self.module, *(a.float() for a in args))


def keep_float32(model: nn.Module, kept: list[str]) -> nn.Module:
    for name, module in model.named_modules():
        if name in kept or ("batchnorm" in kept and isinstance(module, nn.BatchNorm2d)):
            module.forward = InFloat32(module)
    return model


def gradient(model: nn.Module, state: dict, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    """Logits and each parameter's gradient of ``model`` at ``state`` on one batch, in train mode."""
    model.load_state_dict(state)
    model.zero_grad()
    model.train()
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x.contiguous(memory_format=torch.channels_last))
    else:
        logits = model(x)
    nn.functional.cross_entropy(logits.float(), y).backward()
    return logits.detach().float(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def relative(a: dict, b: dict, part: str | None = None) -> float:
    names = [n for n in b if part is None or n.split(".")[0] == part]
    da = torch.cat([a[n].flatten() for n in names])
    db = torch.cat([b[n].flatten() for n in names])
    return ((da - db).norm() / db.norm()).item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="../shared/data/chest_xray")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--warm", type=int, default=40, help="float32 training steps before measuring (an epoch is ~130)")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=4, help="timing rounds (the first is not counted)")
    args = ap.parse_args()
    if not native_bf16(torch.device("cpu")):
        print("note: this CPU may emulate bfloat16; the error is the same, the seconds are not")

    torch.manual_seed(0)
    backbone = plugins.backbone("resnet18")
    images = xraykit.load_data(args.data, args.image_size)["train"]
    labels = torch.as_tensor(images.labels)
    per_epoch = len(images) // 32
    epochs = (args.warm + args.batches + 1) // per_epoch + 1  # a new order each epoch, as training shuffles
    order = torch.cat(
        [
            torch.randperm(len(images), generator=torch.Generator().manual_seed(e))[: 32 * per_epoch]
            for e in range(epochs)
        ]
    )

    def batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = order[32 * k : 32 * k + 32]
        return to_input(images.images[chosen], backbone), labels[chosen]

    model = backbone.build(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(args.warm):
        x, y = batch(step)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}

    reference = backbone.build(2)
    variants = {
        name: keep_float32(backbone.build(2), kept).to(memory_format=torch.channels_last) for name, kept in KEPT.items()
    }
    errors: dict[str, dict[str, list[float]]] = {name: {} for name in ["another batch", *KEPT]}
    for k in range(args.warm, args.warm + args.batches):
        x, y = batch(k)
        logits32, grad32 = gradient(reference, state, x, y, bf16=False)
        _, grad_next = gradient(reference, state, *batch(k + 1), bf16=False)
        measured = {"another batch": (None, grad_next)}
        for name, model in variants.items():
            measured[name] = gradient(model, state, x, y, bf16=True)
        for name, (logits, grad) in measured.items():
            row = errors[name]
            if logits is not None:
                row.setdefault("logits", []).append(((logits - logits32).norm() / logits32.norm()).item())
            row.setdefault("all", []).append(relative(grad, grad32))
            for part in PARTS:
                row.setdefault(part, []).append(relative(grad, grad32, part))

    x, y = batch(0)
    seconds: dict[str, list[float]] = {name: [] for name in ["float32", *KEPT]}
    for _ in range(args.rounds):
        for name in seconds:
            started = time.perf_counter()
            if name == "float32":
                gradient(reference, state, x, y, bf16=False)
            else:
                gradient(variants[name], state, x, y, bf16=True)
            seconds[name].append(time.perf_counter() - started)
    step = {name: statistics.median(times[1:]) for name, times in seconds.items()}

    print(
        f"{args.image_size} px, batch 32, after {args.warm} float32 steps; relative error against float32, "
        f"mean of {args.batches} batches; {torch.get_num_threads()} threads"
    )
    columns = ["logits", "all", *PARTS]
    print(f"{'setting':14} " + " ".join(f"{c:>7}" for c in columns) + f" {'step s':>7} {'speed-up':>8}")
    print(f"{'float32':14} " + " ".join(f"{'-':>7}" for _ in columns) + f" {step['float32']:7.3f} {'1.00x':>8}")
    for name, row in errors.items():
        cells = " ".join(f"{statistics.mean(row[c]):7.3f}" if c in row else f"{'-':>7}" for c in columns)
        timing = f" {step[name]:7.3f} {step['float32'] / step[name]:7.2f}x" if name in step else ""
        print(f"{name:14} {cells}{timing}")


if __name__ == "__main__":
    main()
