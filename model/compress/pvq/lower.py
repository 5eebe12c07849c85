"""Lowering a PVQ network to the engine's int8 arithmetic, and its integer forward pass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.codecs.pvq import PVQError, pvq_encode_many
from model.compress.kmeans.network import VQLayer, VQNetwork
from model.compress.lowering import (FLOAT_EXACT, HIDDEN_PERCENTILE, INPUT_SCALE, INT32_MAX, INT32_MIN,
                                     OUTPUT_PERCENTILE, LoweredNetwork, _calibrate, golden_forward)
from model.compress.pvq.budget import SCALE_MAX
from model.compress.pvq.layers import PVQLayer, PVQNetwork
from model.contract.fixedpoint import ACT_MIN, MULT_BITS, SHIFT_MAX, quantize_act, quantize_multiplier
from model.contract.ints import ceil_div
from model.contract.pyramid import pvq_entry_bits

#: Largest |int8 activation|.
ACT_ABS_MAX = -ACT_MIN


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
        Enumeration index of each ``y`` (:func:`model.codecs.pvq.pvq_encode`), ``< V(N, K)``.
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
