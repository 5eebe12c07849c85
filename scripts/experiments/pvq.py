"""Accuracy against bits per weight: PVQ versus per-layer k-means VQ on LeNet-300-100.

Usage::

    python -m scripts.experiments.pvq results.json [--epochs 2] [--budgets 4:3,4:4,8:2,8:3,8:4]

Each budget is ``lanes:bits``.  For every budget both methods pick, per layer,
the largest parameter whose all-in bits per weight fit the budget:

* PVQ: ``K`` by :func:`model.compress.pvq.network.choose_layer_k` (index + 8-bit
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

The zoo comparison (``--zoo``)::

    OMP_NUM_THREADS=1 python -m scripts.experiments.pvq --zoo reports/pvq_zoo.json \
        [--networks lenet5,minilm] [--zoo-budgets 2,2.5,3] [--pvq-lanes 4,8]

runs every network of :mod:`model.nets.zoo` at model level (float weights that are
exactly what the coded form represents; no fine-tuning, no int8 lowering):
every weight layer (Linear and convolution, as ``(out, cols)`` matrices, see
:mod:`model.nets.weightmat`) is coded with PVQ (per-layer ``K``, :func:`zoo_pvq`)
and with per-layer k-means VQ (per-layer ``k``, :func:`zoo_kmeans`) at each
budget, and the network's own metric is measured on its full evaluation set.
Both methods count their bits the same way: entries (index, plus PVQ's 8-bit
scale), side data (PVQ: one float32 scale per row; k-means: the int8 codebook
and its float32 scale) and a float32 bias per output.  A method whose smallest
parameter cannot meet a budget on the whole network is not run at it (the row
records the bits it would need).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model.compress.kmeans.network import (FINETUNE_BATCH, FINETUNE_LR, VQLinear, VQNetwork, _linear_layers,
                                           quantize_layer, to_torch)
from model.compress.lowering import CALIBRATION_IMAGES, evaluate_lowered, lower_vq
from model.compress.pvq.budget import ROW_OVERHEAD_BITS, choose_matrix_k
from model.compress.pvq.layers import pvq_code_matrix
from model.compress.pvq.network import pvq_compress
from model.contract.ints import ceil_div
from model.contract.pyramid import pvq_entry_bits
from model.nets.data import load_fashion_mnist
from model.nets.networks import evaluate, get_network, train_classifier
from sim.report.sections.pvq import zoo_markdown  # the report's table, stored in the zoo JSON

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
    """Per-layer k-means VQ at the budget, fine-tuned as :func:`model.compress.kmeans.network.vq_compress` does."""
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


# ---------------------------------------------------------------------------
# The zoo comparison (model level, every weight layer)

#: Networks of :mod:`model.nets.zoo`, run in this order (MiniLM, by far the largest, last).
ZOO_NETWORKS = ("lenet300", "lenet5", "crepe-tiny", "onet", "rnet", "minilm")
#: All-in bits per weight compared.  PVQ's floor is (index + 8-bit scale) / N:
#: 2.75 at N = 4 (K = 1), 1.5 at N = 8; k-means with d = 4 needs 2**(4 b) codewords.
ZOO_BUDGETS = (2.0, 2.5, 3.0)
#: Sub-vector dimensions tried for PVQ (the engine's lane counts).
ZOO_PVQ_LANES = (4, 8)
#: k-means sub-vector dimension (the project's per-layer baseline, ``model.compress.baselines``).
ZOO_KMEANS_D = 4
#: A float32 per-row scale of PVQ's 8-bit sub-vector scales (the engine folds it into requantization).
ROW_SCALE_BITS = 32
#: Float32 bias per output, counted for both methods (as :func:`model.compress.baselines.storage` does).
ZOO_BIAS_BITS = 32
#: k-means codebooks are fitted on at most this many sub-vectors per codeword, drawn at
#: random; every sub-vector is then assigned to its nearest stored (int8) codeword.  Keeps
#: MiniLM's 2048-codeword layers to minutes; smaller layers use all their sub-vectors.
FIT_VECTORS_PER_CODEWORD = 32
#: Sub-vectors per nearest-codeword block (bounds the distance matrix's memory).
ASSIGN_CHUNK = 8192
#: Slack so that a budget of exactly B admits a layer costing B bits per weight.
ZOO_BUDGET_EPS = 1e-9


def _bias_bits(module) -> int:
    return 0 if getattr(module, "bias", None) is None else module.bias.numel() * ZOO_BIAS_BITS


def nearest_codeword(vectors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest row of ``codebook`` (squared Euclidean) for every row of ``vectors``."""
    c = np.asarray(codebook, dtype=np.float64)
    c_sq = (c * c).sum(axis=1)
    out = np.empty(len(vectors), dtype=np.int64)
    for i in range(0, len(vectors), ASSIGN_CHUNK):
        x = np.asarray(vectors[i:i + ASSIGN_CHUNK], dtype=np.float64)
        out[i:i + ASSIGN_CHUNK] = (c_sq[None, :] - 2.0 * x @ c.T).argmin(axis=1)
    return out


def kmeans_matrix_bits(n_vectors: int, d: int, k: int, bias_bits: int) -> int:
    """All-in bits of a k-means-coded matrix: indices, int8 codebook and its scale, biases."""
    from model.compress.baselines import SIDE_SCALE_BITS, SIDE_VALUE_BITS, index_bits
    return n_vectors * index_bits(k) + k * d * SIDE_VALUE_BITS + SIDE_SCALE_BITS + bias_bits


def choose_kmeans_k(n_vectors: int, d: int, weights: int, bits_per_weight: float, bias_bits: int) -> int:
    """Largest power-of-two ``k`` (capped as :func:`model.compress.baselines.capped_k`) within the budget; 2 if none.

    Parameters
    ----------
    n_vectors : int
        Sub-vectors of the layer.
    d : int
        Sub-vector dimension.
    weights : int
        Weights of the layer.
    bits_per_weight : float
    bias_bits : int
        The layer's bias bits.
    """
    from model.compress.baselines import capped_k
    budget = bits_per_weight * weights * (1 + ZOO_BUDGET_EPS)
    best, k = capped_k(2, n_vectors), 2
    while capped_k(k, n_vectors) == k and kmeans_matrix_bits(n_vectors, d, k, bias_bits) <= budget:
        best, k = k, 2 * k
    return best


def kmeans_code_matrix(w2d: np.ndarray, d: int, k: int, seed: int) -> tuple[np.ndarray, int]:
    """k-means-code an ``(out, cols)`` matrix; returns the reconstruction from the int8 codebook and ``k`` found."""
    from model.compress.baselines import int8_side
    from model.compress.kmeans.network import join_subvectors, kmeans, split_subvectors
    vec = split_subvectors(np.asarray(w2d, np.float32), d).reshape(-1, d)
    fit = vec
    if len(vec) > FIT_VECTORS_PER_CODEWORD * k:
        rng = np.random.default_rng(seed)
        fit = vec[rng.choice(len(vec), FIT_VECTORS_PER_CODEWORD * k, replace=False)]
    codebook, _ = kmeans(fit, k, seed=seed)
    stored, _ = int8_side(codebook)
    idx = nearest_codeword(vec, stored)
    rec = join_subvectors(stored[idx].reshape(w2d.shape[0], -1, d), w2d.shape[1])
    return rec.astype(np.float32), len(stored)


def zoo_kmeans(matrices: list, biases: list, d: int, bits: float, seed: int, dry: bool = False) -> dict:
    """Per-layer k-means at ``bits`` per weight: ``{weights, params, bits_per_weight, over_budget_layers}``.

    ``matrices`` are ``(out, cols)`` arrays, ``biases`` each layer's bias bits;
    ``dry`` only chooses the parameters and counts the bits.
    """
    weights, params, over, total = [], [], [], 0
    for i, (w, bb) in enumerate(zip(matrices, biases)):
        n_vec = w.shape[0] * ceil_div(w.shape[1], d)
        k = choose_kmeans_k(n_vec, d, w.size, bits, bb)
        layer_bits = kmeans_matrix_bits(n_vec, d, k, bb)
        if not dry:
            rec, found = kmeans_code_matrix(w, d, k, seed + i)
            weights.append(rec)
            # A codebook k-means could not fill (fewer distinct sub-vectors than k) is stored smaller.
            layer_bits -= (k - found) * d * CODEWORD_BITS
        if layer_bits > bits * w.size * (1 + ZOO_BUDGET_EPS):
            over.append(i)
        params.append(k)
        total += layer_bits
    return {"weights": weights, "params": params, "over_budget_layers": over,
            "bits_per_weight": total / sum(w.size for w in matrices)}


def zoo_pvq(matrices: list, biases: list, lanes: int, bits: float, dry: bool = False) -> dict:
    """Per-layer PVQ at ``bits`` per weight (:func:`model.compress.pvq.network.choose_matrix_k`; K = 1 if none fits)."""
    weights, params, over, total = [], [], [], 0
    for i, (w, bb) in enumerate(zip(matrices, biases)):
        out, cols = w.shape
        # Per row: the float row scale, and the bias (spread over the rows it belongs to).
        row_bits = ROW_SCALE_BITS + bb / out
        k = choose_matrix_k(cols, out, lanes, bits, row_bits)
        if k == 0:
            over.append(i)
            k = 1
        if not dry:
            weights.append(pvq_code_matrix(w, lanes, k)[0])
        params.append(k)
        total += out * (ceil_div(cols, lanes) * pvq_entry_bits(lanes, k) + ROW_SCALE_BITS) + bb
    return {"weights": weights, "params": params, "over_budget_layers": over,
            "bits_per_weight": total / sum(w.size for w in matrices)}


def run_zoo_network(name: str, budgets, pvq_lanes, kmeans_d: int, seed: int) -> dict:
    """Every (method, budget) of one network; see the module docstring."""
    from model.nets.weightmat import weight_matrix, with_weights
    from model.nets.zoo import load_network
    zn = load_network(name, progress=False)
    mods = zn.weight_modules()
    mats = [weight_matrix(m) for _, m in mods]
    bias_bits = [_bias_bits(m) for _, m in mods]
    ref = zn.evaluate()
    result = {"network": name, "metric_name": zn.metric_name, "description": zn.description,
              "weight_layers": len(mods), "weights": int(sum(w.size for w in mats)),
              "float_metric": ref[zn.metric_name], "rows": []}
    configs = [("kmeans", kmeans_d)] + [("pvq", lanes) for lanes in pvq_lanes]
    for bits in budgets:
        for method, dim in configs:
            code = (lambda dry: zoo_kmeans(mats, bias_bits, dim, bits, seed, dry)) if method == "kmeans" else \
                (lambda dry: zoo_pvq(mats, bias_bits, dim, bits, dry))
            row = {"method": method, "dim": dim, "budget": bits}
            plan = code(True)
            if plan["bits_per_weight"] > bits * (1 + ZOO_BUDGET_EPS):
                row.update(skipped=True, params=plan["params"], bits_per_weight=plan["bits_per_weight"])
                result["rows"].append(row)
                continue
            t0 = time.perf_counter()
            coded = code(False)
            quantize_s = time.perf_counter() - t0
            metrics = zn.evaluate(with_weights(zn.model, {n: w for (n, _), w in zip(mods, coded["weights"])}))
            row.update(skipped=False, params=coded["params"], over_budget_layers=coded["over_budget_layers"],
                       bits_per_weight=coded["bits_per_weight"], metric=metrics[zn.metric_name],
                       metrics={k: float(v) for k, v in metrics.items()}, quantize_seconds=quantize_s)
            result["rows"].append(row)
            print(f"{name} {method} d={dim} budget={bits:g}: bits/w={row['bits_per_weight']:.3f} "
                  f"{zn.metric_name}={row['metric']:.4f} ({quantize_s:.0f} s)", file=sys.stderr, flush=True)
    return result


def merge_zoo(old: dict, new: dict) -> dict:
    """``new`` network results added to ``old`` ones: a row of the same (method, dim, budget) is replaced.

    Raises
    ------
    ValueError
        If the two runs count bits differently (other constants), so their rows would not compare.
    """
    for key in ("kmeans_d", "fit_vectors_per_codeword", "row_scale_bits", "bias_bits", "seed"):
        if old.get(key) != new.get(key):
            raise ValueError(f"cannot merge: {key} is {old.get(key)!r} in the existing file, {new.get(key)!r} now")
    nets = {n["network"]: dict(n) for n in old["networks"]}
    for n in new["networks"]:
        if n["network"] not in nets:
            nets[n["network"]] = n
            continue
        prev = nets[n["network"]]
        keys = {(r["method"], r["dim"], r["budget"]) for r in n["rows"]}
        rows = [r for r in prev["rows"] if (r["method"], r["dim"], r["budget"]) not in keys] + n["rows"]
        prev.update(rows=sorted(rows, key=lambda r: (r["budget"], r["method"] != "kmeans", r["dim"])),
                    seconds=prev.get("seconds", 0.0) + n.get("seconds", 0.0))
    order = [n for n in ZOO_NETWORKS if n in nets] + [n for n in nets if n not in ZOO_NETWORKS]
    networks = [nets[n] for n in order]
    return dict(old, budgets=sorted(set(old["budgets"]) | set(new["budgets"])),
                pvq_lanes=sorted(set(old["pvq_lanes"]) | set(new["pvq_lanes"])), networks=networks,
                total_seconds=old["total_seconds"] + new["total_seconds"], table_markdown=zoo_markdown(networks))


def run_zoo(output: Path, networks, budgets, pvq_lanes, kmeans_d: int, seed: int, merge: bool = False) -> dict:
    """Run :func:`run_zoo_network` for every network, rewriting ``output`` after each one.

    With ``merge``, the results are merged into those already in ``output`` (:func:`merge_zoo`).
    """
    old = json.loads(output.read_text()) if merge and output.exists() else None
    t_start = time.perf_counter()
    done = []
    for name in networks:
        t0 = time.perf_counter()
        done.append(run_zoo_network(name, budgets, pvq_lanes, kmeans_d, seed))
        done[-1]["seconds"] = time.perf_counter() - t0
        result = {"budgets": list(budgets), "pvq_lanes": list(pvq_lanes), "kmeans_d": kmeans_d, "seed": seed,
                  "fit_vectors_per_codeword": FIT_VECTORS_PER_CODEWORD, "row_scale_bits": ROW_SCALE_BITS,
                  "bias_bits": ZOO_BIAS_BITS, "finetune": False, "networks": done,
                  "total_seconds": time.perf_counter() - t_start, "table_markdown": zoo_markdown(done)}
        if old is not None:
            result = merge_zoo(old, result)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
    print(result["table_markdown"])
    return result


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


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _parsed(text: str, kind) -> list:
    try:
        values = [kind(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def _floats(text: str) -> list[float]:
    return _parsed(text, float)


def _ints(text: str) -> list[int]:
    return _parsed(text, int)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path, help="JSON file to write")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="fine-tuning epochs for both methods")
    ap.add_argument("--budgets", type=parse_budgets, default=list(DEFAULT_BUDGETS),
                    help="comma-separated lanes:bits pairs, e.g. 4:3,8:2")
    ap.add_argument("--methods", default="pvq,vq", help="comma-separated subset of pvq,vq")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zoo", action="store_true",
                    help="compare PVQ and k-means on the model.nets.zoo networks instead (model level)")
    ap.add_argument("--networks", type=_names, default=list(ZOO_NETWORKS),
                    help=f"--zoo: comma-separated networks (default {','.join(ZOO_NETWORKS)})")
    ap.add_argument("--zoo-budgets", type=_floats, default=list(ZOO_BUDGETS),
                    help="--zoo: comma-separated all-in bits per weight")
    ap.add_argument("--pvq-lanes", type=_ints, default=list(ZOO_PVQ_LANES),
                    help="--zoo: comma-separated PVQ sub-vector dimensions")
    ap.add_argument("--kmeans-d", type=int, default=ZOO_KMEANS_D, help="--zoo: k-means sub-vector dimension")
    ap.add_argument("--merge", action="store_true",
                    help="--zoo: merge into the results already in OUTPUT (same rows are replaced)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (set OMP_NUM_THREADS too)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.zoo:
        import model.nets.registry
        import model.nets.zoo
        from model.codecs.pvq import PVQError
        model.nets.zoo.EVAL_THREADS = args.threads  # the zoo's evaluations would otherwise take 2
        unknown = [n for n in args.networks if n not in model.nets.registry.network_names()]
        if unknown:
            ap.error(f"unknown network(s) {', '.join(unknown)}; known: {', '.join(model.nets.registry.network_names())}")
        if min(args.pvq_lanes) < 2 or args.kmeans_d < 1 or min(args.zoo_budgets) <= 0:
            ap.error("--pvq-lanes must be >= 2, --kmeans-d >= 1 and budgets positive")
        try:
            run_zoo(args.output, args.networks, args.zoo_budgets, args.pvq_lanes, args.kmeans_d, args.seed,
                    args.merge)
        except (PVQError, model.nets.zoo.MissingPackage, ValueError, OSError) as exc:
            print(f"experiments_pvq: {exc}", file=sys.stderr)
            return 1
        return 0

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
