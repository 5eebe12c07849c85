"""Sparse layers stored column by column, EIE's layout: rows dealt to slots, each slot's columns and entries.

A sparse layer's weights (a dense matrix of centroid indices, 0 at pruned
positions, centroid 0 being the exact zero) are split among ``slots``
multipliers (lanes x PEs).  Each row belongs to one slot, whose accumulator
memory holds it at a local address; rows are *balanced*: dealt in order of
falling stored-weight count, each to the slot with the least stored weights
among those that still have room (every slot holds at most
``ceil(rows / slots)`` rows, so the output phase reads one lane-word of
accumulators a cycle).  A slot stores, for every column of the layer, where
its entries start and how many there are; an entry is a kept weight's local
row and centroid index.  Only kept weights are stored: a column whose
activation is zero costs nothing, and a non-zero activation costs one entry
per kept weight of its column in each slot, all slots in parallel.

:class:`ColumnLayer` is what the program writer stores and what the golden
twin of :class:`hw.sparse_columns.SparseColumns`
(:mod:`model.golden.sparse_columns`) reads back.  :func:`deal_rows` is the
balancing, kept apart so the cycle model (``scripts/experiments/sparse_columns.py``)
can compare it with other placements.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def deal_rows(nonzero: np.ndarray, slots: int) -> np.ndarray:
    """Each row's slot: by falling stored weights, to the least-loaded slot with room.

    Parameters
    ----------
    nonzero : ndarray of bool, (rows, columns)
        Where the layer keeps a weight.
    slots : int
        Multipliers the layer is split among.

    Returns
    -------
    ndarray of int, (rows,)
        The slot of each row; no slot gets more than ``ceil(rows / slots)`` rows.
    """
    rows = nonzero.shape[0]
    room = -(-rows // slots)
    work = nonzero.sum(axis=1)
    load = np.zeros(slots, dtype=np.int64)
    held = np.zeros(slots, dtype=np.int64)
    slot = np.zeros(rows, dtype=np.int64)
    for r in np.argsort(-work, kind="stable"):
        open_slots = np.flatnonzero(held < room)
        s = int(open_slots[np.argmin(load[open_slots])])
        slot[r] = s
        load[s] += work[r]
        held[s] += 1
    return slot


@dataclass(frozen=True)
class SlotColumns:
    """One slot's share of a layer.

    Members
    -------
    rows : ndarray of int
        The layer row each local row (accumulator address) holds, in local order.
    starts, counts : ndarray of int, (columns,)
        Per column: its first entry (counted from the slot's first entry of the
        layer) and how many entries it has in this slot.
    entry_rows, entry_index : ndarray of int, (entries,)
        Per entry, column by column: its local row and its centroid index (never 0).
    """

    rows: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    entry_rows: np.ndarray
    entry_index: np.ndarray


@dataclass(frozen=True)
class ColumnLayer:
    """A sparse layer split among slots (:func:`place_columns`).

    Members
    -------
    in_features, out_features : int
    slots : tuple of SlotColumns
    """

    in_features: int
    out_features: int
    slots: tuple[SlotColumns, ...]

    @property
    def local_rows(self) -> int:
        """Accumulator addresses a slot needs: the most rows any slot holds (the output beats)."""
        return max(len(s.rows) for s in self.slots)

    @property
    def entries(self) -> int:
        """Stored weights in all slots."""
        return sum(len(s.entry_rows) for s in self.slots)

    def output_order(self) -> np.ndarray:
        """The layer row of each output value, beat by beat and slot by slot within a beat (-1: none)."""
        order = np.full((self.local_rows, len(self.slots)), -1, dtype=np.int64)
        for s, part in enumerate(self.slots):
            order[:len(part.rows), s] = part.rows
        return order.reshape(-1)


def place_columns(indices: np.ndarray, slots: int, balanced: bool = True) -> ColumnLayer:
    """A dense matrix of centroid indices (0 = pruned) -> its column-wise form on ``slots`` slots.

    Rows are dealt by :func:`deal_rows` (``balanced``), or row ``r`` goes to slot
    ``r mod slots`` (the engine's ``COLUMNS`` layers, whose writer balances the
    slots by permuting hidden units instead, :mod:`model.program.balance`; the
    outputs then come out in row order).  Within a slot, a column's entries go
    in increasing local row; local rows are the slot's rows in increasing layer row.
    """
    indices = np.asarray(indices)
    if indices.ndim != 2 or slots < 1:
        raise ValueError(f"expected a (rows, columns) index matrix and slots >= 1, got {indices.shape}, {slots}")
    nonzero = indices != 0
    slot_of = deal_rows(nonzero, slots) if balanced else np.arange(indices.shape[0]) % slots
    parts = []
    for s in range(slots):
        rows = np.flatnonzero(slot_of == s)
        mine = indices[rows]                        # (local rows, columns)
        column, local = np.nonzero(mine.T)          # column-major: by column, then local row
        counts = np.bincount(column, minlength=indices.shape[1])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        parts.append(SlotColumns(rows=rows, starts=starts.astype(np.int64), counts=counts.astype(np.int64),
                                 entry_rows=local.astype(np.int64),
                                 entry_index=mine[local, column].astype(np.int64)))
    return ColumnLayer(in_features=indices.shape[1], out_features=indices.shape[0], slots=tuple(parts))
