"""Compressing a network against the universal codebook: differentiable assignment, and lowering.

Representation
==============
Every weight layer (Linear/Conv as an ``(out, cols)`` matrix, see
:mod:`model.nets.weightmat`) keeps its bias and stores, per row ``r``, a positive
scale ``s_r`` and for each of its ``ceil(cols/dim)`` sub-vectors an index into
the shared universal codebook ``C`` (int8 values times the codebook scale):
``W[r, j*dim:(j+1)*dim] = s_r * C[indices[r, j]]`` (the last sub-vector's pad
columns are dropped).  In the engine ``s_r`` costs nothing: it folds into the
row's requantization multiplier (:func:`lower_universal`).

Fitting (soft-to-hard, after VQ4ALL)
====================================
1. **Initial hard assignment.**  ``s_r`` starts at the row's RMS; then
   :data:`INIT_ROUNDS` alternations of (nearest codeword of every normalized
   sub-vector, least-squares ``s_r`` for those codewords).  Distances ignore
   pad columns.  Optionally (``error_feedback=True``) ``nn.Linear`` layers
   then switch to error-feedback codings where that lowers the distillation
   loss (:func:`error_feedback_init`, :mod:`model.compress.universal.error_feedback`).
2. **Candidates.**  Each sub-vector keeps its :data:`TOP_N` nearest codewords
   (under the initial scale) and a learnable logit for each, initialized to
   ``-d^2 / g`` with ``d`` the distance to the candidate and ``g`` the mean
   gap between the nearest and second-nearest squared distances, so the
   softmax starts peaked on the nearest codeword but not one-hot.
3. **Soft phase.**  The sub-vector is the softmax-weighted mix of its
   candidates, ``softmax(logits / T)``, with ``T`` falling geometrically
   from :data:`T_START` to :data:`T_END` over the soft steps (soft to hard).
   Logits, ``log s_r`` and biases are trained with Adam on the distillation
   loss of :mod:`model.nets.distill` (task loss + distillation to the float
   network's outputs).
4. **Hard phase.**  Each sub-vector takes its arg-max candidate; the scales
   and biases alone are trained on for :data:`HARD_STEPS` more steps.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.compress.kmeans.network import join_subvectors, split_subvectors
from model.compress.universal.codebook import UniversalCodebook
from model.compress.universal.error_feedback import error_feedback_assign, layer_hessians
from model.contract.ints import ceil_div
from model.nets.distill import DistillSet, call, distill_loss, outputs, take, train
from model.nets.training import TORCH_THREADS, TorchThreads
from model.nets.weightmat import (find_weight_layers, get_module, layer_bias, linear_relu_chain, overrides, row_rms,
                                  weight_matrix, with_weights)

#: Candidate codewords per sub-vector.
TOP_N = 8
#: Alternations of (nearest codeword, least-squares row scale) for the initial assignment.
INIT_ROUNDS = 4
#: Soft-phase temperature schedule (geometric).
T_START = 1.0
T_END = 0.01
#: Steps (minibatches) of the soft and hard phases, and the minibatch.
SOFT_STEPS = 1500
HARD_STEPS = 400
BATCH = 256
#: Adam step sizes: assignment logits, log row scales, biases.
LR_LOGITS = 0.05
LR_SCALE = 2e-3
LR_BIAS = 1e-3
#: Distillation inputs (the last ones) on which error-feedback codings are checked layer by layer.
CHECK_SAMPLES = 128
#: Sub-vectors whose distances are computed at a time.
_CHUNK = 1 << 15


@dataclass
class UniversalLayer:
    """One weight layer coded against the universal codebook.

    Attributes
    ----------
    name : str
        Qualified module name in the source network.
    weight_shape : tuple of int
        The module's weight shape (``(out, in)`` or ``(out, in/groups, *kernel)``).
    indices : numpy.ndarray of int64, shape (out, ceil(cols/dim))
    row_scale : numpy.ndarray of float32, shape (out,)
        Positive; real row weights = ``row_scale[r] * codebook.values()[indices[r]]``.
    bias : numpy.ndarray of float32, shape (out,), or None
    relu : bool
        A ReLU follows (only meaningful for Linear/ReLU chains, which can be lowered).
    col_scale : numpy.ndarray of float32, shape (cols,), or None
        A smoothed layer's input-channel factors: the codewords code ``W * col_scale`` (the engine's
        weights) and the layer computes with that divided by them again (the host divides its inputs).
    """
    name: str
    weight_shape: tuple
    indices: np.ndarray
    row_scale: np.ndarray
    bias: np.ndarray | None
    relu: bool = False
    col_scale: np.ndarray | None = None

    @property
    def out_features(self) -> int:
        return int(self.weight_shape[0])

    @property
    def in_features(self) -> int:
        """Columns of the weight matrix (``in * prod(kernel)`` for a convolution)."""
        return int(np.prod(self.weight_shape[1:]))

    def coded_weight(self, cb_values: np.ndarray) -> np.ndarray:
        """The codewords' ``(out, cols)`` float32 matrix, row scales applied (a smoothed layer's engine weights)."""
        w = join_subvectors(cb_values[self.indices], self.in_features)
        return (w * self.row_scale[:, None]).astype(np.float32)

    def weight(self, cb_values: np.ndarray) -> np.ndarray:
        """Reconstructed ``(out, cols)`` float32 weight matrix."""
        w = self.coded_weight(cb_values)
        return w if self.col_scale is None else (w / self.col_scale[None, :]).astype(np.float32)


@dataclass
class UniversalNetwork:
    """A network whose weight layers all index the one universal codebook.

    Attributes
    ----------
    name : str
    codebook : UniversalCodebook
        Shared by every layer (and every network): the engine's ROM.
    layers : list of UniversalLayer
    info : dict
        Measured facts: timings, losses, quality at each stage.
    """
    name: str
    codebook: UniversalCodebook
    layers: list[UniversalLayer]
    info: dict = field(default_factory=dict)
    method: ClassVar[str] = "universal"

    @property
    def dim(self) -> int:
        return self.codebook.dim

    @property
    def k(self) -> int:
        return self.codebook.k

    def weights(self) -> dict[str, np.ndarray]:
        v = self.codebook.values()
        return {layer.name: layer.weight(v) for layer in self.layers}

    def biases(self) -> dict[str, np.ndarray]:
        return {layer.name: layer.bias for layer in self.layers if layer.bias is not None}

    def apply(self, model: nn.Module) -> nn.Module:
        """A copy of the float network ``model`` computing with the coded weights."""
        return with_weights(model, self.weights(), self.biases())


# ---------------------------------------------------------------------------
# Nearest codewords


def smallest_distances(x: torch.Tensor, c: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` nearest rows of ``c`` to every row of ``x`` (squared distances, nearest first).

    The ranking only needs ``|c|^2 - 2 x.c`` (one fused pass over the
    distance matrix); ``|x|^2`` is added to the ``n`` kept values afterwards.
    One candidate takes ``min``, much faster than top-k.
    """
    d = torch.addmm((c * c).sum(1)[None, :], x, c.T, beta=1.0, alpha=-2.0)
    if n == 1:
        v, j = d.min(dim=1, keepdim=True)
    else:
        v, j = torch.topk(d, n, dim=1, largest=False, sorted=True)
    return (v + (x * x).sum(1, keepdim=True)).clamp_min_(0), j


def nearest_codewords(sub: np.ndarray, valid_last: int, cb: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` nearest codewords of every sub-vector, nearest first, with squared distances.

    Parameters
    ----------
    sub : numpy.ndarray, shape (out, S, dim)
        Sub-vectors; in the last position (``j = S-1``) only the first
        ``valid_last`` coordinates count (the rest is row padding).
    cb : numpy.ndarray, shape (K, dim)
    n : int

    Returns
    -------
    indices : numpy.ndarray of int64, shape (out, S, n)
    sq_dist : numpy.ndarray of float32, shape (out, S, n)
    """
    out, s, dim = sub.shape
    n = min(n, len(cb))
    c = torch.as_tensor(cb, dtype=torch.float32)
    x = torch.as_tensor(np.ascontiguousarray(sub, dtype=np.float32))
    idx = torch.empty((out, s, n), dtype=torch.int64)
    dist = torch.empty((out, s, n), dtype=torch.float32)
    full = s if valid_last == dim else s - 1
    xf = x[:, :full].reshape(-1, dim)
    ix = torch.empty((len(xf), n), dtype=torch.int64)
    dx = torch.empty((len(xf), n), dtype=torch.float32)
    # Bounded memory whatever the codebook size: about _CHUNK * 128 distances at a time.
    rows = max(256, (_CHUNK * 128) // len(cb))
    for i in range(0, len(xf), rows):
        d, j = smallest_distances(xf[i:i + rows], c, n)
        ix[i:i + rows], dx[i:i + rows] = j, d
    idx[:, :full] = ix.reshape(out, full, n)
    dist[:, :full] = dx.reshape(out, full, n)
    if full < s:
        last = x[:, -1, :valid_last]
        for i in range(0, len(last), rows):
            d, j = smallest_distances(last[i:i + rows], c[:, :valid_last], n)
            idx[i:i + rows, -1], dist[i:i + rows, -1] = j, d
    return idx.numpy(), dist.numpy()


def _valid_last(cols: int, dim: int) -> int:
    return cols - (ceil_div(cols, dim) - 1) * dim


def scaled_assignment(w2d: np.ndarray, cb: np.ndarray, rounds: int = INIT_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Hard assignment with per-row scales: alternate nearest codewords and least-squares scales.

    Returns ``(indices (out, S), row_scale (out,))``; scales are positive
    (a row whose least-squares scale is not keeps its RMS; an all-zero row gets
    a tiny scale so it reconstructs to almost zero).
    """
    w = np.asarray(w2d, dtype=np.float64)
    dim = cb.shape[1]
    sub = split_subvectors(w, dim)
    vl = _valid_last(w.shape[1], dim)
    rms = row_rms(w)
    pos = rms[rms > 0]
    floor = 1e-6 * (float(np.median(pos)) if pos.size else 1.0)
    s = np.where(rms > 0, rms, floor)
    idx = None
    for _ in range(max(1, rounds)):
        idx = nearest_codewords(sub / s[:, None, None], vl, cb, 1)[0][..., 0]
        rec = join_subvectors(cb[idx].astype(np.float64), w.shape[1])
        num, den = np.einsum("ij,ij->i", w, rec), np.einsum("ij,ij->i", rec, rec)
        with np.errstate(invalid="ignore", divide="ignore"):
            ls = num / den
        s = np.where((rms > 0) & (ls > 0) & np.isfinite(ls), ls, s)
    return idx.astype(np.int64), s.astype(np.float32)


def assign_nearest(model: nn.Module, codebook: UniversalCodebook, layer_names: list[str] | None = None,
                   name: str = "", rounds: int = INIT_ROUNDS) -> UniversalNetwork:
    """Code every weight layer by :func:`scaled_assignment` alone (no training)."""
    names = find_weight_layers(model) if layer_names is None else list(layer_names)
    relus = _relu_flags(model, names)
    cb = codebook.values()
    layers = []
    for n_, relu in zip(names, relus):
        mod = get_module(model, n_)
        idx, s = scaled_assignment(weight_matrix(mod), cb, rounds)
        layers.append(UniversalLayer(n_, tuple(mod.weight.shape), idx, s, layer_bias(mod), relu))
    return UniversalNetwork(name, codebook, layers, {"method": "universal-nearest"})


def _relu_flags(model: nn.Module, names: list[str]) -> list[bool]:
    """ReLU-follows flags of the named layers when ``model`` is a Linear/ReLU chain, else all False."""
    flags = linear_relu_chain(model)
    if flags is None:
        return [False] * len(names)
    by_name = dict(zip([n for n, m in model.named_children() if isinstance(m, nn.Linear)], flags))
    return [by_name.get(n, False) for n in names]


# ---------------------------------------------------------------------------
# The engine's int8 activations, seen by training


@dataclass
class EngineActivations:
    """How the engine quantizes one module's input and output, simulated while a fit trains.

    Attributes
    ----------
    input_scale : float
        One int8 step of the engine's input (the input after division by ``col_scale``).
    col_scale : numpy.ndarray, shape (in,), or None
        The host divides input channel ``j`` by ``col_scale[j]`` before quantizing it (smoothing).
    output_scales : numpy.ndarray, shape (out,)
        One int8 step per output feature.
    """
    input_scale: float
    col_scale: np.ndarray | None
    output_scales: np.ndarray


def _fake_int8(x: torch.Tensor, step) -> torch.Tensor:
    """``x`` rounded to int8 steps of ``step`` and clipped at +-127 steps; the gradient passes straight through."""
    q = torch.clamp(torch.round(x / step), -127, 127) * step
    return x + (q - x).detach()


@contextmanager
def engine_int8(model: nn.Module, acts: dict[str, EngineActivations] | None):
    """While active, the named modules of ``model`` see int8 inputs and give int8 outputs as the engine
    would (:class:`EngineActivations`), with straight-through gradients."""
    hooks = []
    for name, a in (acts or {}).items():
        mod = get_module(model, name)
        c = None if a.col_scale is None else torch.as_tensor(a.col_scale, dtype=torch.float32)
        so = torch.as_tensor(a.output_scales, dtype=torch.float32)

        def pre(_m, args, c=c, s=a.input_scale):
            x = args[0]
            return (_fake_int8(x, s) if c is None else _fake_int8(x / c, s) * c,) + tuple(args[1:])

        def post(_m, _args, y, so=so):
            return _fake_int8(y, so)
        hooks += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


# ---------------------------------------------------------------------------
# Differentiable assignment


class _SoftLayer:
    """Trainable state of one layer: candidate logits, log row scales, bias."""

    def __init__(self, layer: UniversalLayer, w2d: np.ndarray, cb: np.ndarray, top_n: int,
                 candidates: tuple[np.ndarray, np.ndarray] | None = None):
        self.layer = layer
        self.out, self.cols = w2d.shape
        dim = cb.shape[1]
        self.inv_col = None if layer.col_scale is None else torch.from_numpy(1.0 / layer.col_scale)
        if candidates is None:
            w = np.asarray(w2d, dtype=np.float64) * (1.0 if layer.col_scale is None else layer.col_scale[None, :])
            sub = split_subvectors(w, dim) / layer.row_scale[:, None, None]
            cand, d2 = nearest_codewords(sub, _valid_last(self.cols, dim), cb, top_n)
        else:  # e.g. from error feedback: the layer's own choice first
            cand, d2 = candidates
        self.s = cand.shape[1]
        cand, d2 = cand.reshape(-1, cand.shape[-1]), d2.reshape(-1, d2.shape[-1])
        gap = float(np.mean(d2[:, 1] - d2[:, 0])) if d2.shape[1] > 1 else 1.0
        gap = gap if gap > 0 else 1.0
        self.cand = torch.from_numpy(cand)
        self.cg = torch.as_tensor(cb, dtype=torch.float32)[self.cand]  # (N, n, dim)
        self.logits = nn.Parameter(torch.from_numpy((-(d2 - d2[:, :1]) / gap).astype(np.float32)))
        self.log_scale = nn.Parameter(torch.from_numpy(np.log(layer.row_scale).astype(np.float32)))
        self.bias = None if layer.bias is None else nn.Parameter(torch.from_numpy(layer.bias.copy()))
        self.hard_cw: torch.Tensor | None = None

    def _matrix(self, sub: torch.Tensor) -> torch.Tensor:
        w = sub.reshape(self.out, -1)[:, :self.cols] * self.log_scale.exp()[:, None]
        return w if self.inv_col is None else w * self.inv_col[None, :]

    def soft_weight(self, t: float) -> torch.Tensor:
        p = torch.softmax(self.logits / t, dim=1)
        return self._matrix(torch.einsum("sn,snd->sd", p, self.cg))

    def harden(self) -> None:
        with torch.no_grad():
            j = self.logits.argmax(dim=1)
            self.hard_idx = self.cand[torch.arange(len(j)), j]
            self.hard_cw = self.cg[torch.arange(len(j)), j]

    def hard_weight(self) -> torch.Tensor:
        return self._matrix(self.hard_cw)

    def to_layer(self) -> UniversalLayer:
        l0 = self.layer
        return UniversalLayer(l0.name, l0.weight_shape, self.hard_idx.reshape(self.out, self.s).numpy().copy(),
                              self.log_scale.detach().exp().numpy().astype(np.float32),
                              None if self.bias is None else self.bias.detach().numpy().copy(), l0.relu,
                              l0.col_scale)


def error_feedback_init(model: nn.Module, init: UniversalNetwork, data: DistillSet, top_n: int,
                        progress: bool = True) -> tuple[UniversalNetwork, dict, dict]:
    """Re-code ``init``'s ``nn.Linear`` layers by error feedback (:mod:`model.compress.universal.error_feedback`) where
    that helps the network.

    The Hessians come from the first :data:`~model.compress.universal.error_feedback.CALIB_SAMPLES`
    distillation inputs.  Then, greedily in layer order, a layer switches from
    its nearest coding to its error-feedback coding only if that lowers the
    distillation loss of the whole coded network (every layer coded, the
    switches so far kept) on the last :data:`CHECK_SAMPLES` distillation
    inputs: the output-error proxy behind error feedback can favour a coding
    the network likes less (measured on MiniLM's FFN output layers, whose
    inputs have a few huge activations), and layers judged one at a time
    need not help together.

    Returns the network, the candidates of the re-coded layers
    (name -> (candidates, squared distances)) and facts.
    """
    cb = init.codebook.values()
    names = [layer.name for layer in init.layers]
    t0 = time.perf_counter()
    hess = layer_hessians(model, data.inputs, names)
    m = min(CHECK_SAMPLES, len(data))
    sel = torch.arange(len(data) - m, len(data))
    check_in = take(data.inputs, sel)
    labels = None if data.labels is None else torch.as_tensor(np.asarray(data.labels)[sel.numpy()], dtype=torch.int64)
    teacher = outputs(model, check_in)
    current = {layer.name: layer for layer in init.layers}

    @torch.no_grad()
    def loss() -> float:
        ov = overrides(model, {n: torch.from_numpy(layer.weight(cb)) for n, layer in current.items()},
                       {n: torch.from_numpy(layer.bias) for n, layer in current.items() if layer.bias is not None})
        with TorchThreads(TORCH_THREADS):
            return float(distill_loss(call(model, check_in, ov), teacher, labels, data.kind))

    best = loss()
    cands, losses = {}, {"start": best}
    for l0 in tqdm(init.layers, desc=f"{init.name or 'net'} error feedback", disable=not progress,
                   file=sys.stderr, leave=False):
        if l0.name not in hess:
            continue
        idx, scale, cand, d2 = error_feedback_assign(weight_matrix(get_module(model, l0.name)), l0.row_scale, cb,
                                                     hess[l0.name], top_n)
        current[l0.name] = UniversalLayer(l0.name, l0.weight_shape, idx, scale, l0.bias, l0.relu)
        trial = loss()
        losses[l0.name] = trial
        if trial < best:
            best = trial
            cands[l0.name] = (cand, d2)
        else:
            current[l0.name] = l0
    facts = {"error_feedback_layers": sorted(cands), "error_feedback_losses": losses,
             "error_feedback_seconds": time.perf_counter() - t0}
    net = UniversalNetwork(init.name, init.codebook, [current[n] for n in names], {"method": "universal-ef"})
    return net, cands, facts


def fit_universal(model: nn.Module, codebook: UniversalCodebook, data: DistillSet, *,
                  layer_names: list[str] | None = None, name: str = "", top_n: int = TOP_N,
                  soft_steps: int = SOFT_STEPS, hard_steps: int = HARD_STEPS, batch: int = BATCH,
                  t_start: float = T_START, t_end: float = T_END, lr_logits: float = LR_LOGITS,
                  lr_scale: float = LR_SCALE, lr_bias: float = LR_BIAS, seed: int = 0,
                  evaluate: Callable[[nn.Module], float] | None = None, progress: bool = True,
                  threads: int | None = None, init_rounds: int = INIT_ROUNDS,
                  error_feedback: bool = False, start: tuple | None = None,
                  activations: dict[str, EngineActivations] | None = None) -> UniversalNetwork:
    """Compress ``model`` against ``codebook`` by soft-to-hard differentiable assignment.

    Parameters
    ----------
    model : torch.nn.Module
        The float network (teacher); not modified.
    codebook : UniversalCodebook
    data : DistillSet
        Distillation inputs (and labels for a task loss).
    layer_names : list of str, optional
        Weight layers to code; default every Linear/Conv1d/Conv2d.
    top_n : int
        Candidate codewords per sub-vector.
    soft_steps, hard_steps, batch : int
        Minibatch steps of the soft and hard phases, and their size.
    t_start, t_end : float
        Softmax temperature at the first and last soft step (geometric in between).
    lr_logits, lr_scale, lr_bias : float
        Adam step sizes.
    seed : int
        Minibatch order.
    evaluate : callable, optional
        ``nn.Module -> float`` quality metric; recorded in ``info`` for the
        float network, the initial hard assignment, the end of the soft
        phase (hardened) and the result.
    progress : bool
        tqdm bars.
    threads : int, optional
        Torch threads for training (default :data:`model.nets.distill.THREADS`).
    init_rounds : int
        Alternations of the initial hard assignment (nearest codeword, least-squares row scale).
    error_feedback : bool
        Start the ``nn.Linear`` layers from error-feedback codings where they
        help (:func:`error_feedback_init`); ``info["quality_error_feedback"]``
        is then that starting point's quality.
    start : (UniversalNetwork, dict), optional
        The initial hard assignment and each layer's ``(candidates, squared distances)``, instead of
        :func:`assign_nearest`'s (a staged ROM's beam search,
        :func:`model.compress.universal.staged.assign_staged`).
    activations : dict of str to EngineActivations, optional
        Train with these modules' inputs and outputs rounded to the engine's int8 steps (straight-through),
        so that the fit learns what the engine will compute; the teacher and ``evaluate`` stay float.

    Returns
    -------
    UniversalNetwork
    """
    names = find_weight_layers(model) if layer_names is None else list(layer_names)
    info: dict = {"method": "universal", "top_n": top_n, "soft_steps": soft_steps, "hard_steps": hard_steps,
                  "batch": batch, "t_start": t_start, "t_end": t_end, "lr": [lr_logits, lr_scale, lr_bias],
                  "seed": seed, "init_rounds": init_rounds, "codebook_sha256": codebook.content_hash(),
                  "codebook_size": codebook.k, "error_feedback": error_feedback,
                  "engine_int8_modules": len(activations or {})}
    t0 = time.perf_counter()
    if start is None:
        init, cands = assign_nearest(model, codebook, names, name, rounds=init_rounds), {}
    else:
        init, cands = start
    if evaluate is not None:
        info["quality_float"] = evaluate(model)
        info["quality_nearest"] = evaluate(init.apply(model))
    if error_feedback:
        init, cands, facts = error_feedback_init(model, init, data, top_n, progress)
        info.update(facts)
        if evaluate is not None:
            info["quality_error_feedback"] = evaluate(init.apply(model))
    cb = codebook.values()
    soft = [_SoftLayer(layer, weight_matrix(get_module(model, layer.name)), cb, top_n, cands.get(layer.name))
            for layer in init.layers]
    info["init_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    teacher = outputs(model, data.inputs)
    info["teacher_seconds"] = time.perf_counter() - t0
    state = {"t": t_start}

    def schedule(step: int) -> None:
        state["t"] = t_start * (t_end / t_start) ** (step / max(1, soft_steps - 1))

    def soft_params() -> dict:
        ws = {sl.layer.name: sl.soft_weight(state["t"]) for sl in soft}
        bs = {sl.layer.name: sl.bias for sl in soft if sl.bias is not None}
        return overrides(model, ws, bs)

    def hard_params() -> dict:
        ws = {sl.layer.name: sl.hard_weight() for sl in soft}
        bs = {sl.layer.name: sl.bias for sl in soft if sl.bias is not None}
        return overrides(model, ws, bs)

    biases = [sl.bias for sl in soft if sl.bias is not None]
    groups = [{"params": [sl.logits for sl in soft], "lr": lr_logits},
              {"params": [sl.log_scale for sl in soft], "lr": lr_scale}]
    if biases:
        groups.append({"params": biases, "lr": lr_bias})
    t0 = time.perf_counter()
    if soft_steps > 0:
        with engine_int8(model, activations):
            losses = train(model, data, teacher, soft_params, groups, steps=soft_steps, batch=batch, seed=seed,
                           on_step=schedule, progress=progress, desc=f"{name or 'net'} soft assign",
                           threads=threads)
        info["soft_loss_first_last"] = [losses[0], float(np.mean(losses[-20:]))]
    info["soft_seconds"] = time.perf_counter() - t0
    with torch.no_grad():
        pmax = torch.cat([torch.softmax(sl.logits / state["t"], 1).max(1).values for sl in soft])
        moved = torch.cat([(sl.logits.argmax(1) != 0).float() for sl in soft])
    info["final_temperature"] = state["t"]
    info["mean_max_prob"] = float(pmax.mean())
    info["frac_max_prob_below_0.9"] = float((pmax < 0.9).float().mean())
    info["frac_not_nearest"] = float(moved.mean())
    for sl in soft:
        sl.harden()
    if evaluate is not None:
        info["quality_hardened"] = evaluate(
            UniversalNetwork(name, codebook, [sl.to_layer() for sl in soft]).apply(model))
    t0 = time.perf_counter()
    if hard_steps > 0:
        hgroups = [g for g in groups[1:]]
        with engine_int8(model, activations):
            losses = train(model, data, teacher, hard_params, hgroups, steps=hard_steps, batch=batch,
                           seed=seed + 1, progress=progress, desc=f"{name or 'net'} hard scales", threads=threads)
        info["hard_loss_first_last"] = [losses[0], float(np.mean(losses[-20:]))]
    info["hard_seconds"] = time.perf_counter() - t0
    net = UniversalNetwork(name, codebook, [sl.to_layer() for sl in soft], info)
    if evaluate is not None:
        info["quality"] = evaluate(net.apply(model))
    return net


__all__ = ["UniversalLayer", "UniversalNetwork", "assign_nearest", "fit_universal", "nearest_codewords",
           "scaled_assignment", "TOP_N"]


