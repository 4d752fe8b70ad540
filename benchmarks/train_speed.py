"""Where a training epoch's time goes: decoding images, or the arithmetic of the network.

Measures, in one run and on the same images (ResNet-18, batch 32, Adam)::

    (a) naive     the report's loop: torchvision ImageFolder, PIL decode + resize of every
                  image in every epoch, a DataLoader, a 3-channel ResNet-18
    (b) xraykit   Task 1.1 (scratch) on xraykit's data path: each image decoded once into
                  uint8 (1, S, S) and kept, read back from the decode cache on later runs
    (c) compute   forward + backward + step on float batches already in memory: the floor
    (d) finetune, uncached   Task 1.2, the frozen backbone run on every image every epoch
    (e) finetune, cached     Task 1.2 with the frozen-feature cache: one inference pass,
                             then the head alone

and prints images/s, seconds per epoch and the ratios b/c, a/b and d/e::

    python benchmarks/train_speed.py --data ../shared/data/chest_xray --image-size 224 --max-images 256

The machine's other load changes every number; compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

# Wall-clock time by default; ``--clock cpu`` counts only this process's CPU time, which other
# programs on a shared machine barely change (use it with ``--threads 1``: idle threads spin).
clock = time.perf_counter


def _load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _pick(paths: list[Path], labels: list[int], n: int, seed: int) -> tuple[list[Path], list[int]]:
    """At most ``n`` images, a fixed random subset (both classes in their proportions)."""
    if n >= len(paths):
        return paths, labels
    keep = sorted(torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:n].tolist())
    return [paths[i] for i in keep], [labels[i] for i in keep]


def naive_loop(paths, labels, size: int, batch_size: int, workers: int):
    """(a) One epoch of the report's loop: ImageFolder-style decode and resize of every image, every epoch."""
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.Resize((size, size)),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])

    class Files(torch.utils.data.Dataset):  # ImageFolder's loader and transform, on our subset of files
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return transform(torchvision.datasets.folder.default_loader(str(paths[i]))), labels[i]

    loader = torch.utils.data.DataLoader(Files(), batch_size=batch_size, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    _warm_up(model, optimizer, torch.randn(batch_size, 3, size, size))

    def epoch(_: int) -> None:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def _warm_up(model, optimizer, x) -> None:
    """One step before timing: oneDNN builds its kernels for these shapes on the first call."""
    loss = F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.zero_grad(set_to_none=True)


def xraykit_loop(images, labels, batch_size: int):
    """(b) One epoch of Task 1.1 on images held as uint8: fit's own loop (no checkpoints, no validation)."""
    from xraykit import plugins
    from xraykit.inference import to_input
    from xraykit.loop import Callbacks, epoch_order, set_train_mode, train_one_epoch

    backbone = plugins.get("backbone", "resnet18")
    torch.manual_seed(0)
    model = backbone.build(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    set_train_mode(model)
    _warm_up(model, optimizer, to_input(images[:batch_size], backbone))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(e: int) -> None:
        train_one_epoch(model, images, labels, epoch_order(labels, e, 0, False), lambda b: to_input(b, backbone),
                        optimizer, loss_fn, batch_size, torch.device("cpu"), Callbacks())

    return epoch


def compute_loop(images, labels, batch_size: int):
    """(c) One epoch of forward + backward + step alone, on float batches made before the clock starts."""
    from xraykit import plugins
    from xraykit.inference import to_input
    from xraykit.loop import epoch_order

    backbone = plugins.get("backbone", "resnet18")
    torch.manual_seed(0)
    model = backbone.build(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    inputs = to_input(images, backbone)
    _warm_up(model, optimizer, inputs[:batch_size])
    order = epoch_order(labels, 0, 0, False)
    batches = [(inputs[order[s : s + batch_size]], labels[order[s : s + batch_size]])
               for s in range(0, len(order), batch_size)]

    def epoch(_: int) -> None:
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def finetune(images, labels, epochs: int, uncached_epochs: int, batch_size: int) -> dict:
    """(d) and (e): Task 1.2 without and with the frozen-feature cache, and one plain inference pass."""
    from xraykit import plugins
    from xraykit.inference import head_inputs, predict_logits, to_input
    from xraykit.loop import Callbacks, epoch_order, set_train_mode, train_one_epoch

    backbone, strategy = plugins.get("backbone", "resnet18"), plugins.get("strategy", "finetune")
    cpu = torch.device("cpu")
    prepare = partial(to_input, backbone=backbone)
    loss_fn = torch.nn.CrossEntropyLoss()

    def fresh():
        torch.manual_seed(0)
        model = backbone.build(2)  # random weights: the cost does not depend on their values
        strategy.freeze(model, backbone)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        set_train_mode(model)
        return model, optimizer

    model, _ = fresh()
    model.eval()
    predict_logits(model, images[:batch_size], prepare, batch_size, cpu)  # warm-up
    started = clock()
    predict_logits(model, images, prepare, 64, cpu)
    inference = clock() - started

    model, optimizer = fresh()
    uncached = []
    for e in range(uncached_epochs):
        started = clock()
        train_one_epoch(model, images, labels, epoch_order(labels, e, 0, False), prepare, optimizer, loss_fn,
                        batch_size, cpu, Callbacks())
        uncached.append(clock() - started)

    model, optimizer = fresh()
    started = clock()
    features = head_inputs(model, backbone, images, 64, cpu)
    feature_seconds = clock() - started
    head = model.get_submodule(backbone.head)
    for e in range(epochs):
        train_one_epoch(head, features, labels, epoch_order(labels, e, 0, False), lambda b: b, optimizer, loss_fn,
                        batch_size, cpu, Callbacks())
    cached_total = clock() - started
    return {"inference": inference, "uncached": uncached, "features": feature_seconds, "cached_total": cached_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder in the Kaggle layout (its train/ split is used)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-images", type=int, default=256, help="a fixed random subset of train/ (0: all)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed for (a), (b) and (c)")
    parser.add_argument("--finetune-epochs", type=int, default=10, help="epochs of Task 1.2 for (d) and (e)")
    parser.add_argument("--uncached-epochs", type=int, default=2,
                        help="epochs actually run for (d); its time per epoch is multiplied up to --finetune-epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive loop (a)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="'cpu': this process's CPU seconds, steady on a shared machine (with --threads 1)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: naive, xraykit, compute, finetune")
    parser.add_argument("--cache-dir", default=None, help="decode cache (default: a fresh temporary folder, so (b) starts cold)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.threads:
        torch.set_num_threads(args.threads)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    from xraykit.data import cache
    from xraykit.data.folders import list_images, load_paths

    workdir = tempfile.TemporaryDirectory(prefix="xraykit-bench-")
    os.environ["XRAYKIT_CACHE_DIR"] = args.cache_dir or workdir.name
    paths, labels, classes = list_images(Path(args.data) / "train")
    paths, labels = _pick(paths, labels, args.max_images or len(paths), seed=0)
    n, s = len(paths), args.image_size
    print(f"{n} images from {args.data}/train at {s} px, batch {args.batch_size}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock; load average {_load_average()} at start")

    # The decode cache: a cold load decodes every JPEG, a warm one (a second run, a resume) reads bytes.
    # Files written in the last seconds are not cached yet (see xraykit.data.cache.RACY_SECONDS).
    started = clock()
    data = load_paths(paths, labels, classes, s)
    cold = clock() - started
    warm = math.inf
    for _ in range(3):  # the fastest of three: a busy machine only ever adds time
        started = clock()
        data = load_paths(paths, labels, classes, s)
        warm = min(warm, clock() - started)
    print(f"load: cold (decode + resize + cache) {cold:.2f} s = {n / cold:.0f} images/s; "
          f"warm (from the decode cache in {cache.cache_dir()}) {warm:.2f} s = {n / warm:.0f} images/s")
    images, y = data.images, data.labels

    names = {"a": "(a) naive (ImageFolder + PIL every epoch)", "b": "(b) xraykit scratch (decoded once)",
             "c": "(c) pure compute (tensors in memory)"}
    loops = {}
    if "naive" not in skip:
        loops["a"] = naive_loop(paths, labels, s, args.batch_size, args.workers)
    if "xraykit" not in skip:
        loops["b"] = xraykit_loop(images, y, args.batch_size)
    if "compute" not in skip:
        loops["c"] = compute_loop(images, y, args.batch_size)
    # Epochs of (a), (b) and (c) take turns, so that a change in the machine's load hits all three;
    # the fastest epoch of each is the best estimate of its cost (other load only ever adds time).
    times: dict[str, list[float]] = {k: [] for k in loops}
    for e in range(args.epochs):
        for key, run_epoch in loops.items():
            started = clock()
            run_epoch(e)
            times[key].append(clock() - started)
    rows = {k: min(v) for k, v in times.items()}

    print(f"\nTask 1.1, seconds per epoch of {n} images (fastest of {args.epochs} epochs; all epochs in brackets):")
    for key, sec in rows.items():
        every = ", ".join(f"{t:.1f}" for t in times[key])
        print(f"  {names[key]:44s} {sec:8.2f} s/epoch {n / sec:8.1f} images/s   [{every}]")
    if "b" in rows and "c" in rows:
        print(f"  b/c = {rows['b'] / rows['c']:.3f}   (xraykit's epoch over the arithmetic's; goal <= 1.15)")
        print(f"  b/c counting a warm cache load in one epoch: {(warm + rows['b']) / rows['c']:.3f}")
    if "a" in rows and "b" in rows:
        print(f"  a/b = {rows['a'] / rows['b']:.2f}    (the naive loop over xraykit)")

    if "finetune" not in skip:
        ft = finetune(images, y, args.finetune_epochs, args.uncached_epochs, args.batch_size)
        per_epoch = min(ft["uncached"])
        d, e = per_epoch * args.finetune_epochs, ft["cached_total"]
        print(f"\nTask 1.2, {args.finetune_epochs} epochs of {n} images:")
        print(f"  one inference pass                           {ft['inference']:8.2f} s {n / ft['inference']:8.1f} images/s")
        print(f"  (d) uncached                                 {d:8.2f} s   ({per_epoch:.2f} s/epoch, fastest of "
              f"{args.uncached_epochs} run, x {args.finetune_epochs})")
        print(f"  (e) cached (features once, then the head)    {e:8.2f} s   (features {ft['features']:.2f} s, "
              f"{args.finetune_epochs} head epochs {e - ft['features']:.2f} s)")
        print(f"  d/e = {d / e:.1f}   (goal >= 6)")
        print(f"  e / one inference pass = {e / ft['inference']:.2f}   (goal <= 1.3)")
    print(f"\nload average {_load_average()} at the end (other processes share these cores)")
    workdir.cleanup()


if __name__ == "__main__":
    main()
