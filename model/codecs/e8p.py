"""The E8P lattice codebook: 2**16 eight-dimensional codewords decoded from a 256-entry table.

In the spirit of QuIP#'s E8P (Tseng et al. 2024), written for this engine.  The
codewords are points of the shifted E8 lattice ``E8 + 1/4``:

* ``D8^ = {x in (Z + 1/2)^8 : sum(x) even}`` is the half-integer half of E8.
* A *source* is the vector of absolute values ``|x|`` of a point of ``D8^``:
  eight positive half-integers.  The table holds 256 of them: the 227 of squared
  norm at most 10 and 29 of squared norm 12 (:func:`source_vectors`, the order fixed).
* Signs: any sign pattern whose number of minus signs has the parity of
  ``sum(source)`` puts ``x`` in ``D8^`` (flipping one coordinate ``a`` changes the
  sum by the odd integer ``2a``).  Seven sign bits are free; the eighth lane's
  sign is set by that parity rule.
* Shift: ``x + 1/4`` or ``x - 1/4`` (``D8^ +- 1/4`` together are ``E8 + 1/4``).

Every codeword is held at the integer scale :data:`E8P_SCALE` = 4: a lane is
``4 x`` +- 1, an odd integer in [-11, 11] (int8 with room to spare), and the real
lattice point is the lane divided by 4.

A codeword index (:data:`E8P_INDEX_BITS` = 16 bits) is

=======  =========================================================
bits     meaning
=======  =========================================================
0..7     table entry (the source)
8..14    minus signs of lanes 0..6 (bit ``8 + i``: lane ``i`` negative)
15       shift: 1 adds 1/4 (``+1`` at scale 4), 0 subtracts it
=======  =========================================================

Lane 7 is negative when the parity of the seven sign bits differs from the
source's parity, the XOR over the lanes of bit 2 of the scale-4 table values
(a lane ``4a = 4m + 2`` contributes ``m``, and ``sum(a) = sum(m) + 4``).

Decode (the hardware's :class:`hw.lattice_codebook.LatticeCodebook` and this module's
:func:`e8p_decode` alike): ``lane_i = (neg_i ? -T[e][i] : T[e][i]) + (shift ? 1 : -1)``
with ``T`` the table at scale 4 (:func:`e8p_table`).

:func:`e8p_nearest` finds the nearest codeword of a batch of 8-d vectors (optionally
ignoring masked coordinates) exactly: for each source and shift the best signs are
the vector's own, and a wrong parity costs the cheapest single flip.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from model.contract.layout import (E8P_DIM, E8P_INDEX_BITS, E8P_SCALE, E8P_SHIFT_BIT, E8P_SIGN_BITS,  # noqa: F401
                                   E8P_TABLE_BITS)

#: Entries of the source table (``2**E8P_TABLE_BITS``) and codewords (``2**E8P_INDEX_BITS``).
E8P_TABLE_ENTRIES = 1 << E8P_TABLE_BITS
E8P_CODEWORDS = 1 << E8P_INDEX_BITS
#: Squared norms of the sources: all those up to ``E8P_FULL_NORM2``, then enough of
#: ``E8P_EXTRA_NORM2`` to fill the table, in :func:`source_vectors`' order.
E8P_FULL_NORM2 = 10
E8P_EXTRA_NORM2 = 12
#: Bit 2 of a scale-4 table value is the parity of its ``m`` (``4a = 4m + 2``).
PARITY_BIT = 2


@functools.lru_cache(maxsize=1)
def source_vectors() -> np.ndarray:
    """The 256 sources, as doubled half-integers (odd positive ints, ``2|x|``): (256, 8) int64.

    All vectors of ``{1/2, 3/2, 5/2, ...}^8`` of squared norm at most ``E8P_FULL_NORM2`` (227 of
    them), then 29 of squared norm ``E8P_EXTRA_NORM2``; each group sorted by squared norm, then
    in decreasing lexicographic order of the doubled entries (the extra 29 are the first in that
    order: a fixed and documented choice of ours; the paper picks its own 29).
    """
    odd = (1, 3, 5, 7)
    cands = [v for v in itertools.product(odd, repeat=E8P_DIM) if sum(c * c for c in v) <= 4 * E8P_EXTRA_NORM2]
    cands.sort(key=lambda v: (sum(c * c for c in v), tuple(-c for c in v)))
    full = [v for v in cands if sum(c * c for c in v) <= 4 * E8P_FULL_NORM2]
    extra = [v for v in cands if sum(c * c for c in v) == 4 * E8P_EXTRA_NORM2]
    rows = full + extra[:E8P_TABLE_ENTRIES - len(full)]
    assert len(rows) == E8P_TABLE_ENTRIES
    return np.array(rows, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def e8p_table() -> np.ndarray:
    """The hardware's table: the sources at scale :data:`E8P_SCALE` (``4|x|``, values 2, 6, 10), (256, 8) int64."""
    t = source_vectors() * (E8P_SCALE // 2)
    t.setflags(write=False)
    return t


def _parity(table: np.ndarray) -> np.ndarray:
    """Each source's parity (of ``sum(|x|)``): the XOR of bit 2 of its scale-4 lanes, (n,) int64."""
    return np.bitwise_xor.reduce((table >> PARITY_BIT) & 1, axis=-1)


def e8p_decode(indices) -> np.ndarray:
    """Codewords at scale 4 of codeword indices (any shape): (..., 8) int64 odd integers in [-11, 11]."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= E8P_CODEWORDS):
        raise ValueError(f"E8P indices must be 0..{E8P_CODEWORDS - 1}")
    mag = e8p_table()[idx & (E8P_TABLE_ENTRIES - 1)]
    signs = (idx[..., None] >> (E8P_TABLE_BITS + np.arange(E8P_SIGN_BITS))) & 1
    last = (_parity(mag) ^ np.bitwise_xor.reduce(signs, axis=-1))[..., None]
    neg = np.concatenate([signs, last], axis=-1)
    shift = np.where((idx >> E8P_SHIFT_BIT) & 1, 1, -1)[..., None]
    return np.where(neg == 1, -mag, mag) + shift


@functools.lru_cache(maxsize=1)
def e8p_codewords() -> np.ndarray:
    """Every codeword, index order: (65536, 8) int8 at scale 4 (what a lowered E8P layer's ``codebook`` holds)."""
    cw = e8p_decode(np.arange(E8P_CODEWORDS)).astype(np.int8)
    cw.setflags(write=False)
    return cw


def e8p_nearest(y: np.ndarray, mask: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """Index of the nearest codeword to each row of ``y`` (scale-4 units), exactly: (n,) int64.

    ``mask`` (n, 8) of 0/1 weights the squared error per coordinate (a masked coordinate, such as a
    channel that is only padding, costs nothing whatever its value).  Ties go to the lowest
    (shift, table entry) in search order.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1, E8P_DIM) / E8P_SCALE
    m = np.ones_like(y) if mask is None else np.asarray(mask, dtype=np.float64).reshape(-1, E8P_DIM)
    a = e8p_table().astype(np.float64) / E8P_SCALE             # (256, 8) sources
    a2 = a * a
    parity = _parity(e8p_table())
    out = np.empty(len(y), dtype=np.int64)
    for lo in range(0, len(y), chunk):
        yc, mc = y[lo:lo + chunk], m[lo:lo + chunk]
        best_cost, best_idx = None, None
        for shift_bit, t in ((0, -0.25), (1, 0.25)):
            z = yc - t
            az = np.abs(z) * mc                                  # masked |z|
            neg = z < 0
            k = np.bitwise_xor.reduce(neg.astype(np.int64), axis=1)  # parity of the vector's own minus signs
            # sum m (|z| - a)^2 for each source, with the vector's signs
            cost = (mc * z * z).sum(1)[:, None] - 2 * az @ a.T + mc @ a2.T
            # a wrong parity flips the coordinate where it costs least: + 4 a_i m_i |z_i|
            flip_cost = az[:, None, :] * a[None, :, :]           # (c, 256, 8)
            flip_lane = flip_cost.argmin(axis=2)
            wrong = k[:, None] != parity[None, :]
            cost = cost + np.where(wrong, 4 * np.take_along_axis(flip_cost, flip_lane[..., None], 2)[..., 0], 0)
            entry = cost.argmin(axis=1)
            c = cost[np.arange(len(z)), entry]
            signs = neg.copy()
            rows = np.nonzero(wrong[np.arange(len(z)), entry])[0]
            signs[rows, flip_lane[rows, entry[rows]]] ^= True
            idx = (entry | (signs[:, :E8P_SIGN_BITS].astype(np.int64) << (E8P_TABLE_BITS + np.arange(E8P_SIGN_BITS))
                            ).sum(1) | shift_bit << E8P_SHIFT_BIT)
            if best_cost is None:
                best_cost, best_idx = c, idx
            else:
                better = c < best_cost
                best_cost, best_idx = np.where(better, c, best_cost), np.where(better, idx, best_idx)
        out[lo:lo + chunk] = best_idx
    return out
