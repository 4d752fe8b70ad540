"""Do the explanations find the lesions? Pointing game and inside share per method and layer.

Trains Task 1.1 exactly as ``xraykit demo`` does (640 synthetic training images, 10 epochs,
the report's recipe) at each requested image size, then runs ``xraykit explain-score`` on
every lesioned PNEUMONIA test image for each method, and for ``cam`` at each layer::

    python benchmarks/explain_localisation.py --sizes 64,128 --seeds 0,1,2

The chance level of both scores is the lesions' share of the image; a method is only
informative where it beats that by far. For the CAM rows the ideal map's scores (a perfect
map on the same grid) say how much a coarse grid allows at all. ``--recipe strong`` scores
the best-validation checkpoint instead of the demo's last epoch. Seconds per image are wall clock on this machine,
for the same images, so compare them within one run. ``benchmarks/results/`` keeps the JSON of the
runs quoted in Tutorial 4 (``--json``), named by size, recipe and seed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import xraykit

VARIANTS = {  # label: (method, options)
    "cam (layer4)": ("cam", {}),
    "cam (layer4 receptive-field)": ("cam", {"align": "receptive-field"}),
    "cam (layer3)": ("cam", {"layer": "layer3"}),
    "cam (layer3 receptive-field)": ("cam", {"layer": "layer3", "align": "receptive-field"}),
    "cam (layer2)": ("cam", {"layer": "layer2"}),
    "guided-gradcam (layer4)": ("guided-gradcam", {}),
    "guided-gradcam (layer3)": ("guided-gradcam", {"layer": "layer3"}),
    "occlusion": ("occlusion", {}),
    "integrated-gradients": ("integrated-gradients", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64", help="comma-separated image sizes (the demo's is 64)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated labels from: " + ", ".join(VARIANTS))
    parser.add_argument("--recipe", default="report", help="'report' (the demo's: last epoch) or 'strong' (best validation loss)")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in map(int, args.sizes.split(",")):
            for seed in map(int, args.seeds.split(",")):
                data = f"synthetic:n=640,seed={seed}"
                run = xraykit.train(data, "scratch", image_size=size, epochs=10, seed=seed, quiet=True, recipe=args.recipe,
                                    out=Path(tmp) / f"t11-{size}-{seed}")
                accuracy = xraykit.evaluate(run, data, out=Path(tmp) / "eval", cam=False)["accuracy"]
                for label in args.variants.split(","):
                    method, options = VARIANTS[label]
                    s = xraykit.explain_score(run, data, methods=[method], options={method: options} if options else None,
                                              out=Path(tmp) / "score")
                    m = s["methods"][method]
                    rows.append({"size": size, "seed": seed, "variant": label, "test_accuracy": accuracy,
                                 "images": s["images"], "chance": s["chance"]["mask_area_fraction"],
                                 "pointing_game": m["pointing_game"], "inside_share": m["inside_share"],
                                 "seconds_per_image": m["seconds_per_image"], "ideal": m["ideal"]})
                    r = rows[-1]
                    ideal = (f"ideal {m['ideal']['pointing_game']:.3f}/{m['ideal']['inside_share']:.3f} "
                             f"on {m['ideal']['grid'][0]}x{m['ideal']['grid'][1]}") if m["ideal"] else "ideal -"
                    print(f"{size:4d} px seed {seed}  {label:30s} pointing {r['pointing_game']:.3f}  inside "
                          f"{r['inside_share']:.3f}  chance {r['chance']:.3f}  {ideal}  {r['seconds_per_image']:.3f} s/img  "
                          f"(test acc {accuracy:.3f}, {r['images']} images)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
