"""PVQ bit budgets: the bits a PVQ layer stores, and the pulse count K that fits a budget."""
from __future__ import annotations

import math

from model.contract.fixedpoint import ACC_BITS
from model.contract.ints import ceil_div
from model.contract.layout import PVQ_SCALE_BITS, WORD_BITS, row_words
from model.contract.pyramid import pvq_entry_bits

#: Width of a sub-vector's unsigned integer scale (the engine's ``PVQ_SCALE_BITS``).
SCALE_BITS = PVQ_SCALE_BITS


SCALE_MAX = (1 << SCALE_BITS) - 1


#: Per-row words of the row stream: int32 bias and the requantization word.
BIAS_BITS = ACC_BITS


REQUANT_BITS = WORD_BITS


ROW_OVERHEAD_BITS = BIAS_BITS + REQUANT_BITS


#: Default budget, all-in bits per weight.
DEFAULT_BITS_PER_WEIGHT = 4.0


#: Slack so that e.g. a budget of exactly 4.0 admits a layer costing 4.0 bits per weight.
BUDGET_EPS = 1e-9


class PVQBudgetError(ValueError):
    """A bit budget no K can meet, or a malformed request."""


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
