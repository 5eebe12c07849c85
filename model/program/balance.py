"""Balance sparse layers' rows across processing elements by permuting hidden units.

On an engine of ``P`` processing elements, output row ``r`` of a sparse (Huffman-coded) layer runs
on PE ``r mod P`` (:mod:`model.contract.layout`, "Sparse Huffman-coded layers", *Processing
elements*), and each PE decodes its rows one symbol a cycle, plus a fixed cost per row.  The PEs
run their sub-streams concurrently, so the layer takes as long as its slowest PE: rows of uneven
length dealt round-robin leave some PEs idle while the busiest finishes.

A hidden unit's position is free, though: permuting the rows of layer ``L`` (its weights, bias,
requantization) and the input columns of layer ``L + 1`` the same way computes exactly the same
outputs of ``L + 1``.  :func:`balance_hidden_units` does this for every sparse FC layer whose output
feeds only the next layer and that layer is sparse FC too, with the row order of
:func:`pe_balanced_order`; the last layer's outputs (the program's) are never permuted.
"""
from __future__ import annotations

import copy

import numpy as np

from model.codecs.sparse_rows import row_symbols
from model.contract.layout import REL_BITS

#: Cycles a PE spends per sparse row besides its symbols (header and requantization).
SPARSE_ROW_OVERHEAD = 2


def sparse_row_work(indices, rel_bits: int = REL_BITS, pairs: bool = True) -> np.ndarray:
    """Each row's cycles on a PE's sparse row path: a cycle per symbol (:func:`row_symbols`, fillers
    included), less the fillers that go with the next symbol of their decode step, plus
    :data:`SPARSE_ROW_OVERHEAD`.

    With ``pairs`` (a decoder that takes two codes a step, :func:`model.codecs.huffman.codes_per_step`)
    a row's steps take its symbols ``(0, 1), (2, 3), ..``, and a filler first of its step moves the
    position in the same cycle as the symbol after it (:class:`hw.sparse_rows.SparseRowPath`): the
    fillers of long zero runs cost about half a cycle each, and rows with the same symbols can take
    different times.

    Parameters
    ----------
    indices : array_like of int, shape (out_features, in_features)
        Dense centroid indices, 0 where pruned.
    rel_bits : int
        Run field width.
    pairs : bool
        The decoder takes two codes a step.
    """
    work = []
    for row in np.asarray(indices):
        idx = row_symbols(row, rel_bits)[1]
        absorbed = int(np.count_nonzero(idx[0:len(idx) - 1:2] == 0)) if pairs else 0
        work.append(len(idx) - absorbed + SPARSE_ROW_OVERHEAD)
    return np.array(work, dtype=np.int64)


def pe_work(work, pes: int, order=None) -> np.ndarray:
    """Each PE's total work when stored row ``s`` is original row ``order[s]`` (default: the
    identity) and runs on PE ``s mod pes``."""
    work = np.asarray(work, dtype=np.int64)
    stored = work if order is None else work[np.asarray(order, dtype=np.int64)]
    return np.array([int(stored[p::pes].sum()) for p in range(pes)], dtype=np.int64)


def pe_balanced_order(work, pes: int) -> np.ndarray | None:
    """A row order that balances ``pes`` PEs' work, or None when it would not lower the busiest PE's.

    Greedy longest-processing-time first under the PEs' row counts: rows longest first (ties: lower
    row first), each to the least-loaded PE (ties: lower PE) that still has room, PE ``p`` taking
    exactly as many rows as the round-robin layout gives it (``len(range(p, n, pes))``), so the
    layer's shape and stream layout stay the same.  Row ``g * pes + p`` of the result is the
    ``g``-th row (in original order) given to PE ``p``.

    Parameters
    ----------
    work : array_like of int
        Per row, its cost on a PE (:func:`sparse_row_work`).
    pes : int

    Returns
    -------
    numpy.ndarray of int64 or None
        ``order[s]``: the original row stored at row ``s``; None when the greedy assignment's busiest
        PE is not strictly below the round-robin's (never worse: then nothing is permuted).
    """
    work = np.asarray(work, dtype=np.int64)
    n = len(work)
    if pes <= 1 or n <= 1:
        return None
    room = [len(range(p, n, pes)) for p in range(pes)]
    load = [0] * pes
    given: list[list[int]] = [[] for _ in range(pes)]
    for r in sorted(range(n), key=lambda r: (-int(work[r]), r)):
        p = min((q for q in range(pes) if len(given[q]) < room[q]), key=lambda q: (load[q], q))
        given[p].append(r)
        load[p] += int(work[r])
    if max(load) >= int(pe_work(work, pes).max()):
        return None
    order = np.empty(n, dtype=np.int64)
    for p, rows in enumerate(given):
        order[p::pes] = sorted(rows)
    return order


def _balanceable(layer, nxt, mode_of, mode: str = "huffman") -> bool:
    """Layer ``layer``'s hidden units may be permuted: both it and ``nxt`` (the layer reading its
    output) are sparse FC layers (of ``mode``) with scalar centroids, its output goes nowhere else
    (no skip buffer), and ``nxt`` reads exactly its outputs."""
    def sparse_fc(l):
        return (getattr(l, "kind", "fc") == "fc" and mode_of(l) == mode
                and np.asarray(l.codebook).ndim == 2 and np.asarray(l.codebook).shape[1] == 1)
    return (sparse_fc(layer) and sparse_fc(nxt) and not getattr(layer, "save", False)
            and nxt.in_features == layer.out_features
            and np.asarray(layer.indices).shape == (layer.out_features, layer.in_features)
            and np.asarray(nxt.indices).shape == (nxt.out_features, nxt.in_features)
            and all(_indices_valid(l) for l in (layer, nxt))
            # Malformed row parameters are left for the writer to refuse, unpermuted.
            and all(np.shape(getattr(layer, name)) == (layer.out_features,) for name in ("bias", "mult", "shift"))
            and np.shape(getattr(layer, "act", None) if getattr(layer, "act", None) is not None
                         else np.zeros(layer.out_features)) == (layer.out_features,))


def _indices_valid(layer) -> bool:
    idx = np.asarray(layer.indices)
    return idx.size == 0 or (idx.min() >= 0 and idx.max() < len(layer.codebook))


def stored_weights(indices) -> np.ndarray:
    """Each row's kept weights: its cycles in a slot of the column unit (``COLUMNS`` layers), before the
    activations skip some."""
    return np.count_nonzero(np.asarray(indices), axis=1).astype(np.int64)


def balance_hidden_units(layers, pes: int, mode_of, pairs: bool = True, mode: str = "huffman",
                         work=None) -> tuple[list, dict[int, np.ndarray]]:
    """The layers with each balanceable sparse layer's hidden units permuted for ``pes`` PEs.

    The same for a ``COLUMNS`` layer's slots (``mode="columns"``, ``pes`` the slots, ``work``
    :func:`stored_weights`): row ``r`` runs in slot ``r mod S``.

    Layer ``i`` is permuted when it and layer ``i + 1`` are sparse FC layers and its output feeds
    only layer ``i + 1`` (:func:`_balanceable`; never the last layer): its rows (index matrix,
    bias, requantization, activation parameters) are put in :func:`pe_balanced_order` of their
    :func:`sparse_row_work`, and layer ``i + 1``'s index matrix columns in the same order, so layer
    ``i + 1``'s outputs are exactly those of the original network.  Layer ``i + 1``'s work is
    measured after its columns move (its runs, so its fillers, depend on them).

    Parameters
    ----------
    layers : list
        Lowered layers (:class:`model.compress.lowering.LoweredLayer` or alike); not changed: a
        permuted layer is a shallow copy with new arrays.
    pes : int
    mode_of : callable
        A layer's mode (``"huffman"`` for sparse layers), e.g. :func:`model.program.writer.layer_mode`.
    pairs : bool
        The engine's decoder takes two codes a step (:func:`sparse_row_work`).
    mode : str
        The sparse layers' mode (``"huffman"``, ``"columns"``).
    work : callable, optional
        A layer's index matrix -> each row's cost (default: :func:`sparse_row_work`).

    Returns
    -------
    layers : list
        The layers, copies where permuted.
    row_order : dict of int to numpy.ndarray
        For each permuted layer, ``order[s]``: the original row (hidden unit) stored at row ``s``.
    """
    out = list(layers)
    orders: dict[int, np.ndarray] = {}
    if pes <= 1:
        return out, orders
    for i in range(len(out) - 1):
        layer, nxt = out[i], out[i + 1]
        if not _balanceable(layer, nxt, mode_of, mode):
            continue
        cost = work(layer.indices) if work is not None else sparse_row_work(layer.indices, pairs=pairs)
        order = pe_balanced_order(cost, pes)
        if order is None:
            continue
        layer = copy.copy(layer)
        layer.indices = np.asarray(layer.indices)[order]
        for name in ("bias", "mult", "shift", "act"):
            value = getattr(layer, name, None)
            if value is not None:
                setattr(layer, name, np.asarray(value)[order])
        nxt = copy.copy(nxt)
        nxt.indices = np.asarray(nxt.indices)[:, order]
        out[i], out[i + 1] = layer, nxt
        orders[i] = order
    return out, orders
