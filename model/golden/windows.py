"""Golden twins of the layer kinds' arithmetic: the whole vector (FC), windows (convolution), pooling, add.

Twins of :class:`hw.window_walker.WindowWalker` (the convolution's window
addresses, through the MAC lanes), :class:`hw.max_pool.MaxPool`,
:class:`hw.avg_pool.AvgPool` and :class:`hw.residual_add.ResidualAdd`.  Each kind
of :mod:`model.codecs.layers.kinds` registers its function here; a kind that
reads the skip buffer (ADD) registers with ``saved=True`` and gets the saved
vectors as a fourth argument.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from model.codecs.layers.base import DecodedLayer
from model.contract.fixedpoint import ACT_MIN
from model.contract.ints import round_up
from model.contract.layout import LayerKind, vector_align
from model.golden.mac import accumulate
from model.golden.requantizer import requantize_rows

#: A kind's arithmetic: (decoded layer, int8 inputs (n, input values), lanes) -> int8 outputs (n, output values).
Forward = Callable[[DecodedLayer, np.ndarray, int], np.ndarray]
_FORWARD: dict[int, Forward] = {}
#: The kinds whose arithmetic reads the skip buffer too.
_READS_SAVED: set[int] = set()


def register_forward(kind: LayerKind, saved: bool = False):
    """Decorator: the arithmetic of layers of ``kind``; with ``saved``, it takes the skip buffer's vectors
    (n, values) as a fourth argument."""
    def add(fn: Forward) -> Forward:
        if int(kind) in _FORWARD:
            raise ValueError(f"layer kind {kind!r} already has its arithmetic")
        _FORWARD[int(kind)] = fn
        if saved:
            _READS_SAVED.add(int(kind))
        return fn
    return add


def forward(layer: DecodedLayer, x: np.ndarray, lanes: int, saved: np.ndarray | None = None) -> np.ndarray:
    """The layer's outputs for inputs ``x`` (int64 arrays of int8 values); ``saved``: the skip buffer's
    vectors, for the kinds that read it."""
    kind = int(layer.desc.kind)
    if kind in _READS_SAVED:
        return _FORWARD[kind](layer, x, lanes, saved)
    return _FORWARD[kind](layer, x, lanes)


def _rows(layer: DecodedLayer, x: np.ndarray) -> np.ndarray:
    """Each row's requantized dot product with each vector of ``x``: (n, out_features)."""
    d = layer.desc
    acc = accumulate(layer.bias, x, layer.weights()[:, :d.in_features])
    return requantize_rows(acc, layer.mult, layer.shift, d.relu, layer.act, d.floor)


@register_forward(LayerKind.FC)
def fully_connected(layer, x, lanes):
    return _rows(layer, x)


#: Window values gathered at a time (int64), to bound memory on whole test sets.
GATHER_CHUNK = 1 << 22


def _image_chunks(n: int, values_per_image: int):
    step = max(1, GATHER_CHUNK // max(1, values_per_image))
    return (slice(i, min(i + step, n)) for i in range(0, n, step))


@register_forward(LayerKind.CONV)
def convolution(layer, x, lanes):
    """Rows against each position's window (padding taps zero); each position a pixel of padded channels."""
    d, win = layer.desc, layer.desc.window
    n, positions = len(x), win.positions()
    pixels = np.zeros((n, positions, round_up(d.out_features, vector_align(lanes))), dtype=np.int64)
    for part in _image_chunks(n, positions * d.in_features):
        windows = win.gather(x[part], lanes).reshape(-1, d.in_features)
        # The output packer zero-fills a pixel's padding channels.
        pixels[part, :, :d.out_features] = _rows(layer, windows).reshape(-1, positions, d.out_features)
    return pixels.reshape(n, -1)


@register_forward(LayerKind.MAXPOOL)
def max_pool(layer, x, lanes):
    """Per channel, the maximum of each window's taps inside the map (``ACT_MIN`` for none)."""
    win = layer.desc.window
    parts = [win.gather(x[part], lanes, fill=ACT_MIN).max(axis=2).reshape(part.stop - part.start, -1)
             for part in _image_chunks(len(x), win.positions() * win.taps() * win.channels(lanes))]
    return np.concatenate(parts).astype(np.int64)


@register_forward(LayerKind.AVGPOOL)
def avg_pool(layer, x, lanes):
    """Per channel, the sum of each window's taps (padding zero), requantized as a row's accumulator."""
    win = layer.desc.window
    d = layer.desc
    parts = []
    for part in _image_chunks(len(x), win.positions() * win.taps() * win.channels(lanes)):
        sums = win.gather(x[part], lanes).sum(axis=2).reshape(-1, d.out_features)   # (n * positions, channels)
        out = requantize_rows(sums, layer.mult, layer.shift, d.relu, layer.act, d.floor)
        parts.append(out.reshape(part.stop - part.start, -1))
    return np.concatenate(parts).astype(np.int64)


@register_forward(LayerKind.ADD, saved=True)
def residual_add(layer, x, lanes, saved):
    """Each value plus the skip buffer's, requantized as a row's accumulator (one requantization word)."""
    return requantize_rows(x + saved, layer.mult, layer.shift, layer.desc.relu, layer.act,
                           layer.desc.floor).astype(np.int64)
