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
The RTL walks the blocks above, trying one magnitude per cycle.  It needs the
table ``V(n, k)`` for ``n = 0 .. N-1`` and ``k = 0 .. K`` (``N * (K+1)``
entries of ``pvq_bits(N, K)`` bits: each is below ``V(N, K)``).  The
remainder ``r`` is ``pvq_bits(N, K)`` bits; the ``r < 2b`` test needs one more
bit (``2b`` can reach ``V(N, K)``), or can be done as ``r - b < b``.  Registers: coordinate
``i``, pulses left ``k``, magnitude under test ``m``, index remainder ``r``.

0. Reject ``index >= V(N, K)`` (one comparison); otherwise the walk would run
   past ``m = k``.  Set ``i = 0``, ``k = K``, ``r = index``, and
   ``m = K`` if ``N == 1`` else ``0``.
1. Every cycle read ``b = V(N-1-i, k-m)`` from the table, then

   * if ``m == 0``:
       - ``r < b``: emit ``y_i = 0``, go to step 2;
       - else: ``r -= b``, ``m = 1`` (stay on coordinate ``i``).
   * if ``m >= 1``:
       - ``r < b``: emit ``y_i = +m``, ``k -= m``, go to step 2;
       - ``r < 2b``: ``r -= b``, emit ``y_i = -m``, ``k -= m``, go to step 2;
       - else: ``r -= 2b``, ``m += 1`` (stay on coordinate ``i``).
2. Next coordinate, in the same cycle as the emit: ``i += 1``; stop after
   ``i == N``.  Set ``m = k`` if ``i == N-1`` (the last coordinate must take
   every remaining pulse, so its test starts at the only feasible magnitude and
   reads ``b = V(0, 0) = 1``: ``r`` is then 0 for ``+k``, 1 for ``-k``), else
   ``m = 0``.

Coordinate ``i < N-1`` takes ``|y_i| + 1`` cycles and the last one cycle, so a
vector takes ``N + K - |y_{N-1}|`` cycles (at most ``N + K``).  Once ``k`` is 0
every table read is ``V(., 0) = 1`` with ``r = 0``, so the remaining zeros come
out one per cycle with no special case; ``r`` is 0 after the last emit.
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

import math
from functools import lru_cache
from operator import index as as_int
from typing import NamedTuple

import numpy as np

from model.layout import ceil_div

#: The vectorised codec keeps indices, table entries and sums of two table
#: entries in uint64; ``V(N, K) < 2**63`` guarantees none of them overflows.
UINT64_INDEX_LIMIT = 1 << 63
#: Rows projected at a time: bounds the (rows, N, N) pulse-move scores of the
#: refinement to ``PROJECT_CHUNK * N * N`` float64s.
PROJECT_CHUNK = 4096
#: A pulse move must raise the squared cosine by this relative amount to be
#: taken, so float noise between equal-cosine vectors cannot make it cycle.
MOVE_REL_TOL = 1e-12
#: Slack when turning ``N * bits_per_weight`` into a whole bit budget, so that
#: e.g. ``10 * 0.3 = 2.9999999999999996`` still allows 3 bits.
BUDGET_EPS = 1e-9
#: Tables of exact pyramid sizes kept by :func:`pvq_table` and the exact codec.
TABLE_CACHE = 64


class PVQError(ValueError):
    """An index or vector outside the pyramid, or sizes the codec cannot handle."""


class DecodeStep(NamedTuple):
    """One cycle of the hardware decoder (see the module docstring).

    ``index``, ``pulses`` and ``magnitude`` are the registers ``r``, ``k`` and
    ``m`` at the start of the cycle; ``block`` is the table entry read,
    ``V(N-1-coordinate, pulses-magnitude)``; ``value`` is ``y[coordinate]``
    if the coordinate is resolved in this cycle, else ``None``.
    """
    coordinate: int
    magnitude: int
    pulses: int
    index: int
    block: int
    value: int | None


# ---------------------------------------------------------------------------
# Pyramid sizes


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


def choose_k(N: int, bits_per_weight: float) -> int:
    """Largest ``K`` with ``pvq_bits(N, K) <= N * bits_per_weight``.

    Only the index is counted; the caller pays for the gain separately.

    Parameters
    ----------
    N : int
        Dimension, ``>= 2``.  (For ``N = 1`` every ``K >= 1`` costs one bit,
        the sign, so there is no largest ``K``.)
    bits_per_weight : float
        Index bits allowed per coordinate, ``>= 0``.
    """
    N = as_int(N)
    if N < 2:
        raise PVQError(f"choose_k needs N >= 2 (for N = 1 every K >= 1 costs one bit), got N={N}")
    if not (bits_per_weight >= 0 and math.isfinite(bits_per_weight)):
        raise PVQError(f"bits_per_weight must be finite and >= 0, got {bits_per_weight}")
    budget = math.floor(N * bits_per_weight + BUDGET_EPS)
    # V(N, K) grows strictly with K for N >= 2, so the bits are monotone: bracket, then bisect.
    lo, hi = 0, 1  # pvq_bits(N, lo) <= budget always holds (V(N, 0) = 1)
    while pvq_bits(N, hi) <= budget:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pvq_bits(N, mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


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


def _walk(index: int, N: int, K: int):
    """Run the hardware decoder of the module docstring, yielding a :class:`DecodeStep` per cycle."""
    V = _v_rows(N, K)
    i, k, r = 0, K, index
    m = K if N == 1 else 0
    while i < N:
        b = V[N - 1 - i][k - m]
        value = None
        if m == 0:
            if r < b:
                value = 0
            else:
                r_next, m_next = r - b, 1
        elif r < b:
            value = m
        elif r < 2 * b:
            r_next, value = r - b, -m
        else:
            r_next, m_next = r - 2 * b, m + 1
        yield DecodeStep(i, m, k, r, b, value)
        if value is None:
            r, m = r_next, m_next
        else:
            if value < 0:
                r = r_next
            k -= m
            i += 1
            m = k if i == N - 1 else 0
    # Only reached for a valid index: every block was exhausted exactly.
    assert r == 0 and k == 0, (r, k)


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
        One entry per cycle, ``N + K - |y_{N-1}|`` of them; the cycles whose
        ``value`` is not ``None`` give ``(coordinate, value)`` for every
        coordinate in order.
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


def _project_rows(a: np.ndarray, K: int) -> np.ndarray:
    """Pulse magnitudes (rows, N) for non-negative rows ``a``, each summing to ``K``."""
    rows, N = a.shape
    y = np.zeros((rows, N), dtype=np.int64)
    if K == 0 or rows == 0:
        return y
    peak = a.max(axis=1)
    zero = peak == 0
    # Divide by the peak first so the L1 sum cannot overflow for huge inputs.
    a = a / np.where(zero, 1.0, peak)[:, None]
    s = a.sum(axis=1)
    y[:] = np.floor(a * (K / np.where(zero, 1.0, s))[:, None])
    # A zero vector has no direction: all pulses go to coordinate 0 (its gain is 0).
    y[zero] = 0
    y[zero, 0] = K
    remaining = K - y.sum(axis=1)
    # The scaled magnitudes sum to K, so their floors sum to at most K; rounding
    # can move a floor only for values within an ulp of an integer, never past it.
    assert (remaining >= 0).all()
    c = (a * y).sum(axis=1)  # <|x|, y> (up to the peak scale)
    e = (y * y).sum(axis=1)  # <y, y>

    # Greedy: each remaining pulse goes where it most raises cos = c / sqrt(e).
    for _ in range(int(remaining.max(initial=0))):
        act = np.flatnonzero(remaining > 0)
        ya, aa = y[act], a[act]
        score = (c[act, None] + aa) ** 2 / (e[act, None] + 2 * ya + 1)
        j = score.argmax(axis=1)
        y[act, j] += 1
        c[act] += aa[np.arange(act.size), j]
        e[act] += 2 * ya[np.arange(act.size), j] + 1
        remaining[act] -= 1

    # Refinement: move one pulse from coordinate p (y_p >= 1) to q != p while
    # that raises cos^2 = c^2 / e.  Greedy alone can strand pulses placed by the
    # floors; on random Gaussian inputs the moves make the result optimal in
    # every tested N = 3 case and nearly all N <= 5 ones.  Each move raises the
    # objective, over a finite set, so the loop ends; only rows that moved last
    # pass are re-examined.
    act = np.arange(rows)
    while act.size:
        ya, aa, ca, ea = y[act], a[act], c[act], e[act]
        c_new = ca[:, None, None] - aa[:, :, None] + aa[:, None, :]  # [row, p, q]
        e_new = ea[:, None, None] + 2 * (ya[:, None, :] - ya[:, :, None]) + 2
        score = c_new ** 2 / e_new
        idx = np.arange(N)
        score[:, idx, idx] = -np.inf  # p == q is not a move
        score[ya == 0] = -np.inf      # no pulse to take from p
        flat = score.reshape(act.size, N * N).argmax(axis=1)
        best = score.reshape(act.size, N * N)[np.arange(act.size), flat]
        better = best > (ca ** 2 / ea) * (1 + MOVE_REL_TOL)
        act, p, q = act[better], flat[better] // N, flat[better] % N
        y[act, p] -= 1
        y[act, q] += 1
        c[act] = c_new[better, p, q]
        e[act] = e_new[better, p, q]
    return y


def pvq_project(x, K: int) -> np.ndarray:
    """Project real vectors onto the pyramid ``P(N, K)``.

    Per vector: scale ``|x|`` to L1 norm ``K``; floor; add the remaining pulses
    one at a time where they most increase the cosine ``<|x|, y> / ||y||``
    (equivalently, most decrease ``||x - g y||`` with the least-squares ``g``);
    then move single pulses between coordinates while a move increases that
    cosine, so the result is a local optimum under one-pulse moves.  ``y``
    takes the sign of ``x`` (``+`` where ``x`` is 0).  A zero ``x`` maps to
    ``(K, 0, ..., 0)``.

    Parameters
    ----------
    x : array_like of float, shape (..., N)
        Finite; the last axis is the sub-vector.
    K : int
        Pulses, ``>= 0``.

    Returns
    -------
    numpy.ndarray of int64, shape (..., N)
        Every vector has ``sum |y_i| = K``.
    """
    K = as_int(K)
    x = np.asarray(x, dtype=np.float64)
    if K < 0:
        raise PVQError(f"K must be >= 0, got {K}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise PVQError(f"pvq_project needs vectors along the last axis, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise PVQError("pvq_project needs finite inputs")
    flat = x.reshape(-1, x.shape[-1])
    y = np.empty(flat.shape, dtype=np.int64)
    for i in range(0, flat.shape[0], PROJECT_CHUNK):
        chunk = flat[i:i + PROJECT_CHUNK]
        y[i:i + PROJECT_CHUNK] = _project_rows(np.abs(chunk), K) * np.where(chunk < 0, -1, 1)
    return y.reshape(x.shape)


def pvq_gain(x, y):
    """Least-squares gain ``<x, y> / <y, y>`` along the last axis (0 where ``y = 0``).

    Parameters
    ----------
    x : array_like of float, shape (..., N)
    y : array_like of int, shape (..., N)

    Returns
    -------
    numpy.ndarray of float64, shape (...)
        Non-negative when ``y`` comes from :func:`pvq_project` (same signs as ``x``).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    num = (x * y).sum(axis=-1)
    den = (y * y).sum(axis=-1)
    return num / np.where(den == 0, 1.0, den)


def pvq_quantize(x, K: int):
    """Quantize real vectors to ``g * y``: :func:`pvq_project` plus the least-squares gain.

    Parameters
    ----------
    x : array_like of float, shape (..., N)
    K : int
        Pulses, ``>= 0``.

    Returns
    -------
    y : numpy.ndarray of int64, shape (..., N)
    g : numpy.float64 or numpy.ndarray of float64, shape (...)
        ``<x, y> / <y, y>``; 0 for a zero ``x`` (whose ``y`` is ``(K, 0, ..., 0)``).
    """
    x = np.asarray(x, dtype=np.float64)
    y = pvq_project(x, K)
    return y, pvq_gain(x, y)[()]


def pvq_quantize_matrix(W, N: int, K: int):
    """PVQ-quantize a weight matrix row-wise in sub-vectors of ``N`` weights.

    Sub-vector ``j`` of row ``r`` is ``W[r, j*N:(j+1)*N]``, the same layout as
    :func:`model.vq.split_subvectors`.  When ``in % N != 0`` the last
    sub-vector of each row is zero-padded; the pulse search treats pad
    coordinates like zero weights (they add nothing to ``<x, y>``, so a pulse
    lands there only when every alternative lowers the cosine more), and a
    pulse there is harmless: pad coordinates meet zero activations in hardware
    and :func:`reconstruct` drops them.  An all-zero sub-vector
    becomes ``y = (K, 0, ..., 0)`` with scale 0.

    Parameters
    ----------
    W : array_like of float, shape (out, in)
    N : int
        Sub-vector dimension, ``>= 1``.
    K : int
        Pulses per sub-vector, ``>= 0``.

    Returns
    -------
    Y : numpy.ndarray of int64, shape (out, ceil(in / N), N)
    scales : numpy.ndarray of float64, shape (out, ceil(in / N))
    """
    W = np.asarray(W, dtype=np.float64)
    N = as_int(N)
    if W.ndim != 2:
        raise PVQError(f"pvq_quantize_matrix needs a 2-D weight matrix, got shape {W.shape}")
    if N < 1:
        raise PVQError(f"sub-vector dimension must be >= 1, got {N}")
    out_f, in_f = W.shape
    s = ceil_div(in_f, N)
    padded = np.zeros((out_f, s * N))
    padded[:, :in_f] = W
    Y, g = pvq_quantize(padded.reshape(out_f, s, N), K)
    return Y, np.asarray(g, dtype=np.float64)


def reconstruct(Y, scales, in_features: int | None = None) -> np.ndarray:
    """Rebuild the weight matrix ``scales * Y`` from :func:`pvq_quantize_matrix` output.

    Parameters
    ----------
    Y : array_like of int, shape (out, S, N)
    scales : array_like of float, shape (out, S)
    in_features : int, optional
        Columns to keep (drops the padding); default ``S * N``.

    Returns
    -------
    numpy.ndarray of float64, shape (out, in_features)
    """
    Y = np.asarray(Y)
    scales = np.asarray(scales, dtype=np.float64)
    if Y.ndim != 3 or scales.shape != Y.shape[:2]:
        raise PVQError(f"reconstruct needs Y (out, S, N) and scales (out, S), got {Y.shape} and {scales.shape}")
    out_f, s, N = Y.shape
    if in_features is None:
        in_features = s * N
    fits = in_features == 0 if s == 0 else s * N - N < in_features <= s * N
    if not fits:
        raise PVQError(f"in_features={in_features} does not fit {s} sub-vectors of {N}")
    return (Y * scales[..., None]).reshape(out_f, s * N)[:, :in_features]
