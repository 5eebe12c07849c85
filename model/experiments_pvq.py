"""Accuracy against bits per weight: PVQ versus per-layer k-means VQ on LeNet-300-100.

Usage::

    python -m model.experiments_pvq results.json [--epochs 2] [--budgets 4:3,4:4,8:2,8:3,8:4]

Each budget is ``lanes:bits``.  For every budget both methods pick, per layer,
the largest parameter whose all-in bits per weight fit the budget:

* PVQ: ``K`` by :func:`model.pvq_compress.choose_layer_k` (index + 8-bit
  scale per sub-vector, plus a 32-bit bias and a 32-bit requantization word
  per row);
* VQ: a power-of-two codebook size ``k`` by :func:`choose_vq_k`, counting
  ``log2(k)``-bit indices per sub-vector, the same 64 bits per row, and the
  layer's int8 codebook (``k * lanes * 8`` bits).

A layer that cannot meet the budget with the smallest parameter (``K = 1``,
``k = 2``) takes it anyway; the network-wide all-in bits per weight in the
table is the honest total.  Both methods are fine-tuned for the same number of
epochs (PVQ: gains and biases; VQ: codewords and biases), calibrated on the
same 2000 training images, and evaluated on the 10 000 test images: the float
network after k-means / projection ("init"), after fine-tuning ("float"), and
the int8 golden model ("int8").
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from model.data import load_fashion_mnist
from model.layout import ceil_div
from model.lowering import CALIBRATION_IMAGES, evaluate_lowered, lower_vq
from model.networks import evaluate, get_network, train_classifier
from model.pvq_compress import ROW_OVERHEAD_BITS, pvq_compress
from model.vq import (FINETUNE_BATCH, FINETUNE_LR, VQLinear, VQNetwork, _linear_layers, quantize_layer,
                      to_torch)

#: (lanes, all-in bits per weight) pairs measured by default.
DEFAULT_BUDGETS = ((4, 3.0), (4, 4.0), (8, 2.0), (8, 3.0), (8, 4.0))
DEFAULT_EPOCHS = 2
#: int8 codewords.
CODEWORD_BITS = 8
#: Largest codebook tried (the engine's 16-bit codebook fields).
MAX_VQ_K = 1 << 16
NETWORK = "lenet300"


def vq_layer_bits(in_features: int, out_features: int, lanes: int, k: int) -> int:
    """All-in bits of a VQ layer: indices, per-row bias and requantization words, int8 codebook."""
    s = ceil_div(in_features, lanes)
    index_bits = max(1, math.ceil(math.log2(k)))
    return out_features * (s * index_bits + ROW_OVERHEAD_BITS) + k * lanes * CODEWORD_BITS


def choose_vq_k(in_features: int, out_features: int, lanes: int, bits_per_weight: float) -> int:
    """Largest power-of-two ``k`` (2 .. :data:`MAX_VQ_K`) within the budget; 2 if none fits."""
    budget = bits_per_weight * in_features * out_features * (1 + 1e-9)
    best = 2
    k = 2
    while k <= MAX_VQ_K and vq_layer_bits(in_features, out_features, lanes, k) <= budget:
        best = k
        k *= 2
    return best


def run_vq(model, lanes: int, bits: float, epochs: int, seed: int, train, test, calib) -> dict:
    """Per-layer k-means VQ at the budget, fine-tuned as :func:`model.vq.vq_compress` does."""
    linears = _linear_layers(model)
    ks = [choose_vq_k(l.in_features, l.out_features, lanes, bits) for l, _ in linears]
    t0 = time.perf_counter()
    layers = [quantize_layer(lin, lanes, k, seed + i, relu) for i, ((lin, relu), k) in enumerate(zip(linears, ks))]
    kmeans_s = time.perf_counter() - t0
    net = VQNetwork(name=NETWORK, method="vq", dim=lanes, k=max(ks), layers=layers)
    init_acc = evaluate(to_torch(net), *test)
    t0 = time.perf_counter()
    if epochs > 0:
        tm = to_torch(net)
        train_classifier(tm, *train, epochs=epochs, batch=FINETUNE_BATCH, lr=FINETUNE_LR, seed=seed,
                         progress=False, desc="vq finetune")
        net.layers = [m.to_layer(l.relu) for m, l in zip([m for m in tm if isinstance(m, VQLinear)], layers)]
    ft_s = time.perf_counter() - t0
    float_acc = evaluate(to_torch(net), *test)
    lowered = lower_vq(net, calib, lanes)
    int8_acc = evaluate_lowered(lowered, *test)
    weights = sum(l.in_features * l.out_features for l in layers)
    # Bits with the codebook sizes requested (index width) and actually found (codebook storage).
    bits_total = sum(vq_layer_bits(l.in_features, l.out_features, lanes, k) - (k - l.k) * lanes * CODEWORD_BITS
                     for l, k in zip(layers, ks))
    over = [i for i, (l, k) in enumerate(zip(layers, ks))
            if vq_layer_bits(l.in_features, l.out_features, lanes, k) > bits * l.in_features * l.out_features]
    return {"method": "vq", "lanes": lanes, "budget": bits, "params": ks,
            "codebook_sizes": [l.k for l in layers], "over_budget_layers": over,
            "bits_per_weight": bits_total / weights, "init_accuracy": init_acc, "float_accuracy": float_acc,
            "int8_accuracy": int8_acc, "quantize_seconds": kmeans_s, "finetune_seconds": ft_s}


def run_pvq(model, lanes: int, bits: float, epochs: int, seed: int, train, test, calib) -> dict:
    t0 = time.perf_counter()
    net, lowered = pvq_compress(model, lanes=lanes, bits_per_weight=bits, finetune_epochs=epochs, seed=seed,
                                progress=False, name=NETWORK, train_data=train, eval_data=test, calib_x=calib)
    info = lowered.info
    return {"method": "pvq", "lanes": lanes, "budget": bits, "params": info["pvq_k"],
            "over_budget_layers": info["over_budget_layers"], "bits_per_weight": info["bits_per_weight"],
            "stream_bits_per_weight": info["stream_bits_per_weight"],
            "init_accuracy": info["pvq_projection_accuracy"], "float_accuracy": info["pvq_float_accuracy"],
            "scaleq_accuracy": info["pvq_scaleq_accuracy"], "int8_accuracy": info["int8_accuracy"],
            "quantize_seconds": info["project_seconds"], "finetune_seconds": info.get("finetune_seconds", 0.0),
            "total_seconds": time.perf_counter() - t0}


def markdown_table(float_acc: float, rows: list[dict], epochs: int) -> str:
    lines = [f"LeNet-300-100, Fashion-MNIST test (10 000 images); float network {100 * float_acc:.2f} %; "
             f"fine-tuning {epochs} epoch(s). K / k per layer; bits/weight all-in "
             f"(index + scale or codebook + 64 bits per row).", "",
             "| lanes | budget | method | K or k per layer | bits/weight | init float | fine-tuned float "
             "| int8 golden |",
             "|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        params = "/".join(str(p) for p in r["params"])
        if r["over_budget_layers"]:
            params += " (over: " + ",".join(str(i) for i in r["over_budget_layers"]) + ")"
        lines.append(f"| {r['lanes']} | {r['budget']:g} | {r['method'].upper()} | {params} | "
                     f"{r['bits_per_weight']:.3f} | {100 * r['init_accuracy']:.2f} | "
                     f"{100 * r['float_accuracy']:.2f} | {100 * r['int8_accuracy']:.2f} |")
    return "\n".join(lines)


def parse_budgets(text: str) -> list[tuple[int, float]]:
    out = []
    for item in text.split(","):
        lanes, bits = item.split(":")
        out.append((int(lanes), float(bits)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path, help="JSON file to write")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="fine-tuning epochs for both methods")
    ap.add_argument("--budgets", type=parse_budgets, default=list(DEFAULT_BUDGETS),
                    help="comma-separated lanes:bits pairs, e.g. 4:3,8:2")
    ap.add_argument("--methods", default="pvq,vq", help="comma-separated subset of pvq,vq")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    model = get_network(NETWORK, progress=False, seed=args.seed)
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    rng = np.random.default_rng(args.seed)
    calib = train[0][rng.choice(len(train[0]), size=CALIBRATION_IMAGES, replace=False)]
    float_acc = evaluate(model, *test)
    rows = []
    for lanes, bits in args.budgets:
        for method in args.methods.split(","):
            run = {"pvq": run_pvq, "vq": run_vq}[method]
            t0 = time.perf_counter()
            row = run(model, lanes, bits, args.epochs, args.seed, train, test, calib)
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(f"{method} lanes={lanes} budget={bits}: params={row['params']} "
                  f"bits/w={row['bits_per_weight']:.3f} float={row['float_accuracy']:.4f} "
                  f"int8={row['int8_accuracy']:.4f} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    table = markdown_table(float_acc, rows, args.epochs)
    print(table)
    result = {"network": NETWORK, "test_images": len(test[0]), "calibration_images": CALIBRATION_IMAGES,
              "seed": args.seed, "finetune_epochs": args.epochs, "float_accuracy": float_acc, "rows": rows,
              "total_seconds": time.perf_counter() - t_start, "table_markdown": table}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
