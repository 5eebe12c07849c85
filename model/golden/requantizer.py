"""Golden twin of :class:`hw.requantizer.Requantizer`: accumulators back to int8 activations."""
from __future__ import annotations

import numpy as np

from model.contract.fixedpoint import requantize


def requantize_rows(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, relu: bool) -> np.ndarray:
    """``sat(round(acc * mult / 2**shift))`` per output row (``mult``, ``shift``: shape (out,)), ReLU optional."""
    return requantize(acc, mult[None, :], shift[None, :], relu).astype(np.int64)
