"""LVQ classifiers (issue 15, item 4): ours against unilvq, float against the engine, into reports/lvq.json.

Usage::

    OMP_NUM_THREADS=1 python -m scripts.experiments.lvq [--json reports/lvq.json] [--images 10]

For each representation (:data:`model.lvq.features.REPRESENTATIONS`: PCA-64 of the pixels, LeNet-5's
penultimate features) and each method (LVQ1, GLVQ, GMLVQ), with
:data:`model.lvq.prototypes.PER_CLASS` prototypes per class, seed 0, on all 60k training images and the
10k test images: our float accuracy and training time, and unilvq's counterpart's
(:mod:`model.lvq.reference`).  On the PCA representation each method is also compressed into an engine
program (``vqe compress --network lenet300 --method M``: int8 golden accuracy on the 10k test images,
compression) and run on Verilator (``--images`` test images: bit-exact, cycles per image).
About 10 minutes on one thread (unilvq's LGMLVQ takes the most).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.lvq.features import REPRESENTATIONS
from model.lvq.prototypes import PER_CLASS, TRAINERS, train
from model.lvq.reference import available, reference_accuracy

#: Verilator images per program (cycles per image are the same for every image).
IMAGES = 10
#: Largest gap (points of accuracy) allowed between our LVQ1 / GLVQ and unilvq's.
CROSS_CHECK_POINTS = 1.0
#: Methods whose unilvq counterpart must be within :data:`CROSS_CHECK_POINTS`.
CROSS_CHECKED = ("lvq1", "glvq")


def engine_results(method: str, images: int) -> dict:
    """``method`` compressed for the engine (lenet300's input) and run on Verilator."""
    from model.compress.pipeline import compress
    from sim.api import run
    t0 = time.perf_counter()
    program = compress("lenet300", method, progress=False)
    seconds = time.perf_counter() - t0
    r = run(program, backend="verilator", images=images)
    info = program.meta["info"]
    return {"float_accuracy": info["float_accuracy"], "coded_float_accuracy": info["vq_float_accuracy"],
            "int8_golden_accuracy": info["int8_accuracy"], "rtl_accuracy": r["accuracy"], "rtl_images": images,
            "bit_exact": r["bit_exact"], "cycles_per_image": r["cycles_per_image"],
            "layers": [{"kind": m["kind"], "in_features": m["in_features"], "out_features": m["out_features"]}
                       for m in program.meta["layers"]],
            "compression": r["compression"], "codebook_size": info["codebook_size"],
            "train_seconds": info["lvq"]["train_seconds"], "compress_seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="reports/lvq.json", help="output (default reports/lvq.json)")
    ap.add_argument("--images", type=int, default=IMAGES, help=f"Verilator images per program (default {IMAGES})")
    args = ap.parse_args(argv)
    missing = available()
    if missing:
        raise SystemExit(missing)
    out = {"per_class": PER_CLASS, "seed": 0, "train_images": 60000, "test_images": 10000,
           "nearest_prototype_unit": "the engine's NEAREST layer: a projection FC layer, then squared distances "
                                     "to the int8 prototypes (lanes squares per cycle) and their argmin's label",
           "cross_check_points": CROSS_CHECK_POINTS, "settings": {}}
    jobs = [(r, m) for r in REPRESENTATIONS for m in TRAINERS]
    for rep_name, method in tqdm(jobs, desc="lvq", unit="model"):
        settings = out["settings"]
        if rep_name not in settings:
            rep = REPRESENTATIONS[rep_name]()
            settings[rep_name] = {"representation": rep.description, "features": int(rep.train[0].shape[1]),
                                  "methods": {}}
        model = train(method, *rep.train, progress=False)
        ref = reference_accuracy(method, rep.train, rep.test)
        row = {"float_accuracy": model.accuracy(*rep.test), "train_seconds": model.info["train_seconds"],
               "prototypes": len(model.labels), "rank": None if model.omega is None else len(model.omega),
               "unilvq": ref, "gap_points": 100 * (model.accuracy(*rep.test) - ref["accuracy"])}
        if rep_name == "pca":
            row["engine"] = engine_results(method, args.images)
        settings[rep_name]["methods"][method] = row
    gaps = {f"{r}/{m}": s["methods"][m]["gap_points"] for r, s in out["settings"].items() for m in CROSS_CHECKED}
    out["cross_check_passed"] = bool(all(abs(g) <= CROSS_CHECK_POINTS for g in gaps.values()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2, default=lambda v: v.item() if isinstance(v, np.generic)
                                          else str(v)) + "\n")
    print(f"wrote {args.json}; unilvq gaps (points): " + ", ".join(f"{k} {v:+.2f}" for k, v in gaps.items()))
    return 0 if out["cross_check_passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
