"""hw.sparse_rows.SparseRowPath: a sparse Huffman-coded layer's stream -> row parameters + one beat per symbol.

Golden model: :mod:`model.codecs.sparse_rows` (encoder, :func:`~model.codecs.sparse_rows.decode_row`).
The stream comes with random valid gaps; ``params`` and ``beats`` get random
ready stalls.  Every parameter transfer and every beat (index, position,
filler, first, last) is compared in order and in number with the golden
model, as are the decoder's counter strobes; a stalled path must still finish,
and with no stalls the rows' symbols come one per cycle with two cycles between rows.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.layouts import RowParams
from hw.sparse_rows import SparseRowPath, sparse_beat_layout
from model.codecs.huffman import codes_per_step
from model.codecs.sparse_rows import decode_row, encode_layer
from model.contract.layout import REL_BITS

from huffman_cases import reference_steps
from hwsim import budget, simulate, stalls, start_row_source, unpack

MAX_LEN, SYMBOL_BITS = 15, 9


def make_layer(rng, n_out: int, n_in: int, k: int, density: float):
    """(stream words after the size word, config, expected params, expected beats, code bits, symbols per row)."""
    indices = np.where(rng.random((n_out, n_in)) < density, rng.integers(1, max(k, 2), size=(n_out, n_in)), 0)
    if k == 1:
        indices[:] = 0
    sparse = encode_layer(indices, k, SYMBOL_BITS, MAX_LEN, REL_BITS)
    bias = rng.integers(-(1 << 21), 1 << 21, size=n_out)
    mult, shift = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 64))
    stream = sparse.stream(bias, np.full(n_out, mult), np.full(n_out, shift))
    params = [{"bias": int(b), "mult": mult, "shift": shift, "act": 0} for b in bias]
    beats = []
    for syms in sparse.symbols:
        positions, idx = decode_row(syms, sparse.idx_bits, k, n_in)
        for j, (p, i) in enumerate(zip(positions, idx)):
            # The decoder takes two codes a step from the row's start; a filler first in a step
            # goes with the step's second symbol, in its beat.
            absorbed = codes_per_step(MAX_LEN) == 2 and j % 2 == 0 and j + 1 < len(syms) and i == 0
            if j % 2 == 1 and beats and beats[-1].get("absorbed"):
                beats[-1] = {"index": int(i), "position": int(p), "filler": int(i == 0),
                             "first": beats[-1]["first"], "last": int(j == len(syms) - 1)}
                continue
            beats.append({"index": int(i), "position": int(p), "filler": int(i == 0), "first": int(j == 0),
                          "last": int(j == len(syms) - 1), **({"absorbed": True} if absorbed else {})})
    config = {"rows": n_out, "in_features": n_in, "k": k, "table_words": len(sparse.table.to_words())}
    for beat in beats:
        beat.pop("absorbed", None)
    return [int(w) for w in stream[1:]], config, params, beats, sum(sparse.row_bits), [len(x) for x in sparse.symbols]


def run_path(words, config, *, seed: int, word_gap=0.3, params_stall=0.3, beats_stall=0.3):
    dut = SparseRowPath(MAX_LEN, SYMBOL_BITS)
    rng = np.random.default_rng(seed)
    blay = sparse_beat_layout(SYMBOL_BITS)
    obs = {"params": [], "beats": [], "beat_cycles": [], "cycles": 0, "symbols": 0, "bits": 0, "busy": 0,
           "error": 0}

    async def bench(ctx):
        n_cycles = budget(len(words) * 32 + 64, word_gap, params_stall, beats_stall)
        gaps = stalls(rng, n_cycles, word_gap)
        pst = stalls(rng, n_cycles, params_stall)
        bst = stalls(rng, n_cycles, beats_stall)
        src = await start_row_source(ctx, dut, config, words, gaps)
        for cycle in range(n_cycles):
            src.drive(ctx)
            ctx.set(dut.dry, int(src.done))
            ctx.set(dut.params.ready, int(not pst[cycle]))
            ctx.set(dut.beats.ready, int(not bst[cycle]))
            if ctx.get(dut.params.valid) and ctx.get(dut.params.ready):
                obs["params"].append(unpack(RowParams, int(ctx.get(dut.params.payload.as_value()))))
            if ctx.get(dut.beats.valid) and ctx.get(dut.beats.ready):
                obs["beats"].append(unpack(blay, int(ctx.get(dut.beats.payload.as_value()))))
                obs["beat_cycles"].append(cycle)
            obs["symbols"] += ctx.get(dut.events.symbol)
            obs["bits"] += ctx.get(dut.events.bits)
            obs["busy"] += ctx.get(dut.events.decode)
            src.sample(ctx)
            if not ctx.get(dut.busy) or ctx.get(dut.error):
                obs["error"] = ctx.get(dut.error)
                obs["cycles"] = cycle
                obs["words_left"] = len(words) - src.pos
                return
            await ctx.tick()
        raise AssertionError("the sparse row path did not finish (hang)")

    simulate(dut, bench)
    return obs


@pytest.mark.parametrize("seed", range(6))
def test_layer_with_stalls_matches_golden(seed):
    rng = np.random.default_rng(seed)
    n_out, n_in = int(rng.integers(1, 12)), int(rng.integers(1, 90))
    k = int(rng.choice([1, 2, 5, 16, 32]))
    words, config, params, beats, bits, row_lengths = make_layer(rng, n_out, n_in, k,
                                                                 float(rng.choice([0.03, 0.2, 0.9])))
    obs = run_path(words, config, seed=seed)
    assert obs["error"] == 0
    assert obs["params"] == params
    assert obs["beats"] == beats
    # The decoder takes two codes a step; a row with an odd count takes its last alone.
    assert obs["symbols"] == sum(row_lengths)
    assert obs["busy"] == sum(reference_steps(int(n), False, MAX_LEN) for n in row_lengths)
    assert obs["bits"] == bits
    assert obs["words_left"] >= 0      # only the stream's padding may remain


def test_one_symbol_per_cycle_without_stalls():
    rng = np.random.default_rng(11)
    n_out = 8
    words, config, params, beats, *_ = make_layer(rng, n_out, 200, 32, 0.3)
    obs = run_path(words, config, seed=1, word_gap=0, params_stall=0, beats_stall=0)
    assert obs["beats"] == beats
    # Rows back to back: each costs its symbols plus two cycles (header word, decoder latency).
    span = obs["beat_cycles"][-1] - obs["beat_cycles"][0] + 1
    assert span == len(beats) + 2 * (n_out - 1)
