#!/usr/bin/env python3
"""A Deep Compression network on the engine: program, golden accuracy, RTL run, decoder rate.

Usage: python scripts/deepcomp_engine.py [--network lenet300] [-o FILE.vqz] [--images 2]
       [--backend icarus] [--golden-images 10000]

Lowers the network with :func:`model.compress.deepcomp.recipe.lower_network_deepcomp` (cached
training), lays it out with :func:`model.program.writer.build_program` (sparse
Huffman-coded layers), runs the golden model on the test images and the RTL on
the first ``--images`` of them, and prints one JSON object: accuracy, the
compression (every overhead counted), ``bit_exact``, the counters, and the
decoder's rate ``huffman_symbols / huffman_busy_cycles`` with the symbols per
engine cycle.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="lenet300")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", help="also write the program file here")
    parser.add_argument("--images", type=int, default=2, help="test images on the RTL")
    parser.add_argument("--backend", default="icarus", choices=("amaranth", "icarus", "verilator"))
    parser.add_argument("--golden-images", type=int, default=10000, help="test images on the golden model")
    parser.add_argument("--latency", type=int, default=10)
    parser.add_argument("--stall", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np

    from model.compress.deepcomp.recipe import lower_network_deepcomp
    from model.contract.fixedpoint import quantize_act
    from model.nets.data import load_fashion_mnist
    from model.program.writer import build_program
    from sim.run import run_program

    lowered = lower_network_deepcomp(args.network, seed=args.seed, progress=False)
    program = build_program(lowered, info={"seed": args.seed})
    if args.output:
        program.save(args.output)
    x, y = load_fashion_mnist("test")
    xq = quantize_act(x.reshape(len(x), -1), lowered.input_scale)
    golden = run_program(program, xq[:args.golden_images], y[:args.golden_images], "golden")
    rtl = run_program(program, xq[:args.images], y[:args.images], args.backend,
                      latency=args.latency, stall=args.stall)
    c = rtl["counters"]
    out = {
        "network": args.network,
        "float_accuracy": lowered.info.get("float_accuracy"),
        "golden_accuracy": golden["accuracy"], "golden_images": golden["images"],
        "compression": program.meta["compression"],
        "layers": [l.get("sparse") for l in program.meta["layers"]],
        "engine": program.meta["engine"],
        "rtl": {k: rtl[k] for k in ("backend", "images", "bit_exact", "mismatches", "counter_mismatches",
                                    "cycles", "cycles_per_image", "sim_seconds")},
        "counters": c,
        "decoder_rate": c["huffman_symbols"] / c["huffman_busy_cycles"] if c["huffman_busy_cycles"] else None,
        "symbols_per_cycle": c["huffman_symbols"] / c["cycles"] if c.get("cycles") else None,
    }
    print(json.dumps(out, indent=1, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
    return 0 if rtl["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
