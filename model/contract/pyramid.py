"""Pyramid sizes: how wide a PVQ layer's enumeration indices are.

``V(N, K)`` counts the integer vectors of dimension ``N`` with ``K`` pulses;
a PVQ row-stream entry holds an index below it in ``pvq_bits(N, K)`` bits.
The enumeration itself is a codec (:mod:`model.codecs.pvq`).
"""
from __future__ import annotations

import math
from operator import index as as_int

from model.contract.fixedpoint import ACT_MIN
from model.contract.layout import PVQ_SCALE_BITS

#: Widest sub-vector a PVQ unit is built for (the engine's largest lane count).
PVQ_MAX_LANES = 16


class PVQError(ValueError):
    """An index or vector outside the pyramid, or sizes the codec cannot handle."""


def _check_nk(N, K) -> tuple[int, int]:
    N, K = as_int(N), as_int(K)
    if N < 0 or K < 0:
        raise PVQError(f"PVQ needs N >= 0 and K >= 0, got N={N}, K={K}")
    return N, K


def pvq_count(N: int, K: int) -> int:
    """``V(N, K)``, the number of integer ``y`` of dimension ``N`` with ``sum |y_i| = K``.

    Closed form ``sum_{j=1}^{min(N,K)} 2^j C(N,j) C(K-1,j-1)`` (``j`` non-zero
    coordinates, their signs, a composition of ``K`` into ``j`` positive
    parts), and ``V(N, 0) = 1``.

    Parameters
    ----------
    N : int
        Dimension, ``>= 0``.
    K : int
        Pulses (L1 norm), ``>= 0``.

    Returns
    -------
    int
        Exact Python integer.
    """
    N, K = _check_nk(N, K)
    if K == 0:
        return 1
    return sum((1 << j) * math.comb(N, j) * math.comb(K - 1, j - 1) for j in range(1, min(N, K) + 1))


def pvq_bits(N: int, K: int) -> int:
    """Bits of a PVQ index: ``ceil(log2 V(N, K))`` (0 when ``V = 1``).

    Parameters
    ----------
    N : int
        Dimension, ``>= 1`` (``P(0, K>0)`` is empty).
    K : int
        Pulses, ``>= 0``.
    """
    v = pvq_count(N, K)
    if v == 0:
        raise PVQError(f"the pyramid P({N}, {K}) is empty: no vector of dimension 0 has {K} pulses")
    return (v - 1).bit_length()


def pvq_sum_bits(k_max: int) -> int:
    """Signed width of the PVQ unit's partial sums for up to ``k_max`` pulses: ``|<y, x>| <= 128 * K``."""
    return (-ACT_MIN * max(k_max, 1)).bit_length() + 1


def pvq_entry_bits(lanes: int, k: int) -> int:
    """Width of a PVQ row-stream entry: the sub-vector's enumeration index, then its scale."""
    return pvq_bits(lanes, k) + PVQ_SCALE_BITS
