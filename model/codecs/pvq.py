"""Pyramid vector quantization (PVQ) of weight sub-vectors.

PVQ (Fischer, "A pyramid vector quantizer", IEEE Trans. IT 1986; applied to
neural-network weights by Liguori, arXiv 1603.09037 and 1704.02681) codes a
sub-vector ``x`` of dimension ``N`` as ``g * y``: a real gain ``g`` and an
integer vector ``y`` on the pyramid

    P(N, K) = { y in Z^N : sum_i |y_i| = K }.

The codebook needs no storage: ``y`` is sent as its index in a fixed
enumeration of ``P(N, K)``, and the engine rebuilds ``y`` from the index with a
table of pyramid sizes ``V(n, k) = |P(n, k)|`` and comparisons/subtractions.
A product ``<y, a>`` with an activation vector then needs only additions
(``K`` of them, counted with multiplicity), which is the point of PVQ for
inference.

Pyramid sizes
=============
``V(N, K)`` has the closed form ``sum_{j=1}^{min(N,K)} 2^j C(N,j) C(K-1,j-1)``
(choose the ``j`` non-zero coordinates, their signs, and a composition of
``K`` into ``j`` positive parts) and obeys ``V(N, K) = V(N-1, K) + V(N, K-1) +
V(N-1, K-1)`` with ``V(N, 0) = 1`` and ``V(0, K>0) = 0``.  :func:`pvq_count`
and :func:`pvq_count_recurrence` compute it both ways, exactly.

Enumeration order
=================
Rank the values of one coordinate as

    0, +1, -1, +2, -2, +3, -3, ...      (rank(v) = 2|v| - [v > 0])

i.e. zero first, then increasing magnitude, **positive before negative**.
The index of ``y`` is its position when ``P(N, K)`` is sorted
lexicographically by ``(rank(y_0), rank(y_1), ..., rank(y_{N-1}))``.
Coordinate 0 is the most significant.

Equivalently, with ``n = N - i`` coordinates left (``i`` included) and ``k``
pulses left, the sub-pyramid ``P(n, k)`` is split by the value of ``y_i`` into
contiguous blocks, in this order:

==========  =====================  ======================================
``y_i``     block size             first index of the block (its offset)
==========  =====================  ======================================
0           ``V(n-1, k)``          0
+m (m>=1)   ``V(n-1, k-m)``        ``V(n,k) - V(n,k-m) - V(n-1,k-m)``
-m (m>=1)   ``V(n-1, k-m)``        ``V(n,k) - V(n,k-m)``
==========  =====================  ======================================

(the offsets telescope by the recurrence).  Encoding adds the offset of every
coordinate's block: ``index = sum_i offset_i`` (:func:`pvq_encode`).  On the
last coordinate (``n = 1``) only ``y = +k`` (index 0) and ``y = -k`` (index 1)
remain.

Hardware decode (one pulse per cycle)
=====================================
The RTL spends exactly one cycle per pulse, whatever ``N`` is: a zero
coordinate costs nothing, and a coordinate is resolved (its sign found) in
the cycle of its last pulse.  Registers: pulses left ``k`` (not yet given to a
resolved coordinate), magnitude ``m`` (the magnitude the open coordinate is
tested for next; 0 when no coordinate is open), the open coordinate's row
``N-1-i`` and the index remainder ``r`` (``pvq_bits(N, K)`` bits).

0. Reject ``index >= V(N, K)`` (one comparison); otherwise the walk would run
   past ``m = k``.  Set ``k = K``, ``m = 0``, ``r = index``.
1. While ``k > 0``, one cycle, one pulse:

   * **Find the coordinate** (``m == 0``).  With ``k`` pulses left, ``y_i = 0``
     exactly when ``r < V(N-1-i, k)`` (its zero block), and then ``r`` and
     ``k`` are unchanged for coordinate ``i + 1``.  ``V(n, k)`` grows with
     ``n``, so the pulse is on the first coordinate ``i`` with
     ``V(N-1-i, k) <= r``: its row ``N-1-i`` is the number of rows
     ``1 .. N-1`` whose ``V(row, k)`` is ``<= r`` (a thermometer of ``N-1``
     comparisons in parallel; ``V(0, k >= 1) = 0``, so the last coordinate is
     the fallback).  Skip its zero block: ``z = V(N-1-i, k)``, and test
     magnitude ``t = 1``.
   * **Continue the coordinate** (``m >= 2``): ``z = 0``, test ``t = m``.
   * Test with ``b = V(N-1-i, k-t)`` (the size of the ``+t`` and of the ``-t``
     block), as three thresholds ``lo = z``, ``mid = z + b``, ``hi = z + 2b``:

       - ``r < mid``: ``y_i = +t``, ``r -= lo``, ``k -= t``, ``m = 0``;
       - ``r < hi``: ``y_i = -t``, ``r -= mid``, ``k -= t``, ``m = 0``;
       - else: ``r -= hi``, ``m = t + 1``: one more pulse on coordinate ``i``
         next cycle.

The thresholds come from one table (:func:`pvq_walk_thresholds`) whose word
holds ``(lo, mid, hi)`` for every row: addressed by ``k`` when finding a
coordinate (``z = V(row, k)``, ``b = V(row, k-1)``) and by ``k - t`` when
continuing one (``z = 0``, ``b = V(row, k-t)``), so every cycle is one table
read, a row select and three comparisons.  The last coordinate needs no
special case: ``V(0, k-t) = 0`` until ``t = k``, where ``b = V(0, 0) = 1``
gives ``+k`` for ``r = 0`` and ``-k`` for ``r = 1``.  A vector takes exactly
``K`` cycles; coordinates never reached are 0, and ``r`` is 0 at the end.
:func:`pvq_decode_steps` produces exactly this cycle sequence (with the
register values of every cycle), as the RTL's golden twin.

Projection
==========
:func:`pvq_project` maps a real ``x`` to the pyramid: scale ``|x|`` to L1 norm
``K``, take floors, place the remaining pulses one at a time where they most
increase the cosine ``<|x|, y> / ||y||`` between ``|x|`` and ``y``, then move
single pulses between coordinates while any move increases the cosine; ``y``
takes the signs of ``x``.  With the least-squares gain
``g = <x, y> / <y, y>`` the error is ``||x - g y||^2 = ||x||^2 (1 - cos^2)``,
so raising the cosine is exactly lowering the error after gain fitting.
"""
from __future__ import annotations

from functools import lru_cache
from operator import index as as_int
from typing import NamedTuple

import numpy as np

# pvq_bits and pvq_count are the pyramid sizes of the contract; the codec re-exports them with the enumeration.
from model.contract.pyramid import PVQError, _check_nk, pvq_bits, pvq_count  # noqa: F401

#: The vectorised codec keeps indices, table entries and sums of two table
#: entries in uint64; ``V(N, K) < 2**63`` guarantees none of them overflows.
UINT64_INDEX_LIMIT = 1 << 63
#: Tables of exact pyramid sizes kept by :func:`pvq_table` and the exact codec.
TABLE_CACHE = 64


class DecodeStep(NamedTuple):
    """One cycle (one pulse) of the hardware decoder (see the module docstring).

    ``pulses`` and ``index`` are the registers ``k`` and ``r`` at the start of
    the cycle; ``coordinate`` is the coordinate this cycle's pulse is on (found
    in this cycle when it opens the coordinate), ``magnitude`` the magnitude
    ``t`` tested, ``block`` the table entry ``b = V(N-1-coordinate,
    pulses-magnitude)``, and ``value`` is ``y[coordinate]`` (``+-magnitude``) if
    the coordinate is resolved in this cycle, else ``None``.
    """
    coordinate: int
    magnitude: int
    pulses: int
    index: int
    block: int
    value: int | None


# ---------------------------------------------------------------------------
# Pyramid sizes


@lru_cache(maxsize=TABLE_CACHE)
def _v_rows(N_max: int, K_max: int) -> tuple[tuple[int, ...], ...]:
    """``V(n, k)`` for ``n <= N_max``, ``k <= K_max`` by the recurrence, as Python ints."""
    rows = [(1,) + (0,) * K_max]  # V(0, 0) = 1, V(0, k > 0) = 0
    for _ in range(N_max):
        prev = rows[-1]
        row = [1]  # V(n, 0) = 1
        for k in range(1, K_max + 1):
            row.append(prev[k] + row[k - 1] + prev[k - 1])
        rows.append(tuple(row))
    return tuple(rows)


def pvq_count_recurrence(N: int, K: int) -> int:
    """``V(N, K)`` by ``V(N,K) = V(N-1,K) + V(N,K-1) + V(N-1,K-1)``.

    The boundary is ``V(N, 0) = 1`` and ``V(0, K > 0) = 0``.  Must agree with
    :func:`pvq_count`; kept separate because the hardware table is built this way.

    Parameters
    ----------
    N : int
        Dimension, ``>= 0``.
    K : int
        Pulses, ``>= 0``.
    """
    N, K = _check_nk(N, K)
    return _v_rows(N, K)[N][K]


@lru_cache(maxsize=TABLE_CACHE)
def _table_cached(N_max: int, K_max: int) -> np.ndarray:
    rows = _v_rows(N_max, K_max)
    # V grows with both n and k, so the corner entry is the largest.
    dtype = np.uint64 if rows[N_max][K_max] < (1 << 64) else object
    table = np.array(rows, dtype=dtype).reshape(N_max + 1, K_max + 1)
    table.setflags(write=False)  # shared by every caller through the cache
    return table


def pvq_table(N_max: int, K_max: int) -> np.ndarray:
    """Table of ``V(n, k)`` for ``0 <= n <= N_max``, ``0 <= k <= K_max``.

    Parameters
    ----------
    N_max, K_max : int
        Largest dimension and pulse count, ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape (N_max + 1, K_max + 1)
        ``uint64`` when ``V(N_max, K_max) < 2**64`` (the largest entry), else an
        object array of Python ints.  Cached and read-only.
    """
    N_max, K_max = _check_nk(N_max, K_max)
    return _table_cached(N_max, K_max)


# ---------------------------------------------------------------------------
# Exact enumeration (Python ints, any size)


def _check_index(index, N: int, K: int, v: int) -> int:
    try:
        index = as_int(index)
    except TypeError:
        raise PVQError(f"a PVQ index must be an integer, got {index!r}") from None
    if not 0 <= index < v:
        raise PVQError(f"PVQ index {index} out of range for N={N}, K={K}: valid indices are 0 .. {v - 1}")
    return index


def _as_pyramid_vector(y) -> tuple[list[int], int]:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise PVQError(f"a PVQ vector must be 1-D, got shape {arr.shape}")
    if arr.dtype == object:
        vals = [as_int(v) for v in arr]
    elif arr.dtype.kind in "iub":
        vals = [int(v) for v in arr]
    else:
        raise PVQError(f"a PVQ vector must hold integers, got dtype {arr.dtype}")
    return vals, sum(abs(v) for v in vals)


def pvq_encode(y) -> int:
    """Index of the integer vector ``y`` in the enumeration of ``P(len(y), sum|y|)``.

    ``index = sum_i offset_i`` where, with ``n = N - i`` and ``k`` pulses left
    before coordinate ``i`` and ``m = |y_i|``, ``offset_i`` is 0 for ``y_i = 0``,
    ``V(n,k) - V(n,k-m) - V(n-1,k-m)`` for ``y_i = +m`` and
    ``V(n,k) - V(n,k-m)`` for ``y_i = -m`` (module docstring).

    Parameters
    ----------
    y : array_like of int, shape (N,)
        ``N >= 1``; ``K`` is ``sum |y_i|``.

    Returns
    -------
    int
        Exact, ``0 <= index < V(N, K)``.
    """
    vals, K = _as_pyramid_vector(y)
    N = len(vals)
    if N == 0:
        raise PVQError("a PVQ vector needs at least one coordinate")
    V = _v_rows(N, K)
    index, k = 0, K
    for i, v in enumerate(vals):
        n, m = N - i, abs(v)
        if m:
            index += V[n][k] - V[n][k - m] - (V[n - 1][k - m] if v > 0 else 0)
            k -= m
    return index


@lru_cache(maxsize=TABLE_CACHE)
def pvq_walk_thresholds(N: int, K_max: int) -> tuple:
    """The decoder's threshold table: ``[find][column][row] = (lo, mid, hi)``.

    ``find = 1`` opens a coordinate with ``k = column`` pulses left:
    ``lo = V(row, k)`` (its zero block), ``mid = lo + V(row, k-1)``,
    ``hi = lo + 2 V(row, k-1)``; ``column = 0`` is never read and holds zeros.
    ``find = 0`` continues a coordinate at ``column = k - t``: ``lo = 0``,
    ``mid = V(row, k-t)``, ``hi = 2 V(row, k-t)`` (module docstring, *Hardware
    decode*).  Every entry is at most ``V(N, K_max)``, since
    ``V(n, k) + 2 V(n, k-1) <= V(n+1, k)``.

    Parameters
    ----------
    N : int
        Dimension (rows ``0 .. N-1``), ``>= 1``.
    K_max : int
        Largest ``K``, ``>= 0`` (columns ``0 .. K_max``).

    Returns
    -------
    tuple
        Nested tuples of Python ints, shape ``(2, K_max + 1, N, 3)``.  Cached.
    """
    N, K_max = _check_nk(N, K_max)
    if N == 0:
        raise PVQError("PVQ vectors need N >= 1")
    V = _v_rows(N, K_max)
    cont = tuple(tuple((0, V[row][c], 2 * V[row][c]) for row in range(N)) for c in range(K_max + 1))
    find = tuple(tuple((V[row][k], V[row][k] + V[row][k - 1], V[row][k] + 2 * V[row][k - 1]) if k else (0, 0, 0)
                       for row in range(N)) for k in range(K_max + 1))
    return cont, find


def _walk(index: int, N: int, K: int):
    """Run the hardware decoder of the module docstring, yielding a :class:`DecodeStep` per cycle."""
    T = pvq_walk_thresholds(N, K)
    k, m, r, row = K, 0, index, 0
    while k > 0:
        if m == 0:   # open a coordinate: the thermometer over rows 1 .. N-1
            thresholds, t = T[1][k], 1
            row = sum(1 for rw in range(1, N) if thresholds[rw][0] <= r)
        else:
            thresholds, t = T[0][k - m], m
        lo, mid, hi = thresholds[row]
        value = None if r >= hi else -t if r >= mid else t
        yield DecodeStep(N - 1 - row, t, k, r, mid - lo, value)
        if value is None:
            r, m = r - hi, t + 1
        else:
            r, k, m = r - (mid if value < 0 else lo), k - t, 0
    # Only reached for a valid index: every block was exhausted exactly.
    assert r == 0, r


def pvq_decode_steps(index: int, N: int, K: int) -> list[DecodeStep]:
    """The per-cycle trace of the hardware decoder for ``index`` (golden twin of the RTL).

    Parameters
    ----------
    index : int
        ``0 <= index < V(N, K)``, else :class:`PVQError`.
    N : int
        Dimension, ``>= 1``.
    K : int
        Pulses, ``>= 0``.

    Returns
    -------
    list of DecodeStep
        One entry per cycle and pulse, ``K`` of them; the cycles whose
        ``value`` is not ``None`` give ``(coordinate, value)`` for every
        non-zero coordinate in order (the others are 0).
    """
    N, K = _check_nk(N, K)
    if N == 0:
        raise PVQError("PVQ vectors need N >= 1")
    index = _check_index(index, N, K, pvq_count(N, K))
    return list(_walk(index, N, K))


def pvq_decode(index: int, N: int, K: int) -> np.ndarray:
    """The vector ``y`` of ``P(N, K)`` with enumeration index ``index``.

    Runs the hardware walk of the module docstring.

    Parameters
    ----------
    index : int
        ``0 <= index < V(N, K)``, else :class:`PVQError`.
    N : int
        Dimension, ``>= 1``.
    K : int
        Pulses, ``>= 0``.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
    """
    y = np.zeros(as_int(N), dtype=np.int64)
    for step in pvq_decode_steps(index, N, K):
        if step.value is not None:
            y[step.coordinate] = step.value
    return y


# ---------------------------------------------------------------------------
# Vectorised enumeration (uint64)


def _uint64_table(N: int, K: int) -> np.ndarray:
    N, K = _check_nk(N, K)
    if N == 0:
        raise PVQError("PVQ vectors need N >= 1")
    v = pvq_count(N, K)
    if v >= UINT64_INDEX_LIMIT:
        raise PVQError(f"V({N}, {K}) = {v} is not below 2**63, as the vectorised PVQ codec needs; "
                       f"use pvq_encode/pvq_decode (exact Python ints)")
    return pvq_table(N, K)


def pvq_encode_many(Y, K: int | None = None) -> np.ndarray:
    """Indices of many vectors of one pyramid ``P(N, K)``, in uint64.

    Same enumeration as :func:`pvq_encode`.

    Parameters
    ----------
    Y : array_like of int, shape (n, N)
        Every row must have ``sum |y_i| = K``.
    K : int, optional
        Pulses; by default taken from the first row.

    Returns
    -------
    numpy.ndarray of uint64, shape (n,)

    Raises
    ------
    PVQError
        A row with a different L1 norm, or ``V(N, K) >= 2**63``.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[1] == 0:
        raise PVQError(f"pvq_encode_many needs an (n, N) array with N >= 1, got shape {Y.shape}")
    if Y.dtype.kind not in "iu":
        raise PVQError(f"PVQ vectors must hold integers, got dtype {Y.dtype}")
    n_rows, N = Y.shape
    mag = np.abs(Y.astype(np.int64))
    norms = mag.sum(axis=1)
    if K is None:
        K = int(norms[0]) if n_rows else 0
    bad = np.flatnonzero(norms != K)
    if bad.size:
        raise PVQError(f"row {bad[0]} of Y has sum|y| = {norms[bad[0]]}, expected K = {K}")
    T = _uint64_table(N, K)
    index = np.zeros(n_rows, dtype=np.uint64)
    k = np.full(n_rows, K, dtype=np.int64)
    for i in range(N):
        n, m = N - i, mag[:, i]
        km = k - m
        offset = T[n, k] - T[n, km] - np.where(Y[:, i] > 0, T[n - 1, km], np.uint64(0))
        index += np.where(m > 0, offset, np.uint64(0))
        k = km
    return index


def _as_uint64_indices(indices, N: int, K: int, v: int) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise PVQError(f"PVQ indices must be 1-D, got shape {arr.shape}")
    if arr.size == 0:  # np.asarray([]) is float64; an empty batch is still valid
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype == object:
        return np.array([_check_index(x, N, K, v) for x in arr], dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise PVQError(f"PVQ indices must be integers, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        for x in (lo, hi):
            _check_index(x, N, K, v)
    return arr.astype(np.uint64)


def pvq_decode_many(indices, N: int, K: int) -> np.ndarray:
    """Vectors of ``P(N, K)`` for many indices at once.

    Same enumeration as :func:`pvq_decode`.  Per coordinate, the magnitude is
    the number of ``m`` in ``1 .. k`` whose block starts at or below the
    remainder ``r`` (block starts grow with ``m``); the start test
    ``V(n,k) - V(n,k-m) - V(n-1,k-m) <= r`` is evaluated as
    ``V(n,k) - r <= V(n,k-m) + V(n-1,k-m)`` so no uint64 subtraction can wrap.

    Parameters
    ----------
    indices : array_like of int, shape (n,)
        Each ``0 <= index < V(N, K)``, else :class:`PVQError`.
    N : int
        Dimension, ``>= 1``.
    K : int
        Pulses, ``>= 0``; ``V(N, K) < 2**63`` is required.

    Returns
    -------
    numpy.ndarray of int64, shape (n, N)
    """
    N, K = _check_nk(N, K)
    T = _uint64_table(N, K)
    r = _as_uint64_indices(indices, N, K, pvq_count(N, K))
    n_rows = r.shape[0]
    Y = np.zeros((n_rows, N), dtype=np.int64)
    k = np.full(n_rows, K, dtype=np.int64)
    for i in range(N):
        n = N - i
        q = T[n, k] - r  # >= 1: the remainder lies inside P(n, k)
        mag = np.zeros(n_rows, dtype=np.int64)
        for m in range(1, int(k.max(initial=0)) + 1):
            km = np.maximum(k - m, 0)
            mag += (m <= k) & (q <= T[n, km] + T[n - 1, km])
        km = k - mag
        tail = T[n - 1, km]  # size of the +m and of the -m block
        off = T[n, km] + tail - q  # r minus the start of the +m block (valid where mag > 0)
        neg = (mag > 0) & (off >= tail)
        Y[:, i] = np.where(neg, -mag, mag)
        r = np.where(mag > 0, np.where(neg, off - tail, off), r)
        k = km
    return Y


# ---------------------------------------------------------------------------
# Projection and quantization


