"""Golden twin of :class:`hw.nearest.NearestPrototype`: squared distances to VQ-coded prototypes and their argmin.

A ``NEAREST`` layer (:mod:`model.contract.layout`, "Nearest-prototype layers")
writes, for each input vector, the label (row header word 0) of the row whose
codewords are nearest in squared Euclidean distance, ties to the lowest row.
"""
from __future__ import annotations

import numpy as np

from model.codecs.layers.base import DecodedLayer
from model.contract.layout import LayerKind
from model.golden.windows import register_forward


def squared_distances(x: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """``d[n, r] = sum_i (x[n, i] - prototypes[r, i])**2``, exactly, in int64: (n, rows).

    Computed as ``||x||^2 - 2 x.p + ||p||^2`` (every term an exact integer), which the unit's per-lane
    squares sum to; no row's distance can exceed ``distance_bits(max_features)`` bits.
    """
    x, p = np.asarray(x, dtype=np.int64), np.asarray(prototypes, dtype=np.int64)
    return (x * x).sum(1)[:, None] - 2 * (x @ p.T) + (p * p).sum(1)[None, :]


def nearest_labels(x: np.ndarray, prototypes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label of each vector's nearest prototype, ties to the lowest index (:func:`numpy.argmin`): (n,)."""
    return np.asarray(labels, dtype=np.int64)[np.argmin(squared_distances(x, prototypes), axis=1)]


@register_forward(LayerKind.NEAREST)
def nearest(layer: DecodedLayer, x: np.ndarray, lanes: int) -> np.ndarray:
    """One output per vector: the nearest row's label (the rows' bias words)."""
    d = layer.desc
    return nearest_labels(x[:, :d.in_features], layer.weights()[:, :d.in_features], layer.bias)[:, None]
