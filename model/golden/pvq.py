"""Golden twin of :class:`hw.pvq.PvqDotProduct`, the multiplier-free PVQ dot-product unit.

The unit takes one weight sub-vector per transfer as ``(index, scale,
activations)``: ``index`` names ``y`` in the enumeration of ``P(N, K)``
(:mod:`model.codecs.pvq`), ``scale`` is its unsigned integer gain and
``activations`` the int8 sub-vector ``x`` it meets.  A row's accumulator is

    acc = wrap32(bias + sum over the row's vectors of scale * <y, x>)

(:func:`model.contract.fixedpoint.wrap_acc`), exactly what :class:`hw.mac.MacLanes`
computes with the decoded codeword.  ``<y, x>`` is formed with additions only,
while the decode walk of :func:`model.codecs.pvq.pvq_decode_steps` runs, and the one
multiplication per vector is ``scale * <y, x>``.

How ``<y, x>`` is added up (the RTL does exactly this)
=====================================================
Two registers: the magnitude sum ``p`` of the open coordinate and the vector
sum ``S``.  Each walk step (one cycle, one pulse, on coordinate ``i``) forms
``q = p + x_i`` (a **pulse add**), then

* if the coordinate stays open (``value is None``: it has one more pulse),
  ``p = q``;
* if the step resolves it (``y_i = +-t``, its sign known only now), adds ``+q``
  or ``-q`` to ``S`` (a **merge**) and clears ``p``.

So every pulse costs exactly one add of an activation: **pulse adds = K per
vector** (the unit's ``add`` strobe), plus one merge per non-zero coordinate
(its ``merge`` strobe, in the same cycle as the coordinate's last pulse add),
plus one multiply by the scale (its ``mul`` strobe).

Cycle model
===========
A vector occupies the unit (``busy``) for

    cycles = max(K, 1),  steps = len(pvq_decode_steps(index, N, K)) = K

one walk step per pulse whatever ``N`` and ``y`` are (zero coordinates are
skipped in the step that finds the next pulse); a ``K = 0`` vector is one busy
cycle with no step.  The walker's table read is issued one cycle ahead (from
the next-state registers), so the walk runs at one step per cycle with no
bubbles.  The next vector is taken in a vector's last busy cycle, so
back-to-back vectors cost nothing extra; a vector offered to an idle unit is
taken in a cycle of its own (:data:`LOAD_CYCLES`) before its first step.  A
row's result appears :data:`RESULT_LATENCY` cycles after the last busy cycle
of its last vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from model.codecs.pvq import PVQError, pvq_count, pvq_decode_steps
from model.contract.fixedpoint import ACT_MAX, ACT_MIN, wrap_acc
from model.contract.layout import PVQ_SCALE_BITS as DEFAULT_SCALE_BITS
from model.contract.pyramid import PVQ_MAX_LANES

#: Cycles an idle unit spends taking a vector before the first walk step.
LOAD_CYCLES = 1
#: Cycles from a row's last busy cycle to its result: vector sum register,
#: scale product register, accumulator/result register.
RESULT_LATENCY = 3


class VectorTrace(NamedTuple):
    """What the unit does for one vector.

    ``dot`` is ``<y, x>``; ``steps`` the walker steps (``step`` strobes,
    also the table reads; ``K``); ``cycles`` the ``busy`` cycles,
    ``max(steps, 1)``; ``adds`` the pulse adds (``add`` strobes, always
    ``K``); ``merges`` the sign-applying adds of a coordinate's magnitude sum
    into the vector sum (``merge`` strobes, one per non-zero coordinate).
    """
    y: tuple[int, ...]
    dot: int
    steps: int
    cycles: int
    adds: int
    merges: int


def pvq_unit_vector(index: int, activations, N: int, K: int) -> VectorTrace:
    """Decode ``index`` and add up ``<y, activations>`` exactly as the RTL does.

    Parameters
    ----------
    index : int
        ``0 <= index < V(N, K)``; otherwise :class:`model.codecs.pvq.PVQError` (the
        RTL raises ``error`` and stops).
    activations : sequence of int, length N
        int8 values.
    N : int
        Dimension, ``>= 1``.
    K : int
        Pulses, ``>= 0``.

    Returns
    -------
    VectorTrace
    """
    x = [int(a) for a in activations]
    if len(x) != N:
        raise PVQError(f"expected {N} activations, got {len(x)}")
    if any(not ACT_MIN <= a <= ACT_MAX for a in x):
        raise PVQError(f"activations must be int8, got {x}")
    walk = pvq_decode_steps(index, N, K)
    y = [0] * N
    p = S = adds = merges = 0
    for st in walk:
        q = p + x[st.coordinate]   # this step's pulse
        adds += 1
        if st.value is None:
            p = q
        else:
            y[st.coordinate] = st.value
            S += q if st.value > 0 else -q
            merges += 1
            p = 0
    # The add sequence must give the plain dot product of the decoded vector.
    assert S == int(np.dot(np.array(y, dtype=np.int64), np.array(x, dtype=np.int64))), (y, x, S)
    assert adds == K
    return VectorTrace(tuple(y), S, len(walk), max(len(walk), 1), adds, merges)


def vector_cycles(index: int, N: int, K: int) -> int:
    """Busy cycles of one vector: ``max(K, 1)``, whatever ``index`` and ``N`` are."""
    return pvq_unit_vector(index, [0] * N, N, K).cycles


@dataclass(frozen=True)
class PvqRow:
    """One output row: its bias, requantization parameters and sub-vectors.

    Attributes
    ----------
    bias : int
        Signed 32-bit.
    indices : sequence of int
        One PVQ index per sub-vector.
    scales : sequence of int
        Unsigned per-vector scales.
    activations : array_like of int, shape (len(indices), N)
        The activation sub-vector each index meets.
    mult, shift : int
        Passed through to the result.
    """
    bias: int
    indices: Sequence[int]
    scales: Sequence[int]
    activations: np.ndarray
    mult: int = 0
    shift: int = 0


class PvqUnitRun(NamedTuple):
    """Everything the unit produces for a sequence of rows.

    ``results`` holds ``(acc, mult, shift)`` per row, ``vectors`` a
    :class:`VectorTrace` per vector in stream order; the totals are the sums of
    the unit's strobes (``mul``: one scale multiply per vector).
    """
    results: list
    vectors: list
    steps: int
    cycles: int
    adds: int
    merges: int
    muls: int


def pvq_unit_run(rows: Sequence[PvqRow], N: int, K: int, scale_bits: int = DEFAULT_SCALE_BITS) -> PvqUnitRun:
    """Run rows through the unit's golden twin.

    Parameters
    ----------
    rows : sequence of PvqRow
        Each with at least one vector.
    N : int
        Sub-vector dimension, ``1 .. PVQ_MAX_LANES``.
    K : int
        The layer's pulses per vector.
    scale_bits : int
        Width of the unsigned scale.

    Returns
    -------
    PvqUnitRun
    """
    if not 1 <= N <= PVQ_MAX_LANES:
        raise PVQError(f"N must be 1..{PVQ_MAX_LANES}, got {N}")
    results, traces = [], []
    for row in rows:
        acts = np.asarray(row.activations).reshape(-1, N)
        if not len(row.indices) == len(row.scales) == len(acts) >= 1:
            raise PVQError("a row needs the same number (>= 1) of indices, scales and activation vectors")
        acc = int(row.bias)
        for index, scale, x in zip(row.indices, row.scales, acts):
            if not 0 <= int(scale) < 1 << scale_bits:
                raise PVQError(f"scale {scale} does not fit {scale_bits} unsigned bits")
            t = pvq_unit_vector(index, x, N, K)
            traces.append(t)
            acc += int(scale) * t.dot
        results.append((int(wrap_acc(acc)), int(row.mult), int(row.shift)))
    return PvqUnitRun(results, traces, sum(t.steps for t in traces), sum(t.cycles for t in traces),
                      sum(t.adds for t in traces), sum(t.merges for t in traces), len(traces))


def pvq_unit_timeline(cycles: Sequence[int], start: int = 0) -> tuple[list[int], list[int]]:
    """Transfer and last-busy cycles of vectors offered back to back to an idle unit.

    Vector 0 is taken in cycle ``start``; vector ``j`` is busy in cycles
    ``t_j + 1 .. t_j + cycles[j]`` and vector ``j + 1`` is taken in the last of
    them.  A row's result is valid in cycle ``last + RESULT_LATENCY`` of its
    last vector.

    Returns
    -------
    transfers, lasts : list of int
    """
    transfers, lasts = [], []
    t = start
    for c in cycles:
        transfers.append(t)
        lasts.append(t + c)
        t += c
    return transfers, lasts


def index_in_range(index: int, N: int, K: int) -> bool:
    """The unit's range check: ``index < V(N, K)``."""
    return 0 <= index < pvq_count(N, K)
