"""Running :class:`hw.sparse_columns.SparseColumns` on its own in the Amaranth simulator.

The block is not yet part of the engine (issue 16); this is how its tests and
``scripts/experiments/sparse_columns.py`` drive it: several layers made
resident at once through ``load`` (each at its own column and entry bases, as
in an engine), then images run layer by layer, with optional random gaps on
``acts`` and stalls on ``sums``.
"""
from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hw.sparse_columns import LoadTarget, SparseColumns
from model.codecs.sparse_columns import ColumnLayer
from model.contract.fixedpoint import ACC_BITS, ACT_BITS


def packed(layout, **fields) -> int:
    """The integer a layout's fields pack into."""
    return layout.const(fields).as_value().value


def bases(layers: list[ColumnLayer]) -> list[tuple[int, list[int], int]]:
    """Each layer's column-table base, its first entry in each slot and its first local row: the layers one
    after another."""
    out, column, entry, row = [], 0, None, 0
    for layer in layers:
        entry = entry or [0] * len(layer.slots)
        out.append((column, list(entry), row))
        column += layer.in_features
        row += layer.local_rows
        entry = [e + len(part.entry_rows) for e, part in zip(entry, layer.slots)]
    return out


def load_items(dut: SparseColumns, layers: list[ColumnLayer], centroids, biases=None) -> list[int]:
    """The ``load`` transfers that make ``layers`` resident, the centroid table (shared) first; ``biases``,
    per layer its biases by layer row (default: none loaded, the memories' zeros)."""
    lay, items = dut.load_layout, []
    mask = (1 << dut.weight_bits) - 1
    for i, c in enumerate(centroids):
        items.append(packed(lay, target=LoadTarget.CENTROID, slot=0, addr=i, data=int(c) & mask))
    for number, (layer, (column_base, entry_base, row_base)) in enumerate(zip(layers, bases(layers))):
        for s, part in enumerate(layer.slots):
            if biases is not None:
                for t, r in enumerate(part.rows):
                    items.append(packed(lay, target=LoadTarget.BIAS, slot=s, addr=row_base + t,
                                        data=int(biases[number][r]) & ((1 << ACC_BITS) - 1)))
            for j, (start, count) in enumerate(zip(part.starts, part.counts)):
                word = packed(dut.column_layout, start=entry_base[s] + int(start), count=int(count))
                items.append(packed(lay, target=LoadTarget.COLUMN, slot=s, addr=column_base + j, data=word))
            for e, (row, index) in enumerate(zip(part.entry_rows, part.entry_index)):
                word = packed(dut.entry_layout, row=int(row), index=int(index))
                items.append(packed(lay, target=LoadTarget.ENTRY, slot=s, addr=entry_base[s] + e, data=word))
    return items


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def run_layers(dut: SparseColumns, layers: list[ColumnLayer], centroids, jobs, *, biases=None, seed: int = 0,
               gap: float = 0.0, stall: float = 0.0, limit: int = 1_000_000, progress=None) -> list[dict]:
    """Load ``layers``, then run ``jobs``, a list of ``(layer number, activations)``, one after another.

    Parameters
    ----------
    biases : list of arrays, optional
        Per layer, its biases by layer row (:func:`load_items`).
    activations : array of int
        A whole number of lane-words (zero padding included).
    gap, stall : float
        Probability that ``acts.valid`` is withheld when a new lane-word would be offered, and that
        ``sums.ready`` is withheld, each cycle.
    limit : int
        Cycles a job may take before it counts as hung (``AssertionError``).
    progress : callable, optional
        Called after each job.

    Returns
    -------
    list of dict
        Per job: ``sums`` (output beats x slots), ``macs``, ``zero_skips`` and ``cycles``
        (from ``start`` to the cycle after the last ``sums`` transfer).
    """
    rng = np.random.default_rng(seed)
    places = bases(layers)
    results = []
    lanes = dut.lanes

    async def bench(ctx):
        for item in load_items(dut, layers, centroids, biases):
            ctx.set(dut.load.valid, 1)
            ctx.set(dut.load.payload.as_value(), item)
            await ctx.tick()
        ctx.set(dut.load.valid, 0)
        for number, x in jobs:
            layer = layers[number]
            if len(x) % lanes:
                raise ValueError(f"layer {number}: {len(x)} activations are not whole lane-words of {lanes}")
            words = [sum((int(v) & ((1 << ACT_BITS) - 1)) << (ACT_BITS * i) for i, v in enumerate(x[w:w + lanes]))
                     for w in range(0, len(x), lanes)]
            ctx.set(dut.config.as_value(), packed(dut.config_layout, words=len(words), column_base=places[number][0],
                                                  rows=layer.local_rows, row_base=places[number][2], centroid_base=0))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            beats, macs, skips, cycles, sent, offering = [], 0, 0, 1, 0, False
            while ctx.get(dut.busy):
                assert cycles < limit, f"layer {number}: no end after {limit} cycles"
                if not offering and sent < len(words):
                    offering = not (gap and rng.random() < gap)
                ctx.set(dut.acts.valid, int(offering))
                if offering:
                    ctx.set(dut.acts.payload.as_value(), words[sent])
                give = not (stall and rng.random() < stall)
                ctx.set(dut.sums.ready, int(give))
                if give and ctx.get(dut.sums.valid):
                    word = ctx.get(dut.sums.payload.as_value())
                    beats.append([_signed(word >> (ACC_BITS * s), ACC_BITS) for s in range(dut.slots)])
                macs += ctx.get(dut.events.macs)
                skips += ctx.get(dut.events.zero_skips)
                if offering and ctx.get(dut.acts.ready):
                    sent, offering = sent + 1, False
                await ctx.tick()
                cycles += 1
            assert sent == len(words), f"layer {number}: {len(words) - sent} lane-words never taken"
            results.append({"sums": np.array(beats, dtype=np.int64).reshape(-1, dut.slots), "macs": macs,
                            "zero_skips": skips, "cycles": cycles})
            if progress:
                progress()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results
