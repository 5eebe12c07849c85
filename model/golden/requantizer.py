"""Golden twin of :class:`hw.requantizer.Requantizer`: accumulators back to int8 activations."""
from __future__ import annotations

import numpy as np

from model.contract.fixedpoint import requantize


def requantize_rows(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, relu: bool,
                    act: np.ndarray | None = None, floor: bool = False) -> np.ndarray:
    """``sat(round(acc * mult / 2**shift))`` per output row (``mult``, ``shift``, ``act``: shape (out,)), then
    the activation (:func:`model.contract.fixedpoint.requantize`)."""
    act = np.zeros_like(mult) if act is None else act
    return requantize(acc, mult[None, :], shift[None, :], relu, act[None, :], floor).astype(np.int64)
