"""What one Task 1.1 training step costs in each recipe and precision, side by side in one run.

The strong recipe adds work to every training batch that the report recipe does not do: the
augmentation (turns, gamma, contrast, blur, resolution, noise, borders) and histogram equalisation
of each image. This times xraykit's own loop (:func:`xraykit.loop.train_one_epoch`, the same
preparation and network as ``xraykit train``) over the same images for each setting, the settings
taking turns so that a change in the machine's load falls on all of them, and prints seconds per
step and each setting's cost as a ratio to the report recipe in float32 at the same size::

    python benchmarks/recipe_cost.py                       # 128 and 224 px, 6 batches of 32, 3 rounds
    python benchmarks/recipe_cost.py --sizes 224 --rounds 5

Rows: the report and strong recipes in float32 and in bfloat16 (``bf16-mixed``), and the strong
recipe's step at half the size, which is what a progressive run's first epochs cost
(``--progressive``, docs/performance.md). The images are synthetic: a step's cost does not depend
on what the X-rays show.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from xraykit import plugins
from xraykit.config import TrainConfig
from xraykit.data.synthetic import synthesize
from xraykit.inputs import choose_inputs
from xraykit.loop import Callbacks, class_weights, train_one_epoch
from xraykit.training import build_model


def step_seconds(recipe: str, precision: str, size: int, train_size: int, batches: int) -> Callable[[], float]:
    """A function that runs ``batches`` training steps of ``recipe`` and returns the seconds per step."""
    torch.manual_seed(0)
    config = TrainConfig.for_recipe(recipe, image_size=size, precision=precision, lr=1e-3, weights="none")
    config = config.replace(record=config.record.__class__(precision=precision))
    backbone, strategy = plugins.backbone("resnet18"), plugins.strategy("scratch")
    model, _ = build_model(backbone, strategy, config)
    if precision == "bf16-mixed":
        model.to(memory_format=torch.channels_last)
    data = synthesize(32 * batches, size, seed=1)
    optimizer = strategy.optimizer([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    weight = class_weights(data.labels, 2) if config.class_weights == "auto" else None
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
    inputs = choose_inputs(model, backbone, data, data, config, torch.device("cpu"), lambda _: None, precision)
    inputs.progressive = train_size if train_size != size else None
    round_ = [0]

    def run() -> float:
        round_[0] += 1
        prepare = (
            inputs.train_prepare(round_[0], 0, train_size) if train_size != size else inputs.train_prepare(round_[0], 0)
        )
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(round_[0]))
        model.train()
        started = time.perf_counter()
        train_one_epoch(
            inputs.train_forward,
            inputs.train_x,
            data.labels,
            order,
            prepare,
            optimizer,
            loss_fn,
            32,
            "cpu",
            Callbacks(),
        )
        return (time.perf_counter() - started) / batches

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,224")
    ap.add_argument("--batches", type=int, default=6, help="training steps of 32 images per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all settings, taking turns; the median counts")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--full-size-only", action="store_true", help="leave out the half-size rows (older xraykit)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32, median of {args.rounds} rounds")
    for size in (int(s) for s in args.sizes.split(",")):
        settings = {
            "report, float32": ("report", "32", size),
            "strong, float32": ("strong", "32", size),
            "report, bf16-mixed": ("report", "bf16-mixed", size),
            "strong, bf16-mixed": ("strong", "bf16-mixed", size),
        }
        if not args.full_size_only:
            settings[f"strong, float32, at {size // 2} px"] = ("strong", "32", size // 2)
            settings[f"strong, bf16-mixed, at {size // 2} px"] = ("strong", "bf16-mixed", size // 2)
        runs = {name: step_seconds(r, p, size, s, args.batches) for name, (r, p, s) in settings.items()}
        for run in runs.values():
            run()  # warm-up: first-call allocations and kernel choices
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                times[name].append(run())
        base = statistics.median(times["report, float32"])
        print(f"\n{size} px (images stored at {size} px)")
        print(f"{'setting':34} {'s/step':>7} {'vs report float32':>18}")
        for name, t in times.items():
            print(f"{name:34} {statistics.median(t):7.3f} {statistics.median(t) / base:17.2f}x")


if __name__ == "__main__":
    main()
