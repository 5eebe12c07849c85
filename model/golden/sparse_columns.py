"""Golden twin of :class:`hw.sparse_columns.SparseColumns`: a column-wise sparse layer's sums and events."""
from __future__ import annotations

import numpy as np

from model.codecs.sparse_columns import ColumnLayer
from model.contract.fixedpoint import wrap_acc


def column_sums(layer: ColumnLayer, centroids: np.ndarray, x: np.ndarray,
                bias: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """One image's accumulators plus biases, as the block's output beats, and its event counts.

    Parameters
    ----------
    layer : ColumnLayer
    centroids : array of int, (k,)
        The layer's scalar weights by centroid index.
    x : array of int, (in_features padded to whole lane-words,)
        The int8 activations the block scans (the padding is zero).
    bias : array of int, (out_features,), optional
        The layer's biases by layer row (default: zero).

    Returns
    -------
    sums : ndarray of int64, (local_rows, slots)
        Beat ``t``, lane ``s``: slot ``s``'s local row ``t``, ``sum`` of
        ``centroid * activation`` over its kept weights, plus its bias, wrapped
        to 32 bits (0 where the slot has fewer rows).
    events : dict
        ``macs``: entries multiplied (kept weights of columns whose activation
        is not zero); ``zero_skips``: zero activations scanned, padding
        included.
    """
    x = np.asarray(x, dtype=np.int64)
    centroids = np.asarray(centroids, dtype=np.int64)
    sums = np.zeros((layer.local_rows, len(layer.slots)), dtype=np.int64)
    macs = 0
    for s, part in enumerate(layer.slots):
        if bias is not None:
            sums[:len(part.rows), s] = np.asarray(bias, dtype=np.int64)[part.rows]
        column = np.repeat(np.arange(layer.in_features), part.counts)
        live = x[column] != 0
        terms = centroids[part.entry_index[live]] * x[column[live]]
        np.add.at(sums[:, s], part.entry_rows[live], terms)
        macs += int(live.sum())
    return wrap_acc(sums), {"macs": macs, "zero_skips": int((x == 0).sum())}
