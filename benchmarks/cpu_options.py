"""Which CPU speed-ups are worth having for the training step: channels_last, bf16 autocast, torch.compile.

Times forward+backward+Adam step of ResNet-18 (one input channel) on random tensors already
in memory, and says how far each option's loss and gradients are from the same step in float64::

    python benchmarks/cpu_options.py --image-size 224 --batch-size 32 --steps 3

The machine's other load changes absolute numbers; compare rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from xraykit.builtin.resnet import build_resnet18

# Wall-clock time by default; ``--clock cpu`` counts only this process's CPU time, which other
# programs on a shared machine barely change (use it with ``--threads 1``: idle threads spin).
clock = time.perf_counter


def make_step(model, optimizer, channels_last: bool, bf16: bool, compiled: bool):
    forward = torch.compile(model) if compiled else model

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        optimizer.step()
        return loss.item(), grads

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per option, taking turns (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="'cpu': this process's CPU seconds, steady on a shared machine (with --threads 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (its first step compiles for minutes)")
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 1, args.image_size, args.image_size, generator=g)
    y = torch.randint(0, 2, (args.batch_size,), generator=g)
    options = [("float32 (baseline)", False, False, False), ("channels_last", True, False, False),
               ("bf16 autocast", False, True, False), ("bf16 autocast + channels_last", True, True, False)]
    if not args.no_compile:
        options.append(("torch.compile", False, False, True))

    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, batch {args.batch_size} at {args.image_size} px")
    # The yardstick of exactness: the same step in float64. Float32 itself is not exact, so an
    # option is "exact enough" when its error is of the size of plain float32's.
    torch.manual_seed(0)
    exact = build_resnet18(2).double()
    reference = make_step(exact, torch.optim.Adam(exact.parameters(), lr=1e-3), False, False, False)(x.double(), y)
    steps, first, errors = {}, {}, {}
    for name, cl, bf16, comp in options:
        torch.manual_seed(0)
        model = build_resnet18(2)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        steps[name] = make_step(model, optimizer, cl, bf16, comp)
        started = clock()
        loss, grads = steps[name](x, y)  # warm-up (torch.compile compiles here); also the exactness check
        first[name] = clock() - started
        errors[name] = (abs(loss - reference[0]), ((grads - reference[1]).norm() / reference[1].norm()).item())
    # Options take turns step by step, so a change in the machine's load hits all of them; the
    # fastest step of each is the best estimate of its cost (other load only ever adds time).
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            started = clock()
            step(x, y)
            times[name].append(clock() - started)
    print(f"{'option':32s} {'images/s':>9s} {'s/step':>7s} {'first step s':>12s} {'|dloss|':>9s} {'grad rel err':>12s}  (vs float64)")
    for name, t in times.items():
        best = min(t)
        print(f"{name:32s} {args.batch_size / best:9.1f} {best:7.2f} {first[name]:12.1f} "
              f"{errors[name][0]:9.2e} {errors[name][1]:12.2e}")
    print(f"(fastest of {args.steps} steps each; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
