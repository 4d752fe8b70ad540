"""A backbone defined and registered inside a running program: no package, no entry point.

    python examples/custom_backbone.py            # 320 synthetic images at 32 px, 8 epochs
    python examples/custom_backbone.py --tiny     # seconds: 64 images, 1 epoch

``xraykit.plugins.register`` adds a plugin to this process only, which suits notebooks and
experiments; ``unregister`` takes it out again. For a plugin that every ``xraykit`` command
sees, make it a package with an entry point (docs: Tutorial 5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

import xraykit
from xraykit import plugins


def build_widecnn(num_classes: int) -> nn.Module:
    """Two wide convolution blocks; ``features`` is the last spatial map, ``head`` the classifier."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 48, kernel_size=5, stride=2, padding=2)),        # 0: the stem
        nn.Sequential(nn.BatchNorm2d(48), nn.ReLU(), nn.Conv2d(48, 96, 3, padding=1),
                      nn.BatchNorm2d(96), nn.ReLU()),                               # 1: features
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(96, num_classes),                                                 # 4: the head
    )


# The dotted names are positions in the Sequential: xraykit finds each part by name, never by guessing.
WIDECNN = xraykit.Backbone(name="widecnn", build=build_widecnn, head="4", stem="0.0", cam_layer="1",
                           description="two wide conv blocks (examples/custom_backbone.py)")


class WideCNNPlugin:
    """A plugin can be any object whose methods are marked as hook implementations."""

    @xraykit.hookimpl
    def register_backbones(self, register):
        register(WIDECNN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/widecnn"))
    parser.add_argument("--tiny", action="store_true", help="64 images, 1 epoch")
    args = parser.parse_args()
    data, epochs = ("synthetic:n=64", 1) if args.tiny else ("synthetic:n=320", 8)

    name = plugins.register(WideCNNPlugin(), name="examples.widecnn")
    try:
        print("registered backbones:", ", ".join(xraykit.list_plugins("backbone")))
        run = xraykit.train(data, "scratch", backbone="widecnn", epochs=epochs, image_size=32, out=args.out, quiet=True)
        metrics = xraykit.evaluate(run, data)
        trainable, total = xraykit.count_parameters(run.load_model())
        print(f"widecnn: {total:,} parameters, test accuracy {metrics['accuracy']:.1%} "
              f"(majority baseline {metrics['majority_baseline']['accuracy']:.1%})")
        test = xraykit.load_data(data, image_size=32)["test"]
        maps = xraykit.explain_maps(run.load_model(), WIDECNN, test.images[:4], test.labels[:4], method="cam")
        print(f"CAM at layer '{WIDECNN.cam_layer}': {tuple(maps.shape)} maps; figures in {run.path}")
    finally:
        plugins.unregister(name)
    assert "widecnn" not in xraykit.list_plugins("backbone")


if __name__ == "__main__":
    main()
