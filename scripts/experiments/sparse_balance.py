"""Sparse layers' rows balanced across processing elements (issue 16): per-PE work, stream words and outputs.

Usage::

    python -m scripts.experiments.sparse_balance [--network lenet300] [--pes 2 4 8] [--images 200]

Lowers the network with Deep Compression (cached training), writes it for each ``P`` with rows dealt
round-robin (``build_program(..., balance=False)``) and balanced (the default,
:mod:`model.program.balance`), and prints one JSON object per ``P``: each layer's per-PE work (its
rows' cycles, `model.program.balance.sparse_row_work`, as stored), its stream words, Huffman bits and fillers, the
compression ratio, the golden model's accuracy on the first ``--images`` test images, whether its
outputs are those of ``P = 1`` bit for bit, and the counters that differ between the two programs.
No RTL is run.
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
    parser.add_argument("--pes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args(argv)

    import numpy as np

    from model.compress.deepcomp.recipe import lower_network_deepcomp
    from model.contract.fixedpoint import quantize_act
    from model.golden.engine import GoldenEngine
    from model.nets.data import load_fashion_mnist
    from model.program.balance import pe_work, sparse_row_work
    from model.program.writer import build_program

    lowered = lower_network_deepcomp(args.network, seed=args.seed, progress=False)
    x, y = load_fashion_mnist("test")
    xq = quantize_act(x.reshape(len(x), -1), lowered.input_scale)[:args.images]
    y = np.asarray(y[:args.images])

    def measure(program, pes):
        image, _, _ = program.dram_image(xq)
        run = GoldenEngine(program.config).run(image)
        metas = program.meta["layers"]
        layers = []
        for i, (meta, layer) in enumerate(zip(metas, lowered.layers)):
            rows = np.asarray(meta.get("row_order", range(layer.out_features)))
            cols = np.asarray(metas[i - 1].get("row_order", range(layer.in_features))) if i else \
                np.arange(layer.in_features)
            stored = np.asarray(layer.indices)[rows][:, cols]
            layers.append({"pe_work": pe_work(sparse_row_work(stored), pes).tolist(),
                           "words": meta["placement"]["words"], "huffman_bits": meta["sparse"]["huffman_bits"],
                           "fillers": meta["sparse"]["fillers"], "permuted": "row_order" in meta})
        return run, {"layers": layers, "stream_words": sum(l["words"] for l in layers),
                     "ratio_vs_fp32": program.meta["compression"]["ratio_vs_fp32"],
                     "accuracy": float(np.mean(run.outputs.argmax(axis=1) == y))}

    one, _ = measure(build_program(lowered, pes=1), 1)
    for pes in args.pes:
        before, b = measure(build_program(lowered, pes=pes, balance=False), pes)
        after, a = measure(build_program(lowered, pes=pes), pes)
        cb, ca = before.counters, after.counters
        print(json.dumps({"pes": pes, "before": b, "after": a,
                          "outputs_as_p1": bool(np.array_equal(after.outputs, one.outputs)
                                                and np.array_equal(before.outputs, one.outputs)),
                          "counters_differing": {k: [cb[k], ca[k]] for k in cb if cb[k] != ca[k]}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
