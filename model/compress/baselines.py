"""Per-layer baselines for the universal codebook, and the bit accounting shared by all methods.

Every method codes each weight layer (as an ``(out, cols)`` matrix, see
:mod:`model.nets.weightmat`) independently and stores its side data (codebooks,
projections, means) as int8 with one float32 scale per array, as the engine
stores codebooks; the reconstructions use those int8 values, so the quality
measured is that of exactly what is counted.

Methods
=======
``kmeans`` (d, k)
    Per-layer VQ as :mod:`model.compress.kmeans.network`: row sub-vectors of ``d`` weights,
    clustered into ``k`` codewords.
``pq`` (d, k): product quantization (Gong et al. 2014, arXiv 1412.6115)
    The matrix is split column-wise into segments ``d`` wide; each segment's
    ``out`` row pieces get their own k-means codebook of ``k`` codewords, so a
    layer stores ``ceil(cols/d)`` codebooks.
``rq`` (d, k, t): residual quantization (Gong et al.)
    ``t`` stages of k-means over the layer's sub-vectors, each stage clustering
    what the previous ones left; a sub-vector is the sum of ``t`` codewords.
``lr2vq`` (m, k, r): low-rank representation VQ (Zhu et al., arXiv 2211.11397)
    Sub-vectors of ``m`` weights are represented in an ``r``-dimensional
    subspace (``r < m``): ``x ~ mu + B c`` with ``B`` an ``m x r`` orthonormal
    basis and ``c`` one of ``k`` ``r``-dimensional codewords, so the rate is
    set by ``m`` (``log2 k / m`` bits per weight) and ``r`` trades low-rank
    against clustering error.  The paper learns the low-rank representation
    end to end; here it is post-training: ``B`` starts as the top-``r``
    principal directions of the (centred) sub-vectors, k-means clusters the
    projections, then :data:`LR2VQ_ROUNDS` alternations re-fit ``B`` and the
    codewords as the best rank-``r`` approximation of the count-weighted
    cluster means and re-assign (nearest in the subspace = nearest
    reconstruction, ``B`` being orthonormal).

Codebook sizes are capped per layer (and PQ segment) at the largest power of
two not above ``n / MIN_VECTORS_PER_CODEWORD`` for ``n`` clustered vectors:
a small layer would otherwise pay more for its codebook than it saves.

Bits
====
:func:`storage` counts, per network: indices (``ceil(log2 K)`` bits each,
densely packed), side data (8 bits per value plus 32 per scale), per-row
scales (:data:`ROW_SCALE_BITS` each, universal method only) and biases
(:data:`BIAS_BITS` each).  ``bits_per_weight`` divides by the number of
weights; ``ratio_vs_fp32`` is fp32 bytes of the coded layers' weights and
biases over the stored bytes.  The universal ROM is not in it: it is shared
by every network and reported on its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.compress.kmeans.network import join_subvectors, kmeans, split_subvectors
from model.compress.registry import CompressError, CompressOptions, register_method
from model.contract.fixedpoint import ACT_MAX
from model.contract.ints import ceil_div
from model.contract.layout import DESC_WORDS, JOB_WORDS, WORD_BYTES, row_words
from model.nets.distill import DistillSet, outputs, train
from model.nets.weightmat import (count_params, find_weight_layers, get_module, layer_bias, overrides, weight_matrix,
                                  with_weights)

BIAS_BITS = 32
ROW_SCALE_BITS = 16
SIDE_VALUE_BITS = 8
SIDE_SCALE_BITS = 32
MIN_VECTORS_PER_CODEWORD = 4
LR2VQ_ROUNDS = 8
#: Lloyd iterations of LR2VQ's warm-started re-clustering.
LR2VQ_LLOYD = 10
#: k-means fine-tuning (``kmeans`` + ``finetune``): Adam on codewords and biases.
FT_LR_CODEBOOK = 1e-3
FT_LR_BIAS = 1e-3


def index_bits(k: int) -> int:
    return max(1, (int(k) - 1).bit_length())


def capped_k(k: int, n: int) -> int:
    """``k`` capped at the largest power of two <= ``n / MIN_VECTORS_PER_CODEWORD`` (at least 1)."""
    cap = max(1, n // MIN_VECTORS_PER_CODEWORD)
    return max(1, min(int(k), 1 << (cap.bit_length() - 1)))


def int8_side(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Side data as stored: symmetric int8 with one scale.  Returns (dequantized float32, bits)."""
    a = np.asarray(a, dtype=np.float64)
    m = float(np.abs(a).max()) if a.size else 0.0
    bits = a.size * SIDE_VALUE_BITS + SIDE_SCALE_BITS
    if m == 0:
        return np.zeros(a.shape, np.float32), bits
    s = m / ACT_MAX
    return (np.clip(np.round(a / s), -ACT_MAX, ACT_MAX) * s).astype(np.float32), bits


@dataclass
class CodedLayer:
    """One weight layer coded by a per-layer method.

    Attributes
    ----------
    name : str
    weight_shape : tuple of int
    weight : numpy.ndarray, shape (out, cols)
        Reconstruction, from the stored (int8 side data) values.
    bias : numpy.ndarray or None
    bits : dict
        ``indices``, ``side`` (codebooks etc.), ``scales``, ``biases``.
    params : dict
        Effective parameters (codebook sizes after capping, ...).
    """
    name: str
    weight_shape: tuple
    weight: np.ndarray
    bias: np.ndarray | None
    bits: dict
    params: dict = field(default_factory=dict)


@dataclass
class CodedNetwork:
    name: str
    method: str
    config: dict
    layers: list[CodedLayer]
    info: dict = field(default_factory=dict)

    def weights(self) -> dict[str, np.ndarray]:
        return {layer.name: layer.weight for layer in self.layers}

    def biases(self) -> dict[str, np.ndarray]:
        return {layer.name: layer.bias for layer in self.layers if layer.bias is not None}

    def apply(self, model: nn.Module) -> nn.Module:
        return with_weights(model, self.weights(), self.biases())


def _bias_bits(bias) -> int:
    return 0 if bias is None else int(bias.size) * BIAS_BITS


# ---------------------------------------------------------------------------
# Per-layer coders.  Each takes the (out, cols) matrix and returns (reconstruction, bits, params).


def code_kmeans(w2d: np.ndarray, d: int, k: int, seed: int = 0):
    sub = split_subvectors(np.asarray(w2d, np.float32), d)
    vec = sub.reshape(-1, d)
    ke = capped_k(k, len(vec))
    cb, idx = kmeans(vec, ke, seed=seed)
    cbq, side = int8_side(cb)
    rec = join_subvectors(cbq[idx].reshape(sub.shape), w2d.shape[1])
    return rec, {"indices": len(vec) * index_bits(ke), "side": side}, {"k": ke, "codebook": cbq,
                                                                           "indices": idx.reshape(sub.shape[:2])}


def code_pq(w2d: np.ndarray, d: int, k: int, seed: int = 0):
    sub = split_subvectors(np.asarray(w2d, np.float32), d)  # (out, S, d)
    out, s, _ = sub.shape
    ke = capped_k(k, out)
    cbs, idxs = [], []
    for j in range(s):
        cb, idx = kmeans(sub[:, j], ke, seed=seed + j)
        cbs.append(np.pad(cb, ((0, ke - len(cb)), (0, 0))))
        idxs.append(idx)
    cbq, side = int8_side(np.stack(cbs))  # (S, ke, d), one scale for the layer
    rec = np.stack([cbq[j][idxs[j]] for j in range(s)], axis=1)
    return join_subvectors(rec, w2d.shape[1]), {"indices": out * s * index_bits(ke), "side": side}, {"k": ke}


def code_rq(w2d: np.ndarray, d: int, k: int, stages: int, seed: int = 0):
    sub = split_subvectors(np.asarray(w2d, np.float32), d)
    resid = sub.reshape(-1, d).astype(np.float32)
    rec = np.zeros_like(resid)
    ke = capped_k(k, len(resid))
    bits = {"indices": 0, "side": 0}
    for t in range(stages):
        cb, idx = kmeans(resid, ke, seed=seed + 1000 * t)
        cbq, side = int8_side(cb)
        rec += cbq[idx]
        resid = resid - cbq[idx]
        bits["indices"] += len(resid) * index_bits(ke)
        bits["side"] += side
    return join_subvectors(rec.reshape(sub.shape), w2d.shape[1]), bits, {"k": ke, "stages": stages}


def _lloyd(z: np.ndarray, c: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Warm-started Lloyd iterations; an emptied cluster keeps its codeword."""
    zt = torch.from_numpy(np.ascontiguousarray(z, np.float32))
    idx = None
    for _ in range(iters):
        ct = torch.from_numpy(np.ascontiguousarray(c, np.float32))
        d2 = (zt * zt).sum(1, keepdim=True) - 2 * zt @ ct.T + (ct * ct).sum(1)[None]
        new = d2.argmin(1).numpy()
        if idx is not None and np.array_equal(new, idx):
            break
        idx = new
        cnt = np.bincount(idx, minlength=len(c))
        sums = np.stack([np.bincount(idx, weights=z[:, j], minlength=len(c)) for j in range(z.shape[1])], 1)
        nz = cnt > 0
        c = c.copy()
        c[nz] = sums[nz] / cnt[nz, None]
    return c, idx


def code_lr2vq(w2d: np.ndarray, m: int, k: int, r: int, seed: int = 0, rounds: int = LR2VQ_ROUNDS):
    if not 1 <= r <= m:
        raise ValueError(f"LR2VQ clustering dimension must be 1..m={m}, got {r}")
    sub = split_subvectors(np.asarray(w2d, np.float64), m)
    x = sub.reshape(-1, m)
    mu = x.mean(axis=0)
    xc = x - mu
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    basis = vt[:r].T  # (m, r)
    ke = capped_k(k, len(x))
    c, idx = kmeans((xc @ basis).astype(np.float32), ke, seed=seed)
    c = c.astype(np.float64)
    for _ in range(rounds):
        # Best rank-r fit of the count-weighted cluster means (in R^m), then re-assign in the subspace.
        kk = len(c)
        cnt = np.bincount(idx, minlength=kk).astype(np.float64)
        means = np.stack([np.bincount(idx, weights=xc[:, j], minlength=kk) for j in range(m)], 1)
        nz = cnt > 0
        means[nz] /= cnt[nz, None]
        u, sv, vt = np.linalg.svd(means * np.sqrt(cnt)[:, None], full_matrices=False)
        basis = vt[:r].T
        c = means @ basis
        c, idx = _lloyd(xc @ basis, c, LR2VQ_LLOYD)
    cq, b1 = int8_side(c)
    bq, b2 = int8_side(basis)
    muq, b3 = int8_side(mu)
    codebook = muq[None, :] + cq @ bq.T    # the K codewords in R^m the factors generate
    rec = codebook[idx]
    return (join_subvectors(rec.reshape(sub.shape).astype(np.float32), w2d.shape[1]),
            {"indices": len(x) * index_bits(len(c)), "side": b1 + b2 + b3},
            {"k": len(c), "m": m, "r": r, "codebook": codebook, "indices": idx.reshape(sub.shape[:2])})


CODERS: dict[str, Callable] = {"kmeans": code_kmeans, "pq": code_pq, "rq": code_rq, "lr2vq": code_lr2vq}


def compress(model: nn.Module, method: str, config: dict, *, layer_names: list[str] | None = None,
             name: str = "", seed: int = 0) -> CodedNetwork:
    """Code every weight layer of ``model`` with a per-layer ``method`` (a key of :data:`CODERS`).

    ``config`` holds the coder's keyword arguments: ``kmeans``/``pq``:
    ``d, k``; ``rq``: ``d, k, stages``; ``lr2vq``: ``m, k, r``.
    """
    if method not in CODERS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(CODERS)}")
    names = find_weight_layers(model) if layer_names is None else list(layer_names)
    t0 = time.perf_counter()
    layers = []
    for i, n in enumerate(names):
        mod = get_module(model, n)
        rec, bits, params = CODERS[method](weight_matrix(mod), seed=seed + i, **config)
        bias = layer_bias(mod)
        bits = dict(bits, scales=0, biases=_bias_bits(bias))
        layers.append(CodedLayer(n, tuple(mod.weight.shape), rec.astype(np.float32), bias, bits, params))
    return CodedNetwork(name, method, dict(config), layers, {"seconds": time.perf_counter() - t0})


def finetune_kmeans(model: nn.Module, net: CodedNetwork, data: DistillSet, *, steps: int, batch: int = 256,
                    seed: int = 0, progress: bool = True, threads: int | None = None) -> CodedNetwork:
    """Trained quantization (Deep Compression) for ``kmeans``: codewords and biases, indices fixed.

    Same distillation loss as the universal method; the codebooks are
    re-quantized to int8 afterwards.
    """
    if net.method != "kmeans":
        raise ValueError("finetune_kmeans fine-tunes kmeans networks")
    cbs = [nn.Parameter(torch.as_tensor(l.params["codebook"], dtype=torch.float32)) for l in net.layers]
    idxs = [torch.as_tensor(l.params["indices"]).reshape(-1) for l in net.layers]
    bs = [None if l.bias is None else nn.Parameter(torch.as_tensor(l.bias).clone()) for l in net.layers]

    def weights():
        out = {}
        for l, cb, ix in zip(net.layers, cbs, idxs):
            cols = int(np.prod(l.weight_shape[1:]))
            out[l.name] = cb.index_select(0, ix).reshape(l.weight_shape[0], -1)[:, :cols]
        return out

    def params():
        return overrides(model, weights(), {l.name: b for l, b in zip(net.layers, bs) if b is not None})

    teacher = outputs(model, data.inputs)
    groups = [{"params": cbs, "lr": FT_LR_CODEBOOK}]
    if any(b is not None for b in bs):
        groups.append({"params": [b for b in bs if b is not None], "lr": FT_LR_BIAS})
    t0 = time.perf_counter()
    train(model, data, teacher, params, groups, steps=steps, batch=batch, seed=seed, progress=progress,
          desc=f"{net.name or 'net'} kmeans finetune", threads=threads)
    layers = []
    for l, cb, ix, b in zip(net.layers, cbs, idxs, bs):
        cbq, _ = int8_side(cb.detach().numpy())
        cols = int(np.prod(l.weight_shape[1:]))
        w = cbq[ix.numpy()].reshape(l.weight_shape[0], -1)[:, :cols]
        layers.append(CodedLayer(l.name, l.weight_shape, w.astype(np.float32),
                                 None if b is None else b.detach().numpy().copy(), l.bits,
                                 dict(l.params, codebook=cbq)))
    info = dict(net.info, finetune_steps=steps, finetune_seconds=time.perf_counter() - t0)
    return CodedNetwork(net.name, "kmeans+ft", net.config, layers, info)


# ---------------------------------------------------------------------------
# Accounting


def layer_bits(net) -> list[dict]:
    """Per-layer bit counts of a :class:`CodedNetwork` or a universal network."""
    if getattr(net, "method", None) == "universal":
        ib = net.codebook.index_bits
        return [{"indices": int(l.indices.size) * ib, "side": 0, "scales": l.out_features * ROW_SCALE_BITS,
                 "biases": _bias_bits(l.bias)} for l in net.layers]
    return [dict(l.bits) for l in net.layers]


def storage(net, model: nn.Module) -> dict:
    """Every stored bit of a coded network (see the module docstring); ``model`` is the float source."""
    names = [l.name for l in net.layers]
    w, b, other = count_params(model, names)
    per = layer_bits(net)
    tot = {key: int(sum(p[key] for p in per)) for key in ("indices", "side", "scales", "biases")}
    total = sum(tot.values())
    return dict(tot, weights=w, biases_count=b, other_params=other, total_bits=total,
                bits_per_weight=total / w, ratio_vs_fp32=32.0 * (w + b) / total)


def engine_bytes(layer_shapes: list[tuple[int, int]], lanes: int, index_bits_: int, rom_entries: int) -> int:
    """Bytes the engine stores for a fully-connected network: job header, descriptors, row streams
    (bias word, requantization word, word-padded indices per row) and ``rom_entries`` ROM codewords."""
    words = JOB_WORDS + DESC_WORDS * len(layer_shapes)
    words += sum(out * row_words(inf, lanes, index_bits_) for out, inf in layer_shapes)
    return words * WORD_BYTES + rom_entries * lanes


__all__ = ["CODERS", "CodedLayer", "CodedNetwork", "capped_k", "code_kmeans", "code_lr2vq", "code_pq", "code_rq",
           "compress", "engine_bytes", "finetune_kmeans", "index_bits", "int8_side", "layer_bits", "storage",
           "ceil_div"]


#: Per-layer baselines ``vqe compress`` runs at model level: every zoo network with lr2vq (the engine has
#: no datapath for its projection), the networks the engine does not run with pq and rq (those it runs get
#: engine programs: model.compress.multicodebook).
BASELINE_METHODS = ("pq", "rq", "lr2vq")


def compress_baseline(network: str, method: str, *, dim: int = 4, codebook_size: int = 256, stages: int = 2,
                      rank: int = 2, seed: int = 0, quick: bool = False, progress: bool = True) -> dict:
    """Code every weight layer of a zoo network with a per-layer baseline and measure it.

    Parameters
    ----------
    network : str
        A zoo network (:func:`model.nets.registry.network_names`).
    method : str
        One of :data:`BASELINE_METHODS`.
    dim : int
        Sub-vector dimension (``d``; LR²VQ's ``m``).
    codebook_size : int
        Codewords per codebook (``k``).
    stages : int
        ``rq``: residual stages.
    rank : int
        ``lr2vq``: dimension of the clustered subspace (``r < m``).
    seed : int
        k-means seed.
    quick : bool
        The network's quick evaluation set.
    progress : bool
        Progress bars while a network is trained.

    Returns
    -------
    dict
        ``network``, ``method``, ``config``, the metric of the float and the
        coded network, and every stored bit (:func:`model.compress.baselines.storage`).
    """
    from model.nets.registry import network_names
    from model.nets.zoo import load_network
    if method not in BASELINE_METHODS:
        raise CompressError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINE_METHODS)}")
    if network not in network_names():
        raise CompressError(f"unknown network {network!r}; choose one of {', '.join(network_names())}")
    if dim < 1 or codebook_size < 2 or stages < 1 or not 1 <= rank <= dim:
        raise CompressError(f"bad {method} parameters: dim {dim}, codebook size {codebook_size}, "
                            f"stages {stages}, rank {rank} (need dim >= 1, size >= 2, stages >= 1, 1 <= rank <= dim)")
    config = {"pq": dict(d=dim, k=codebook_size), "rq": dict(d=dim, k=codebook_size, stages=stages),
              "lr2vq": dict(m=dim, k=codebook_size, r=rank)}[method]
    zn = load_network(network, progress=progress)
    t0 = time.perf_counter()
    net = compress(zn.model, method, config, layer_names=list(zn.weight_layers), name=network, seed=seed)
    seconds = time.perf_counter() - t0
    quality = zn.evaluate(net.apply(zn.model), quick=quick)
    return {"network": network, "method": method, "config": config, "metric": zn.metric_name,
            "float_quality": zn.evaluate(zn.model, quick=quick)[zn.metric_name],
            "quality": quality[zn.metric_name], "metrics": quality, "compress_seconds": seconds,
            "quick_eval": quick, "storage": storage(net, zn.model),
            "note": "model-level result: the engine runs kmeans, universal, pvq, rq and pq programs of the "
                    "networks it runs"}


#: Per baseline: the ``--method`` summary and the options it takes besides the common ones.
_BASELINE_CLI = {
    "pq": ("product quantization (Gong et al. 2014): a codebook per block of columns; an engine program "
           "(model.compress.multicodebook) for the networks the engine runs, model level for the others",
           ("codebook_size", "quick")),
    "rq": ("residual quantization (Gong et al. 2014): sums of codewords over stages; an engine program "
           "(model.compress.multicodebook) for the networks the engine runs, model level for the others",
           ("codebook_size", "stages", "quick")),
    "lr2vq": ("low-rank VQ (LR2VQ, arXiv 2211.11397): k-means in a projected subspace, model level",
              ("codebook_size", "rank", "quick")),
}


def _baseline_fn(method: str):
    def model_level(network: str, o: CompressOptions) -> dict:
        return compress_baseline(network, method, dim=o.lanes, codebook_size=o.codebook_size or 256,
                                 stages=2 if o.stages is None else o.stages, rank=2 if o.rank is None else o.rank,
                                 seed=o.seed, quick=o.quick, progress=o.progress)
    model_level.__doc__ = f"``vqe compress --method {method}``: :func:`compress_baseline` with the CLI's defaults."
    return model_level


for _method, (_summary, _options) in _BASELINE_CLI.items():
    register_method(_method, _summary, kind="model", options=_options)(_baseline_fn(_method))
