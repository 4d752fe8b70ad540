"""Training and inference images/s of ResNet-18 through xraykit's own path, against pure compute.

One command for a lent GPU, under five minutes:

    python benchmarks/gpu_throughput.py                  # cuda, 224 px, batch 256, bf16-mixed

and, at a tiny size, on any CPU (the test suite runs this):

    python benchmarks/gpu_throughput.py --device cpu --image-size 32 --batch-size 8 --steps 2

Measured in one process, on the same model and batches:

- **training, pure compute**: forward, loss, backward and Adam step on float tensors already
  on the device (no data path at all): the upper bound;
- **training, xraykit**: :func:`xraykit.loop.train_one_epoch` on ``uint8`` images as the loop
  gets them (:func:`xraykit.inputs.choose_inputs`: moved to the GPU once when they fit,
  else copied per batch through pinned memory), without augmentation (the report recipe) and
  with the strong recipe's augmentation (on the device);
- **inference, pure compute**, and **inference, xraykit**: :func:`xraykit.inference.predict_logits`
  from ``uint8`` images in host memory, as ``evaluate`` runs.

Each xraykit line gives its ratio to pure compute (pure / xraykit: 1.00x is no data-path cost;
the issue's aim is within 1.2x, and training at least 5,000 images/s at 224 px on one H100-class GPU).
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Callable

import torch
from torch import nn

from xraykit import XrayData, plugins
from xraykit.config import PRECISIONS, TrainConfig
from xraykit.devices import accelerated, resolve_device, resolve_precision
from xraykit.inference import predict_logits, to_input
from xraykit.inputs import choose_inputs
from xraykit.loop import Callbacks, epoch_order, set_train_mode, train_one_epoch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def fresh_model(device: torch.device, precision: str) -> nn.Module:
    torch.manual_seed(0)
    model = plugins.backbone("resnet18").build(2).to(device)
    if precision == "bf16-mixed":
        model = model.to(memory_format=torch.channels_last)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cpu, auto, ...")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30, help="timed batches per measurement (after warm-up ones)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches first (cuDNN's choices, allocations)")
    ap.add_argument("--precision", default="bf16-mixed", choices=PRECISIONS)
    ap.add_argument("--compile", action="store_true", help="also through torch.compile (slow to start)")
    args = ap.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    size, batch, steps, warmup = args.image_size, args.batch_size, args.steps, args.warmup
    n = batch * steps
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = torch.get_num_threads()
    print(f"device {device} ({name}, {threads} threads), precision {precision}", end=", ")
    print(f"{size} px, batch {batch}, {steps} steps")
    backbone = plugins.backbone("resnet18")
    g = torch.Generator().manual_seed(0)  # random pixels: the arithmetic does not depend on what they show
    pixels = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    images = XrayData(pixels, torch.arange(n) % 2, ("NORMAL", "PNEUMONIA"))
    loss_fn = nn.CrossEntropyLoss()
    results: dict[str, float] = {}

    # Training, pure compute: float inputs on the device, no data path.
    model = fresh_model(device, precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = accelerated(model, device, precision)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randint(2, (batch,), device=device)
    set_train_mode(model)

    def compute_steps(k: int) -> None:
        for _ in range(k):
            loss = loss_fn(forward(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    timed(partial(compute_steps, warmup), device)
    results["training, pure compute"] = steps * batch / timed(partial(compute_steps, steps), device)

    # Training through xraykit's loop, as `xraykit train` runs it.
    for augment in ("none", "strong"):
        model = fresh_model(device, precision)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        config = TrainConfig(image_size=size, batch_size=batch, augment=augment, precision=args.precision)
        config = config.replace(compile=args.compile)
        inputs = choose_inputs(model, backbone, images, images, config, device, lambda s: None, precision)
        set_train_mode(model)

        def epoch(order: torch.Tensor, inputs=inputs, model=model, optimizer=optimizer) -> None:
            train_one_epoch(
                inputs.train_forward, inputs.train_x, images.labels, order, inputs.train_prepare(0, 0),
                optimizer, loss_fn, batch, device, Callbacks(),
            )  # fmt: skip

        timed(partial(epoch, torch.arange(min(warmup * batch, n))), device)
        order = epoch_order(images.labels, 0, 0, False)
        if device.type == "cpu":
            where = "images in memory"
        else:
            where = "images on the device" if inputs.train_x.device.type == device.type else "copied per batch"
        what = "no augmentation" if augment == "none" else f"{augment} augmentation"
        results[f"training, xraykit ({what}; {where})"] = n / timed(partial(epoch, order), device)

    # Inference: pure compute, then xraykit's evaluate path from uint8 images in host memory.
    model = fresh_model(device, precision).eval()
    forward = accelerated(model, device, precision)

    def infer_compute(k: int) -> None:
        with torch.no_grad():
            for _ in range(k):
                forward(x)

    timed(partial(infer_compute, warmup), device)
    results["inference, pure compute"] = steps * batch / timed(partial(infer_compute, steps), device)
    prepare = partial(to_input, backbone=backbone)
    timed(lambda: predict_logits(forward, images.images[: warmup * batch], prepare, batch, device), device)
    seconds = timed(lambda: predict_logits(forward, images.images, prepare, batch, device), device)
    results["inference, xraykit (evaluate: uint8 images from host memory)"] = n / seconds

    for label, per_second in results.items():
        kind = label.split(",")[0]
        bound = results[f"{kind}, pure compute"]
        ratio = "" if "pure compute" in label else f"   pure/xraykit {bound / per_second:.2f}x"
        print(f"{label:78} {per_second:10.1f} images/s{ratio}")


if __name__ == "__main__":
    main()
