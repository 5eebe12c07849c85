"""Golden twin of :class:`hw.mac.MacLanes` (and of the PVQ unit's accumulator): a row's 32-bit sum."""
from __future__ import annotations

import numpy as np

from model.contract.fixedpoint import wrap_acc


def accumulate(bias: np.ndarray, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``wrap32(bias + W x)`` for every image (rows of ``x``) and output row.

    Parameters
    ----------
    bias : array of int64, shape (out,)
    x : array of int64, shape (n_images, in)
        int8 activations.
    weights : array of int64, shape (out, in)
        The decoded integer weights (codewords, scaled pyramid vectors, or sparse centroids).
    """
    return wrap_acc(bias[None, :] + x @ weights.T)
