"""hw.sparse_columns.SparseColumns against its golden twin, model.golden.sparse_columns.column_sums.

Random sparse layers (several resident at once, run in random order) with
random activations, half of them zero, and random backpressure on both
streams: every output beat, ``macs`` and ``zero_skips`` must equal the twin's.
Also: columns with no entries in a slot, a slot with fewer rows than the
others, one slot, extremes that wrap the 32-bit accumulators, and a bound on
cycles that holds only if a slot issues an entry every cycle it has work.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.sparse_columns import SparseColumns
from model.codecs.sparse_columns import deal_rows, place_columns
from model.golden.sparse_columns import column_sums

from sim.sparse_columns import run_layers

#: Cycles a layer takes beyond its slowest slot's work and its output beats: start, the first
#: lane-word, the broadcast, the column-table read, the ready columns, stages M and A, and the drain.
LATENCY = 8


def random_layer(rng, rows, columns, density, k):
    keep = rng.random((rows, columns)) < density
    return np.where(keep, rng.integers(1, k, size=(rows, columns)), 0)


def activations(rng, n, lanes, zero=0.5, extreme=False):
    x = rng.integers(-128, 128, size=n) if not extreme else np.full(n, -128)
    x[rng.random(n) < zero] = 0
    pad = -n % lanes
    return np.concatenate([x, np.zeros(pad, dtype=np.int64)])


def check(dut, layers, centroids, jobs, biases=None, **kw):
    got = run_layers(dut, layers, centroids, jobs, biases=biases, **kw)
    for (number, x), result in zip(jobs, got):
        sums, events = column_sums(layers[number], centroids, x, None if biases is None else biases[number])
        assert result["sums"].shape == sums.shape, (number, result["sums"].shape, sums.shape)
        np.testing.assert_array_equal(result["sums"], sums, err_msg=f"layer {number}")
        assert result["macs"] == events["macs"]
        assert result["zero_skips"] == events["zero_skips"]
    return got


@pytest.mark.parametrize("lanes,slots,seed", [(4, 4, 0), (4, 1, 1), (2, 3, 2), (8, 8, 3)])
def test_random_layers_with_backpressure(lanes, slots, seed):
    rng = np.random.default_rng(seed)
    k, index_bits = 16, 4
    shapes = [(23, 40), (9, 24), (5, 8)]
    layers = [place_columns(random_layer(rng, r, c, d, k), slots) for (r, c), d in zip(shapes, (0.3, 0.6, 0.9))]
    centroids = rng.integers(-128, 128, size=k)
    centroids[0] = 0
    order = rng.permutation(np.concatenate([np.arange(3), rng.integers(0, 3, size=4)]))   # every layer, some twice
    jobs = [(int(n), activations(rng, shapes[n][1], lanes)) for n in order]
    biases = [rng.integers(-(1 << 31), 1 << 31, size=r) for r, _ in shapes]
    dut = SparseColumns(lanes, slots, columns=128, entries=1024, rows=40, index_bits=index_bits, queue_depth=4)
    check(dut, layers, centroids, jobs, biases, seed=seed, gap=0.3, stall=0.3)


def test_wraps_and_empty_columns():
    """Extreme products (-128 * -128); most columns are empty in most slots (they stop at the pointer stage)."""
    lanes, slots = 4, 4
    rows, columns = 6, 4000 // 32
    idx = np.zeros((rows, columns), dtype=np.int64)
    idx[0, :] = 1                      # one full row
    idx[1:, ::7] = 2
    layer = place_columns(idx, slots)
    centroids = np.array([0, -128, 127, 0])
    x = activations(np.random.default_rng(5), columns, lanes, zero=0.0, extreme=True)
    dut = SparseColumns(lanes, slots, columns=columns, entries=512, rows=8, index_bits=2, weight_bits=8)
    check(dut, [layer], centroids, [(0, x), (0, x)])


def test_sums_wrap_at_32_bits():
    lanes, slots = 4, 2
    columns = 512
    idx = np.ones((2, columns), dtype=np.int64)
    layer = place_columns(idx, slots)
    centroids = np.array([0, -(1 << 15)])
    x = np.full(columns, -128)
    sums, _ = column_sums(layer, centroids, x)
    assert sums[0, 0] == ((512 * (1 << 22) + (1 << 31)) % (1 << 32)) - (1 << 31)
    dut = SparseColumns(lanes, slots, columns=columns, entries=columns, rows=1, index_bits=1, weight_bits=16)
    check(dut, [layer], centroids, [(0, x)])


@pytest.mark.parametrize("density", [0.5, 0.08])
def test_an_entry_every_cycle(density):
    """With no backpressure, a slot spends at most a cycle per entry, or per column it has none of
    (its pointer stage reads one column a cycle): the walker issues back to back across columns, and
    the ready columns hide the column-table read.  (The queues hold every column here, so no slot
    waits for the scanner, which waits for a full queue: that imbalance is the cycle model's business.)"""
    rng = np.random.default_rng(7)
    lanes, slots = 4, 4
    idx = random_layer(rng, 64, 96, density, 16)
    layer = place_columns(idx, slots)
    centroids = rng.integers(-128, 128, size=16)
    x = activations(rng, 96, lanes, zero=0.3)
    dut = SparseColumns(lanes, slots, columns=96, entries=2048, rows=16, index_bits=4, queue_depth=128)
    [got] = check(dut, [layer], centroids, [(0, x)])
    live = x[:96] != 0
    busiest = max(int(part.counts[live].sum()) for part in layer.slots)
    slowest = max(int(np.maximum(part.counts[live], 1).sum()) for part in layer.slots)
    assert busiest <= got["cycles"]
    assert got["cycles"] <= slowest + layer.local_rows + LATENCY, (got["cycles"], slowest, layer.local_rows)


def test_dealing_balances_and_caps_rows():
    rng = np.random.default_rng(3)
    nonzero = rng.random((30, 50)) < rng.random((30, 1))
    slot = deal_rows(nonzero, 4)
    held = np.bincount(slot, minlength=4)
    assert held.max() <= 8
    load = np.bincount(slot, weights=nonzero.sum(1), minlength=4)
    assert load.max() - load.min() <= nonzero.sum(1).max()
