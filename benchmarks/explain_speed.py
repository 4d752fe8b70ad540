"""Seconds per image of each registered explainer, on the CPU, at the sizes a class uses.

The cost of a method does not depend on what the weights are, so a randomly initialised
backbone stands in for a trained one::

    python benchmarks/explain_speed.py --sizes 64,224 --images 8 --threads 1 --clock cpu

Wall-clock time by default; ``--clock cpu`` counts only this process's CPU time, which other
programs on a shared machine barely change (use it with ``--threads 1``). The machine's
other load changes every number; compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import time

import torch

import xraykit
from xraykit import plugins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--sizes", default="64,224", help="comma-separated image sizes in pixels")
    parser.add_argument("--images", type=int, default=8, help="images explained per method and size")
    parser.add_argument("--methods", default=None, help="comma-separated explainers (default: every one that works)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    bb = plugins.get("backbone", args.backbone)
    methods = (args.methods.split(",") if args.methods else
               [n for n, e in sorted(plugins.entries("explainer").items()) if e.obj.supports(bb)])
    torch.manual_seed(0)
    model = bb.build(2).eval()
    print(f"{args.backbone}, {torch.get_num_threads()} thread(s), {args.clock} clock, {args.images} images")
    print(f"{'method':24s}" + "".join(f"{s:>10d}px" for s in map(int, args.sizes.split(","))))
    for method in methods:
        row = f"{method:24s}"
        for size in map(int, args.sizes.split(",")):
            images = torch.randint(0, 256, (args.images, 1, size, size), dtype=torch.uint8)
            targets = torch.ones(args.images, dtype=torch.long)
            xraykit.explain_maps(model, bb, images[:1], targets[:1], method)  # warm-up
            started = clock()
            xraykit.explain_maps(model, bb, images, targets, method)
            row += f"{(clock() - started) / args.images:>10.3f} s"
        print(row, flush=True)


if __name__ == "__main__":
    main()
