"""PVQ-coded layers: integer scales, coding a weight matrix, the network and its torch form for fine-tuning."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from model.codecs.pvq import PVQError
from model.compress.pvq.budget import SCALE_MAX, pvq_layer_bits
from model.compress.pvq.pyramid import pvq_quantize_matrix
from model.contract.ints import ceil_div


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

    Projection and least-squares gains (:func:`model.compress.pvq.pyramid.pvq_quantize_matrix`),
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
