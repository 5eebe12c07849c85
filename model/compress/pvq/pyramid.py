"""Pyramid vector quantization of weights: projection onto the pyramid, gains, K for a bit budget.

The enumeration that turns a pyramid vector into an index is the codec
(:mod:`model.codecs.pvq`); this module finds the vectors.
"""
from __future__ import annotations

import math
from operator import index as as_int

import numpy as np

from model.codecs.pvq import PVQError, pvq_bits
from model.contract.ints import ceil_div

#: Rows projected at a time: bounds the (rows, N, N) pulse-move scores of the
#: refinement to ``PROJECT_CHUNK * N * N`` float64s.
PROJECT_CHUNK = 4096


#: A pulse move must raise the squared cosine by this relative amount to be
#: taken, so float noise between equal-cosine vectors cannot make it cycle.
MOVE_REL_TOL = 1e-12


#: Slack when turning ``N * bits_per_weight`` into a whole bit budget, so that
#: e.g. ``10 * 0.3 = 2.9999999999999996`` still allows 3 bits.
BUDGET_EPS = 1e-9


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
    :func:`model.compress.kmeans.network.split_subvectors`.  When ``in % N != 0`` the last
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
