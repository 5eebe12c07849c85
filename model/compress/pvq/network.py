"""Pyramid vector quantization of a network's weights, lowered to the engine's integers.

Every fully-connected layer's weight matrix ``W`` (out, in) is cut row-wise
into sub-vectors of ``N`` weights, ``N`` = the engine's lanes (same layout and
zero padding as :func:`model.compress.kmeans.split_subvectors`).  Each sub-vector is coded
as ``g * y`` with ``y`` on the pyramid ``P(N, K)`` (``sum |y_i| = K``) and a
gain ``g >= 0`` (:func:`model.pvq.pvq_quantize_matrix`).  The engine holds per
sub-vector ``y``'s enumeration index (``pvq_bits(N, K)`` bits) and an unsigned
``PVQ_SCALE_BITS``-bit integer scale.

Bits and the choice of K
========================
A layer costs, counted the way :func:`model.program.compression_stats` counts a
program's row streams (but without padding each row to whole words):

    layer_bits = out * (S * (pvq_bits(N, K) + SCALE_BITS) + BIAS_BITS + REQUANT_BITS)

with ``S = ceil(in / N)`` sub-vectors per row (the padded last one is paid in
full), ``SCALE_BITS = 8``, a 32-bit bias and a 32-bit requantization word per
row.  Its bits per weight are ``layer_bits / (in * out)``.  For a budget ``B``
each layer takes the largest ``K`` with ``bits per weight <= B``
(:func:`choose_layer_k`; ``row_overhead=False`` leaves the per-row words out
of the test).  When even ``K = 1`` exceeds ``B`` (a narrow layer such as
LeNet-300-100's 100 -> 10 pays 0.64 bits/weight for its row words alone) the
layer takes ``K = 1`` and is listed in ``info["over_budget_layers"]``; the
network-wide figure ``info["bits_per_weight"]`` is the honest total.

Integer scales
==============
Per row ``r``: ``s_row = max_s g[r, s] / 255`` and ``scale_int = round(g /
s_row)`` in 0..255, so the real weight the engine represents is ``s_row *
scale_int * y``.  A row whose gains are all zero takes ``s_row`` = the median
``s_row`` of the layer's other rows (1/255 if every row is zero), so its bias
keeps a sensible resolution.

Fine-tuning
===========
``y`` stays fixed; the per-sub-vector gains and the biases are trained with
Adam for ``finetune_epochs`` epochs (k-means' :data:`~model.compress.kmeans.FINETUNE_BATCH`,
:data:`~model.compress.kmeans.FINETUNE_LR`) on float gains, the way :mod:`model.compress.kmeans` trains codewords
with fixed indices.  A gain trained below zero is folded into ``y``
(``y -> -y``, ``g -> -g``: still on the pyramid).  Re-projecting ``y`` during
training was not tried.

Lowering
========
Activation scales are calibrated exactly as :func:`model.compress.lowering.lower_vq`
does (its calibration helper runs on the float network whose weights are the
scale-quantized ``s_row * scale_int * y``, i.e. the weights the engine holds).
Per row: ``acc_scale = s_in * s_row``, ``bias = round(b / acc_scale)``
(clipped to int32), ``(mult, shift) = quantize_multiplier(acc_scale /
s_out)``.  The engine computes

    acc = wrap32(bias[r] + sum_s pvq_scale[r, s] * sum_i pvq_y[r, s, i] * x[s*N + i])
    out = requantize(acc, mult[r], shift[r], relu)

(:func:`golden_forward_pvq`).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from model.nets.data import load_fashion_mnist
from model.contract.fixedpoint import ACC_BITS, ACT_MIN, MULT_BITS, SHIFT_MAX, quantize_act, quantize_multiplier
from model.contract.layout import PVQ_SCALE_BITS, WORD_BITS, row_words
from model.contract.ints import ceil_div
from model.compress.lowering import (FLOAT_EXACT, CALIBRATION_IMAGES, golden_forward, HIDDEN_PERCENTILE, INPUT_SCALE, INT32_MAX, INT32_MIN,
                                     OUTPUT_PERCENTILE, LoweredNetwork, _calibrate)
from model.nets.networks import evaluate
from model.codecs.pvq import PVQError, pvq_bits, pvq_encode_many
from model.compress.pvq.pyramid import pvq_quantize_matrix
from model.compress.kmeans import FINETUNE_BATCH, FINETUNE_LR, VQLayer, VQNetwork, _linear_layers, finetune_coded
from model.compress.registry import EngineJob, register_method

#: Width of a sub-vector's unsigned integer scale (the engine's ``PVQ_SCALE_BITS``).
SCALE_BITS = PVQ_SCALE_BITS
SCALE_MAX = (1 << SCALE_BITS) - 1
#: Per-row words of the row stream: int32 bias and the requantization word.
BIAS_BITS = ACC_BITS
REQUANT_BITS = WORD_BITS
ROW_OVERHEAD_BITS = BIAS_BITS + REQUANT_BITS
#: Default budget, all-in bits per weight.
DEFAULT_BITS_PER_WEIGHT = 4.0
#: Fine-tuning of gains and biases (``y`` fixed).  Adam, as for VQ codewords.
FINETUNE_EPOCHS = 2
#: Slack so that e.g. a budget of exactly 4.0 admits a layer costing 4.0 bits per weight.
BUDGET_EPS = 1e-9
#: Largest |int8 activation|.
ACT_ABS_MAX = -ACT_MIN


class PVQBudgetError(ValueError):
    """A bit budget no K can meet, or a malformed request."""


# ---------------------------------------------------------------------------
# Bits


def pvq_entry_bits(lanes: int, k: int) -> int:
    """Bits of one sub-vector's row-stream entry: enumeration index plus scale."""
    return pvq_bits(lanes, k) + SCALE_BITS


def pvq_layer_bits(in_features: int, out_features: int, lanes: int, k: int, row_overhead: bool = True) -> int:
    """Stored bits of one PVQ layer: ``out * (S * entry_bits + 64)`` (no word padding)."""
    s = ceil_div(in_features, lanes)
    return out_features * (s * pvq_entry_bits(lanes, k) + (ROW_OVERHEAD_BITS if row_overhead else 0))


def pvq_layer_stream_bits(in_features: int, out_features: int, lanes: int, k: int) -> int:
    """Bits of the layer's row stream as the engine stores it (rows padded to whole words)."""
    return out_features * row_words(in_features, lanes, pvq_entry_bits(lanes, k)) * WORD_BITS


def choose_matrix_k(in_features: int, out_features: int, lanes: int, bits_per_weight: float,
                    row_bits: int) -> int:
    """Largest ``K`` with ``out * (S * entry_bits + row_bits) <= bits_per_weight * in * out``.

    The general form of :func:`choose_layer_k`, for any per-row side data
    (e.g. a float row scale and a bias outside the engine).  Returns 0 when not
    even ``K = 1`` fits.

    Parameters
    ----------
    in_features, out_features : int
        Matrix shape (``out_features`` rows of ``in_features`` weights), both ``>= 1``.
    lanes : int
        Sub-vector dimension, ``>= 2`` (for ``N = 1`` the bits stop growing with ``K``).
    bits_per_weight : float
        Budget, positive and finite.
    row_bits : int
        Bits stored per row besides its entries, ``>= 0``.
    """
    if lanes < 2:
        raise PVQBudgetError(f"PVQ needs lanes >= 2, got {lanes}")
    if not (bits_per_weight > 0 and math.isfinite(bits_per_weight)):
        raise PVQBudgetError(f"bits_per_weight must be positive and finite, got {bits_per_weight}")
    if in_features < 1 or out_features < 1 or row_bits < 0:
        raise PVQBudgetError(f"need in_features, out_features >= 1 and row_bits >= 0, got "
                             f"{in_features}, {out_features}, {row_bits}")
    s = ceil_div(in_features, lanes)
    budget = bits_per_weight * in_features * out_features * (1 + BUDGET_EPS)

    def fits(k):
        return out_features * (s * pvq_entry_bits(lanes, k) + row_bits) <= budget

    if not fits(1):
        return 0
    lo, hi = 1, 2  # pvq_bits grows strictly with K for N >= 2: bracket, then bisect
    while fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def choose_layer_k(in_features: int, out_features: int, lanes: int, bits_per_weight: float,
                   row_overhead: bool = True) -> int:
    """Largest ``K`` whose :func:`pvq_layer_bits` per weight is at most ``bits_per_weight``.

    Returns 0 when not even ``K = 1`` fits (the caller decides what to do).

    Parameters
    ----------
    in_features, out_features : int
    lanes : int
        Sub-vector dimension, ``>= 2`` (for ``N = 1`` the bits stop growing with ``K``).
    bits_per_weight : float
    row_overhead : bool
        Count the 64 bits of bias and requantization word per row.
    """
    return choose_matrix_k(in_features, out_features, lanes, bits_per_weight,
                           ROW_OVERHEAD_BITS if row_overhead else 0)


# ---------------------------------------------------------------------------
# Float PVQ layers and networks


def integer_scales(gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row integer scales of non-negative gains ``(out, S)``.

    Returns
    -------
    scale_int : numpy.ndarray of int64, shape (out, S)
        ``round(g / s_row)``, in ``0 .. SCALE_MAX``.
    s_row : numpy.ndarray of float64, shape (out,)
        ``max_s g / SCALE_MAX``, positive; rows with no positive gain take the
        median of the others (``1 / SCALE_MAX`` if there are none).
    """
    g = np.asarray(gain, dtype=np.float64)
    if g.ndim != 2 or (g.size and g.min() < 0) or not np.isfinite(g).all():
        raise PVQError("gains must be a finite, non-negative (out, S) array")
    s_row = (g.max(axis=1) if g.shape[1] else np.zeros(g.shape[0])) / SCALE_MAX
    pos = s_row > 0
    fallback = float(np.median(s_row[pos])) if pos.any() else 1.0 / SCALE_MAX
    s_row = np.where(pos, s_row, fallback)
    scale_int = np.clip(np.round(g / s_row[:, None]), 0, SCALE_MAX).astype(np.int64)
    return scale_int, s_row


def pvq_code_matrix(w2d: np.ndarray, lanes: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PVQ-code any ``(out, cols)`` weight matrix as the engine stores it, without lowering.

    Projection and least-squares gains (:func:`model.pvq.pvq_quantize_matrix`),
    then the gains as 8-bit integers on a per-row float scale
    (:func:`integer_scales`): the reconstruction is exactly what a row
    stream of indices and 8-bit scales plus one scale per row represents.

    Parameters
    ----------
    w2d : numpy.ndarray, shape (out, cols)
    lanes : int
        Sub-vector dimension ``N``.
    k : int
        Pulses per sub-vector, ``>= 1``.

    Returns
    -------
    weight : numpy.ndarray of float32, shape (out, cols)
        ``s_row * scale_int * y`` with the padding dropped.
    y : numpy.ndarray of int64, shape (out, S, N)
    scale_int : numpy.ndarray of int64, shape (out, S)
    """
    if k < 1:
        raise PVQError(f"K must be >= 1, got {k}")
    w = np.asarray(w2d, dtype=np.float64)
    y, g = pvq_quantize_matrix(w, lanes, k)
    # Projection keeps the signs of the weights, so gains are >= 0 up to rounding.
    scale_int, s_row = integer_scales(np.maximum(g, 0.0))
    rec = (s_row[:, None, None] * scale_int[..., None] * y).reshape(w.shape[0], -1)[:, :w.shape[1]]
    return rec.astype(np.float32), y, scale_int


@dataclass
class PVQLayer:
    """One fully-connected layer coded as ``gain * y`` per sub-vector.

    Attributes
    ----------
    y : numpy.ndarray of int64, shape (out_features, S, N)
        Every sub-vector has ``sum |y| = k``.
    gain : numpy.ndarray of float64, shape (out_features, S)
        Non-negative float gains.
    bias : numpy.ndarray of float32, shape (out_features,)
    in_features, out_features : int
    relu : bool
    k : int
        Pulses per sub-vector.
    """
    y: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    in_features: int
    out_features: int
    relu: bool
    k: int
    method: ClassVar[str] = "pvq"

    def __post_init__(self):
        s = ceil_div(self.in_features, self.dim)
        if self.y.ndim != 3 or self.y.shape[:2] != (self.out_features, s):
            raise PVQError(f"y has shape {self.y.shape}, expected {(self.out_features, s, self.dim)}")
        if self.gain.shape != (self.out_features, s):
            raise PVQError(f"gain has shape {self.gain.shape}, expected {(self.out_features, s)}")
        if self.bias.shape != (self.out_features,):
            raise PVQError(f"bias has shape {self.bias.shape}, expected {(self.out_features,)}")
        if self.k < 1 or np.any(np.abs(self.y).sum(axis=2) != self.k):
            raise PVQError(f"every sub-vector must have sum|y| = K = {self.k} >= 1")

    @property
    def dim(self) -> int:
        return self.y.shape[2]

    def normalized(self) -> "PVQLayer":
        """The same weights with every gain >= 0 (negative gains folded into ``y``)."""
        neg = self.gain < 0
        return PVQLayer(y=np.where(neg[..., None], -self.y, self.y), gain=np.abs(self.gain),
                        bias=self.bias, in_features=self.in_features, out_features=self.out_features,
                        relu=self.relu, k=self.k)

    def integer_scales(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scale_int (out, S), s_row (out,))``; see :func:`integer_scales`."""
        return integer_scales(self.gain)

    def weight(self, quantized_scales: bool = False) -> np.ndarray:
        """Float weights (out, in): ``gain * y``, or ``s_row * scale_int * y`` if ``quantized_scales``."""
        if quantized_scales:
            scale_int, s_row = self.integer_scales()
            g = s_row[:, None] * scale_int
        else:
            g = self.gain
        w = (g[..., None] * self.y).reshape(self.out_features, -1)
        return w[:, :self.in_features]

    def bits(self, row_overhead: bool = True) -> int:
        return pvq_layer_bits(self.in_features, self.out_features, self.dim, self.k, row_overhead)


@dataclass
class PVQNetwork:
    """A fully-connected network whose layers are each PVQ-coded.

    Attributes
    ----------
    name : str
    method : str
        ``"pvq"``.
    dim : int
        Sub-vector dimension (engine lanes).
    bits_per_weight : float or None
        The requested budget (None when K was given explicitly).
    layers : list of PVQLayer
    info : dict
        Measured facts (Ks, bits, timings, accuracies).
    """
    name: str
    method: str
    dim: int
    bits_per_weight: float | None
    layers: list[PVQLayer]
    info: dict = field(default_factory=dict)

    def bits(self, row_overhead: bool = True) -> int:
        return sum(layer.bits(row_overhead) for layer in self.layers)

    def weights(self) -> int:
        return sum(layer.in_features * layer.out_features for layer in self.layers)


class PVQLinear(nn.Module):
    """Linear layer computing with ``gain * y``: ``y`` is a fixed buffer, gains and bias are trainable."""

    def __init__(self, layer: PVQLayer, quantized_scales: bool = False):
        super().__init__()
        if quantized_scales:
            scale_int, s_row = layer.integer_scales()
            gain = s_row[:, None] * scale_int
        else:
            gain = layer.gain
        self.register_buffer("y", torch.tensor(layer.y, dtype=torch.float32))
        self.gain = nn.Parameter(torch.tensor(gain, dtype=torch.float32))
        self.bias = nn.Parameter(torch.tensor(layer.bias, dtype=torch.float32))
        self.in_features = layer.in_features
        self.out_features = layer.out_features
        self.k = layer.k

    def weight(self) -> torch.Tensor:
        w = self.gain.unsqueeze(-1) * self.y
        return w.reshape(self.out_features, -1)[:, :self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight(), self.bias)

    def to_layer(self, relu: bool) -> PVQLayer:
        return PVQLayer(y=self.y.numpy().astype(np.int64), gain=self.gain.detach().numpy().astype(np.float64),
                        bias=self.bias.detach().numpy().copy(), in_features=self.in_features,
                        out_features=self.out_features, relu=relu, k=self.k).normalized()


def pvq_to_torch(net: PVQNetwork, quantized_scales: bool = False) -> nn.Sequential:
    """A float torch model of ``net`` (8-bit per-row integer scales if ``quantized_scales``)."""
    mods: list[nn.Module] = []
    for layer in net.layers:
        mods.append(PVQLinear(layer, quantized_scales))
        if layer.relu:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def quantize_linear(linear: nn.Linear, lanes: int, k: int, relu: bool) -> PVQLayer:
    """PVQ-code one ``nn.Linear`` (projection plus least-squares gains)."""
    w = linear.weight.detach().cpu().numpy().astype(np.float64)
    b = linear.bias.detach().cpu().numpy().astype(np.float32)
    y, g = pvq_quantize_matrix(w, lanes, k)
    return PVQLayer(y=y, gain=g, bias=b, in_features=linear.in_features, out_features=linear.out_features,
                    relu=relu, k=k).normalized()


# ---------------------------------------------------------------------------
# Lowered layers


@dataclass
class PVQLoweredLayer:
    """One PVQ layer in integers (the program builder's and golden engine's contract).

    Attributes
    ----------
    in_features, out_features : int
    relu : bool
    bias : numpy.ndarray of int64, shape (out,)
        Fits int32; scale ``s_in * s_row``.
    mult, shift : numpy.ndarray of int64, shape (out,)
        Per-row requantization, ``mult < 2**MULT_BITS``, ``shift <= SHIFT_MAX``.
    pvq_k : int
        Pulses per sub-vector.
    pvq_y : numpy.ndarray of int64, shape (out, S, N)
        ``sum |y| = pvq_k`` for every sub-vector.
    pvq_scale : numpy.ndarray of int64, shape (out, S)
        Unsigned integer scales, ``0 .. SCALE_MAX``.
    pvq_index : numpy.ndarray of int64, shape (out, S)
        Enumeration index of each ``y`` (:func:`model.pvq.pvq_encode`), ``< V(N, K)``.
    codebook : numpy.ndarray of int8, shape (0, N)
        Empty: PVQ layers have no codebook.
    indices : None
    mode : str
        ``"pvq"``.
    """
    in_features: int
    out_features: int
    relu: bool
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    pvq_k: int
    pvq_y: np.ndarray
    pvq_scale: np.ndarray
    pvq_index: np.ndarray
    codebook: np.ndarray = None
    indices: None = None
    mode: str = "pvq"

    def __post_init__(self):
        n, s, lanes = self.out_features, ceil_div(self.in_features, self.pvq_y.shape[-1]), self.pvq_y.shape[-1]
        if self.codebook is None:
            self.codebook = np.zeros((0, lanes), dtype=np.int8)
        if self.pvq_y.shape != (n, s, lanes) or self.pvq_scale.shape != (n, s) or self.pvq_index.shape != (n, s):
            raise PVQError(f"pvq_y/pvq_scale/pvq_index must have shapes {(n, s, lanes)} and {(n, s)}")
        if self.pvq_k < 1 or np.any(np.abs(self.pvq_y).sum(axis=2) != self.pvq_k):
            raise PVQError(f"every sub-vector needs sum|y| = K = {self.pvq_k} >= 1")
        if self.pvq_scale.size and (self.pvq_scale.min() < 0 or self.pvq_scale.max() > SCALE_MAX):
            raise PVQError(f"pvq_scale must be in 0..{SCALE_MAX}")
        for name, lo, hi in (("bias", INT32_MIN, INT32_MAX), ("mult", 0, (1 << MULT_BITS) - 1),
                             ("shift", 0, SHIFT_MAX)):
            a = getattr(self, name)
            if a.shape != (n,) or (n and (a.min() < lo or a.max() > hi)):
                raise PVQError(f"{name} must have shape {(n,)} and values in [{lo}, {hi}]")

    @property
    def lanes(self) -> int:
        return self.pvq_y.shape[-1]

    @property
    def entry_bits(self) -> int:
        return pvq_entry_bits(self.lanes, self.pvq_k)

    def weight(self) -> np.ndarray:
        """The integer weight matrix ``scale * y`` (out_features, in_features), int64.

        With it :func:`model.compress.lowering.golden_forward` runs PVQ layers too.
        """
        w = (self.pvq_scale[..., None] * self.pvq_y).reshape(self.out_features, -1)
        return w[:, :self.in_features]


def _calibration_shim(net: PVQNetwork) -> VQNetwork:
    """A VQ network with the same (scale-quantized) float weights, for lowering's calibration helper.

    Every sub-vector becomes its own codeword, so ``to_torch`` of the shim
    computes exactly the PVQ network's weights.
    """
    layers = []
    for layer in net.layers:
        w = layer.weight(quantized_scales=True)
        s = ceil_div(layer.in_features, layer.dim)
        padded = np.zeros((layer.out_features, s * layer.dim), dtype=np.float32)
        padded[:, :layer.in_features] = w
        layers.append(VQLayer(codebook=padded.reshape(-1, layer.dim),
                              indices=np.arange(layer.out_features * s, dtype=np.int64).reshape(-1, s),
                              bias=np.asarray(layer.bias, dtype=np.float32), in_features=layer.in_features,
                              out_features=layer.out_features, relu=layer.relu))
    return VQNetwork(name=net.name, method="vq", dim=net.dim, k=0, layers=layers)


def _lower_pvq_layer(layer: PVQLayer, s_in: float, s_out: float) -> PVQLoweredLayer:
    scale_int, s_row = layer.integer_scales()
    acc_scale = s_in * s_row  # (out,)
    bias = np.clip(np.round(layer.bias.astype(np.float64) / acc_scale), INT32_MIN, INT32_MAX).astype(np.int64)
    mq = [quantize_multiplier(float(a / s_out)) for a in acc_scale]
    mult = np.array([m for m, _ in mq], dtype=np.int64)
    shift = np.array([s for _, s in mq], dtype=np.int64)
    n, s, lanes = layer.y.shape
    index = pvq_encode_many(layer.y.reshape(-1, lanes), layer.k).astype(np.int64).reshape(n, s)
    return PVQLoweredLayer(in_features=layer.in_features, out_features=layer.out_features, relu=layer.relu,
                           bias=bias, mult=mult, shift=shift, pvq_k=int(layer.k), pvq_y=layer.y.astype(np.int64),
                           pvq_scale=scale_int, pvq_index=index)


def lower_pvq(net: PVQNetwork, calib_x: np.ndarray) -> LoweredNetwork:
    """Lower a PVQ network to integers (see the module docstring).

    Parameters
    ----------
    net : PVQNetwork
        ReLU after every layer but the last; gains >= 0.
    calib_x : numpy.ndarray, shape (n, in_features)
        Calibration inputs (pixels in [0, 1]).

    Returns
    -------
    model.compress.lowering.LoweredNetwork
        ``method = "pvq"``, layers :class:`PVQLoweredLayer`.
    """
    out_scales = _calibrate(_calibration_shim(net), calib_x)
    in_scales = [INPUT_SCALE] + out_scales[:-1]
    layers = [_lower_pvq_layer(layer, s_in, s_out)
              for layer, s_in, s_out in zip(net.layers, in_scales, out_scales)]
    info = dict(net.info)
    info.update(calibration_images=int(len(calib_x)), hidden_percentile=HIDDEN_PERCENTILE,
                output_percentile=OUTPUT_PERCENTILE, activation_scales=[INPUT_SCALE] + out_scales,
                acc_bounds=[acc_bound(layer) for layer in layers])
    return LoweredNetwork(name=net.name, method="pvq", lanes=net.dim, input_scale=INPUT_SCALE,
                          output_scale=out_scales[-1], layers=layers, info=info)


def acc_bound(layer: PVQLoweredLayer) -> int:
    """Largest ``|acc|`` any int8 input can produce (before wrapping): no wrap if < 2**31."""
    row_l1 = (np.asarray(layer.pvq_scale) * np.abs(np.asarray(layer.pvq_y)).sum(axis=2)).sum(axis=1)
    return int(np.abs(layer.bias).max(initial=0)) + ACT_ABS_MAX * int(row_l1.max(initial=0))


def golden_forward_pvq(lowered: LoweredNetwork, x_int8: np.ndarray) -> np.ndarray:
    """Integer forward pass of a PVQ-lowered network, straight from ``pvq_y`` and ``pvq_scale``.

    Per layer and row ``r``::

        acc[r] = wrap32(bias[r] + sum_s pvq_scale[r, s] * sum_i pvq_y[r, s, i] * x[s*N + i])
        out[r] = requantize(acc[r], mult[r], shift[r], relu)

    with ``x`` zero-padded to ``S * N``: :func:`model.compress.lowering.golden_forward`
    on the layers' :meth:`PVQLoweredLayer.weight`, after checking that every
    partial sum is an integer below 2**53 (so its float64 sums are exact).

    Parameters
    ----------
    lowered : LoweredNetwork
        Layers with ``pvq_y``, ``pvq_scale``, ``bias``, ``mult``, ``shift``, ``relu``.
    x_int8 : numpy.ndarray of int8, shape (n, in_features)

    Returns
    -------
    numpy.ndarray of int8, shape (n, out_features)
    """
    for layer in lowered.layers:
        if acc_bound(layer) >= FLOAT_EXACT:
            raise ValueError("accumulator bound exceeds float64's exact integer range")
    # PVQLoweredLayer.weight() is the (out, S*N) matrix scale[r, s] * y[r, s, i]: the same integers.
    return golden_forward(lowered, x_int8)


def evaluate_lowered_pvq(lowered: LoweredNetwork, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of :func:`golden_forward_pvq` on real inputs ``x`` (quantized with ``input_scale``)."""
    out = golden_forward_pvq(lowered, quantize_act(x, lowered.input_scale))
    return float(np.mean(out.argmax(axis=1) == np.asarray(y)))


# ---------------------------------------------------------------------------
# The whole flow


def _layer_ks(linears, lanes: int, bits_per_weight: float | None, k, row_overhead: bool) -> tuple[list[int], list[int]]:
    """K per layer and the indices of layers that could not meet the budget."""
    if k is not None:
        ks = [int(k)] * len(linears) if np.ndim(k) == 0 else [int(v) for v in k]
        if len(ks) != len(linears) or min(ks) < 1:
            raise PVQBudgetError(f"k must be an int >= 1 or one per layer ({len(linears)}), got {k}")
        return ks, []
    if bits_per_weight is None:
        raise PVQBudgetError("give bits_per_weight or k")
    ks, over = [], []
    for i, (lin, _) in enumerate(linears):
        kk = choose_layer_k(lin.in_features, lin.out_features, lanes, bits_per_weight, row_overhead)
        if kk == 0:
            over.append(i)
            kk = 1
        ks.append(kk)
    if over:
        warnings.warn(f"PVQ: layers {over} cannot meet {bits_per_weight} bits/weight even with K=1; "
                      f"they use K=1", stacklevel=3)
    return ks, over


def pvq_compress(model: nn.Module, lanes: int = 4, bits_per_weight: float | None = DEFAULT_BITS_PER_WEIGHT,
                 finetune_epochs: int = FINETUNE_EPOCHS, seed: int = 0, progress: bool = True, *,
                 k: int | Sequence[int] | None = None, row_overhead: bool = True, name: str = "",
                 train_data: tuple[np.ndarray, np.ndarray] | None = None,
                 eval_data: tuple[np.ndarray, np.ndarray] | None = None,
                 calib_x: np.ndarray | None = None,
                 calibration_images: int = CALIBRATION_IMAGES) -> tuple[PVQNetwork, LoweredNetwork]:
    """PVQ-code every layer of a Linear/ReLU network, fine-tune the gains, lower to integers.

    Parameters
    ----------
    model : torch.nn.Sequential
        ``nn.Linear`` layers, each but the last followed by ``nn.ReLU``.  Not modified.
    lanes : int
        Sub-vector dimension = engine lanes (``>= 2``; 4 and 8 are the engine's).
    bits_per_weight : float
        Per-layer budget, all-in (index + scale + row words, see :func:`choose_layer_k`).
    finetune_epochs : int
        Epochs of gain/bias training with ``y`` fixed; 0 keeps the projection's gains.
    seed : int
        Fine-tuning batch order and the calibration sample.
    progress : bool
        Progress bar while fine-tuning.
    k : int or sequence of int, optional
        Pulses per sub-vector (one for all layers or one per layer); overrides the budget.
    row_overhead : bool
        Count the per-row bias and requantization words when choosing K.
    name : str
        Network name recorded in the results.
    train_data : (x, y), optional
        Fine-tuning and calibration data; default the Fashion-MNIST training set (loaded only if needed).
    eval_data : (x, y), optional
        If given, ``info`` records accuracies (float, projection, fine-tuned, scale-quantized, int8).
    calib_x : numpy.ndarray, optional
        Calibration inputs; default ``calibration_images`` training images drawn with ``seed``
        (as ``vqe compress`` does).
    calibration_images : int

    Returns
    -------
    net : PVQNetwork
        The float PVQ network (evaluate it with ``pvq_to_torch(net)``).
    lowered : model.compress.lowering.LoweredNetwork
        ``method = "pvq"``, layers :class:`PVQLoweredLayer`; ``info`` includes ``net.info``.
    """
    if lanes < 2:
        raise PVQBudgetError(f"PVQ needs lanes >= 2, got {lanes}")
    linears = _linear_layers(model)
    ks, over = _layer_ks(linears, lanes, bits_per_weight, k, row_overhead)
    info: dict = {"lanes": lanes, "requested_bits_per_weight": bits_per_weight, "seed": seed,
                  "pvq_k": ks, "over_budget_layers": over, "row_overhead_in_budget": row_overhead,
                  "finetune_epochs": finetune_epochs, "finetune_batch": FINETUNE_BATCH, "finetune_lr": FINETUNE_LR,
                  "scale_bits": SCALE_BITS}
    t0 = time.perf_counter()
    layers = [quantize_linear(lin, lanes, kk, relu) for (lin, relu), kk in zip(linears, ks)]
    info["project_seconds"] = time.perf_counter() - t0
    net = PVQNetwork(name=name, method="pvq", dim=lanes, bits_per_weight=bits_per_weight, layers=layers, info=info)
    weights = net.weights()
    info["weights"] = weights
    info["layer_bits"] = [layer.bits() for layer in layers]
    info["layer_bits_per_weight"] = [layer.bits() / (layer.in_features * layer.out_features) for layer in layers]
    info["bits"] = net.bits()
    info["bits_per_weight"] = net.bits() / weights
    info["bits_per_weight_entries_only"] = net.bits(row_overhead=False) / weights
    info["stream_bits_per_weight"] = sum(
        pvq_layer_stream_bits(l.in_features, l.out_features, lanes, l.k) for l in layers) / weights
    if eval_data is not None:
        info["float_accuracy"] = evaluate(model, *eval_data)
        info["pvq_projection_accuracy"] = evaluate(pvq_to_torch(net), *eval_data)
    if finetune_epochs > 0 or calib_x is None:
        if train_data is None:
            train_data = load_fashion_mnist("train")
    if finetune_epochs > 0:
        net.layers, info["finetune_seconds"] = finetune_coded(pvq_to_torch(net), PVQLinear, layers, train_data,
                                                              epochs=finetune_epochs, seed=seed, progress=progress,
                                                              desc="pvq finetune")
    if eval_data is not None:
        info["pvq_float_accuracy"] = evaluate(pvq_to_torch(net), *eval_data)
        info["pvq_scaleq_accuracy"] = evaluate(pvq_to_torch(net, quantized_scales=True), *eval_data)
    if calib_x is None:
        rng = np.random.default_rng(seed)
        x_train = train_data[0]
        calib_x = x_train[rng.choice(len(x_train), size=min(calibration_images, len(x_train)), replace=False)]
    t0 = time.perf_counter()
    lowered = lower_pvq(net, calib_x)
    lowered.info["lowering_seconds"] = time.perf_counter() - t0
    if eval_data is not None:
        lowered.info["int8_accuracy"] = evaluate_lowered_pvq(lowered, *eval_data)
        info["int8_accuracy"] = lowered.info["int8_accuracy"]
    return net, lowered


@register_method("pvq", "pyramid VQ: an enumeration index and an 8-bit scale per sub-vector, no codebook",
                 options=("bits_per_weight", "finetune_epochs"))
def pvq_program(job: EngineJob):
    """PVQ-code every layer; the engine gets a PVQ unit sized to the largest K."""
    from model.nets.networks import evaluate
    from model.program.writer import build_program
    o = job.options
    budget = o.bits_per_weight or DEFAULT_BITS_PER_WEIGHT
    t0 = time.perf_counter()
    net, lowered = pvq_compress(job.task.tail, lanes=o.lanes, bits_per_weight=budget,
                                finetune_epochs=FINETUNE_EPOCHS if o.finetune_epochs is None else o.finetune_epochs,
                                seed=o.seed, progress=o.progress, name=job.network, train_data=job.train,
                                calib_x=job.calib)
    seconds = time.perf_counter() - t0
    lowered.name, lowered.method = job.network, "pvq"
    ks = [int(layer.pvq_k) for layer in lowered.layers]
    return build_program(lowered, pvq_k_max=max(ks), info=dict(
        job.info, pvq_float_accuracy=evaluate(pvq_to_torch(net), *job.test), compress_seconds=seconds, pvq_k=ks,
        bits_per_weight_budget=budget))
