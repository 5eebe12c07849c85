"""hw.index_path.IndexPath: row stream -> row parameters + one codebook lookup per index.

Golden model: :func:`model.codecs.index_packing.unpack_indices` (and its inverse
``pack_indices`` builds the stream).  The row stream comes with random valid
gaps; ``params`` and ``beats`` get random ready stalls.  Every parameter
transfer and every beat (index, subvector, first, last) is compared, in order
and in number, against the golden model; the row's parameters must transfer
before its first beat.  Also: index widths 1..9 (most do not divide 32), rows of
one sub-vector, garbage in the padding bits and in the unused top of the
requantization word, several layers in a row, the bad-index error (output
stops exactly at the bad index, nothing is read or emitted afterwards), and
one beat per cycle within a row when nothing stalls.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.index_path import IndexPath
from hw.layouts import RowParams, beat_layout
from model.codecs.index_packing import pack_indices, unpack_indices
from model.contract.ints import ceil_div
from model.contract.layout import WORD_BITS

from hwsim import Mutant, Source, budget, simulate, stalls, start_row_source, unpack


def make_layer(rng, b: int, rows: int, subvectors: int, codebook_size: int, *, garbage=True,
               bad_at=None):
    """Build one layer's row stream.  Returns (config, words, expected params, expected beats).

    ``bad_at`` = (row, subvector) puts an index >= codebook_size there.
    """
    idx = rng.integers(0, codebook_size, size=(rows, subvectors))
    if bad_at is not None:
        idx[bad_at] = rng.integers(codebook_size, 1 << b)
    packed = pack_indices(idx, b)
    n_words = packed.shape[1]
    assert n_words == ceil_div(subvectors * b, WORD_BITS)
    used = subvectors * b - (n_words - 1) * WORD_BITS   # bits used in each row's last word
    if garbage and used < WORD_BITS:
        # padding bits must be ignored (even if they look like a bad index)
        packed[:, -1] |= (rng.integers(0, 1 << 32, size=rows, dtype=np.uint64).astype(np.uint32)
                          >> np.uint32(used)) << np.uint32(used)
    golden = unpack_indices(packed, b, subvectors)
    assert np.array_equal(golden, idx)

    words, params, beats = [], [], []
    for r in range(rows):
        bias = int(rng.integers(-(1 << 31), 1 << 31))
        mult = int(rng.integers(0, 1 << 16))
        shift = int(rng.integers(0, 64))
        act = int(rng.integers(-512, 512)) if garbage else 0     # the activation parameter, two's complement
        words += [bias & 0xFFFFFFFF, mult | shift << 16 | (act & 0x3FF) << 22]
        words += [int(w) for w in packed[r]]
        params.append({"bias": bias, "mult": mult, "shift": shift, "act": act})
        for s in range(subvectors):
            beats.append({"index": int(golden[r, s]), "subvector": s, "first": int(s == 0),
                          "last": int(s == subvectors - 1), "row": r})
    config = {"rows": rows, "subvectors": subvectors, "index_words": n_words,
              "codebook_size": codebook_size, "width": b, "check": 1}
    return config, words, params, beats


def run_index_path(dut, layers, *, seed: int, word_gap=0.3, params_stall=0.3, beats_stall=0.3,
                   tail=30):
    """Run ``layers`` (list of (config, words)) one after another; return observations.

    Each layer: hold the configuration, pulse ``start`` for one cycle, then stream
    the words until the layer's beats are out and ``busy`` falls (or ``error`` rises).
    """
    b = dut._max
    rng = np.random.default_rng(seed)
    blay, play = beat_layout(b), RowParams
    obs = {"params": [], "beats": [], "errors": [], "error_cycle": None, "cycles": [], "beat_cycles": []}

    async def bench(ctx):
        for li, (config, words) in enumerate(layers):
            n_cycles = budget(len(words) + config["rows"] * (config["subvectors"] + 1),
                              word_gap, params_stall, beats_stall)
            gaps = stalls(rng, n_cycles, word_gap)
            pst = stalls(rng, n_cycles, params_stall)
            bst = stalls(rng, n_cycles, beats_stall)
            src = await start_row_source(ctx, dut, config, words, gaps)
            params, beats, beat_cycles = [], [], []
            held = None
            finished = False
            for cycle in range(n_cycles):
                src.drive(ctx)
                ctx.set(dut.params.ready, int(not pst[cycle]))
                ctx.set(dut.beats.ready, int(not bst[cycle]))
                if ctx.get(dut.error):
                    obs["error_cycle"] = cycle
                    break
                params_before = len(params)
                src.sample(ctx)
                if ctx.get(dut.params.valid) and not pst[cycle]:
                    params.append(unpack(play, int(ctx.get(dut.params.payload.as_value()))))
                if ctx.get(dut.beats.valid):
                    beat = unpack(blay, int(ctx.get(dut.beats.payload.as_value())))
                    if held is not None and beat != held:
                        obs["errors"].append(f"layer {li} cycle {cycle}: beat changed while stalled")
                    if not bst[cycle]:
                        if beat["first"] and params_before <= sum(bt["last"] for bt in beats):
                            obs["errors"].append(f"layer {li} cycle {cycle}: first beat of a row "
                                                 "before that row's parameters")
                        beats.append(beat)
                        beat_cycles.append(cycle)
                        held = None
                    else:
                        held = beat
                elif held is not None:
                    obs["errors"].append(f"layer {li} cycle {cycle}: beat withdrawn")
                await ctx.tick()
                if src.done and not ctx.get(dut.busy):
                    finished = True
                    break
            obs["params"].append(params)
            obs["beats"].append(beats)
            obs["beat_cycles"].append(beat_cycles)
            obs["taken"] = src.pos
            if obs["error_cycle"] is not None:
                # Error: nothing may be read or emitted any more, whatever is offered.
                for cycle in range(tail):
                    src.drive(ctx)
                    ctx.set(dut.params.ready, 1)
                    ctx.set(dut.beats.ready, 1)
                    if not ctx.get(dut.error):
                        obs["errors"].append("error dropped")
                    if ctx.get(dut.words.ready):
                        obs["errors"].append("word taken after error")
                    if ctx.get(dut.params.valid):
                        obs["errors"].append("params offered after error")
                    if ctx.get(dut.beats.valid):
                        obs["errors"].append("beat offered after error")
                    await ctx.tick()
                return
            if not finished:
                raise AssertionError(f"layer {li}: timeout after {n_cycles} cycles: {src.pos}/{len(words)} "
                                     f"words, {len(beats)} beats, {len(params)} params, "
                                     f"busy={ctx.get(dut.busy)}")
            # idle: a few cycles with everything ready, nothing may come out
            for _ in range(5):
                ctx.set(dut.words.valid, 0)
                ctx.set(dut.params.ready, 1)
                ctx.set(dut.beats.ready, 1)
                if ctx.get(dut.params.valid) or ctx.get(dut.beats.valid) or ctx.get(dut.busy):
                    obs["errors"].append(f"layer {li}: activity after the layer finished")
                await ctx.tick()

    simulate(dut, bench)
    return obs


def strip_row(beats):
    return [{k: v for k, v in bt.items() if k != "row"} for bt in beats]


def check_layers(obs, expected):
    assert obs["errors"] == []
    assert obs["error_cycle"] is None
    for li, (params, beats) in enumerate(expected):
        assert len(obs["params"][li]) == len(params), f"layer {li}: parameter count"
        assert obs["params"][li] == params, f"layer {li}: parameters"
        assert len(obs["beats"][li]) == len(beats), f"layer {li}: beat count"
        assert obs["beats"][li] == strip_row(beats), f"layer {li}: beats"


@pytest.mark.parametrize("b", range(1, 10))
def test_index_path_random(b):
    rng = np.random.default_rng(40 + b)
    layers, expected = [], []
    # three layers back to back: random sizes, a full-size codebook, one-index rows
    for rows, subvectors, cb in [(7, int(rng.integers(12, 40)), int(rng.integers(1, (1 << b) + 1))),
                                 (5, int(rng.integers(1, 12)), 1 << b),
                                 (3, 1, int(rng.integers(1, (1 << b) + 1)))]:
        config, words, params, beats = make_layer(rng, b, rows, subvectors, cb)
        layers.append((config, words))
        expected.append((params, beats))
    obs = run_index_path(IndexPath(b), layers, seed=b)
    check_layers(obs, expected)


@pytest.mark.parametrize("b", [2, 4, 8, 16])
def test_index_path_whole_units(b):
    """``unit`` (the widths' and the word's common power of two, EngineConfig.entry_bits_unit) changes
    nothing an index path does: the same parameters and beats, on the same cycles, as with ``unit = 1``,
    under stalls; a ``unit`` the width is not a multiple of does not (so the comparison can fail)."""
    from math import gcd
    rng = np.random.default_rng(70 + b)
    layers, expected = [], []
    for rows, subvectors in [(6, int(rng.integers(12, 40))), (8, 1), (5, 3), (4, int(rng.integers(1, 12)))]:
        config, words, params, beats = make_layer(rng, b, rows, subvectors, int(rng.integers(1, (1 << b) + 1)))
        layers.append((config, words))
        expected.append((params, beats))
    unit = gcd(WORD_BITS, b)
    whole = run_index_path(IndexPath(b, unit=unit), layers, seed=b)
    check_layers(whole, expected)
    assert whole["beat_cycles"] == run_index_path(IndexPath(b), layers, seed=b)["beat_cycles"]
    try:
        wrong = run_index_path(IndexPath(b, unit=2 * unit), layers, seed=b)
    except AssertionError:   # it hung
        return
    assert wrong["errors"] or wrong["beats"] != [strip_row(beats) for _, beats in expected]


@pytest.mark.parametrize("profile", [(0.0, 0.8, 0.0), (0.8, 0.0, 0.0), (0.0, 0.0, 0.8), (0.6, 0.6, 0.6)])
@pytest.mark.parametrize("b", [3, 9])
def test_index_path_stall_profiles(b, profile):
    """One side much slower than the others: (word gaps, params stalls, beats stalls)."""
    word_gap, params_stall, beats_stall = profile
    rng = np.random.default_rng(int(100 * sum(profile)) + b)
    layers, expected = [], []
    for rows, subvectors in [(6, 13), (8, 1), (4, 4)]:
        config, words, params, beats = make_layer(rng, b, rows, subvectors, int(rng.integers(1, (1 << b) + 1)))
        layers.append((config, words))
        expected.append((params, beats))
    obs = run_index_path(IndexPath(b), layers, seed=b, word_gap=word_gap, params_stall=params_stall,
                         beats_stall=beats_stall)
    check_layers(obs, expected)


@pytest.mark.parametrize("b", [1, 5, 8, 9])
def test_index_path_one_subvector_rows(b):
    """Rows of a single index: first and last on the same beat, one index word per row."""
    rng = np.random.default_rng(70 + b)
    config, words, params, beats = make_layer(rng, b, 12, 1, (1 << b) - (b > 1))
    obs = run_index_path(IndexPath(b), [(config, words)], seed=b)
    check_layers(obs, [(params, beats)])
    assert all(bt["first"] and bt["last"] for bt in obs["beats"][0])


def row_gap(b: int, subvectors: int) -> int:
    """Bubbles between two rows' beats when nothing stalls.

    Word ``j >= 1`` of a row is taken once fewer than ``b + 32`` bits are left
    (a word ahead of the one being emitted), and at most one word per cycle:
    then ``max(j, floor(32 (j - 1) / b))`` indices are out.  ``k`` indices
    remain once the last word is in.  The next row's bias, requantization and
    first index word take 3 cycles (one word each), and the first word may load
    in the cycle the last index goes out, so the rows overlap fully when ``k >= 3``.
    """
    n_words = ceil_div(subvectors * b, WORD_BITS)
    j = n_words - 1
    k = subvectors - (max(j, (WORD_BITS * (j - 1)) // b) if j else 0)
    return max(0, 3 - k)


@pytest.mark.parametrize("b,subvectors", [(3, 40), (8, 33), (9, 30), (7, 64), (5, 20), (1, 100), (2, 50), (16, 3), (8, 9),
                                          (4, 1), (9, 3)])
def test_index_path_one_index_per_cycle(b, subvectors):
    """Nothing stalls: within a row, beats come on consecutive cycles (words load ahead), and
    between rows there are exactly ``row_gap`` bubbles (0 when the row's tail is long enough)."""
    rng = np.random.default_rng(b)
    rows = 4
    config, words, params, beats = make_layer(rng, b, rows, subvectors, 1 << b)
    obs = run_index_path(IndexPath(b), [(config, words)], seed=0, word_gap=0, params_stall=0,
                         beats_stall=0)
    check_layers(obs, [(params, beats)])
    cycles = obs["beat_cycles"][0]
    for r in range(rows):
        row = cycles[r * subvectors:(r + 1) * subvectors]
        assert row == list(range(row[0], row[0] + subvectors)), f"row {r} has bubbles: {row}"
    gaps = [cycles[r * subvectors] - cycles[r * subvectors - 1] - 1 for r in range(1, rows)]
    assert gaps == [row_gap(b, subvectors)] * (rows - 1)


@pytest.mark.parametrize("b,rows,subvectors,bad_at", [
    (2, 4, 9, (0, 0)),     # very first index
    (7, 5, 11, (2, 10)),   # last index of a middle row
    (9, 6, 5, (5, 3)),     # inside the last row
    (4, 8, 1, (3, 0)),     # one-index rows
])
def test_index_path_bad_index(b, rows, subvectors, bad_at):
    rng = np.random.default_rng(b * 7 + rows)
    cb = int(rng.integers(1, 1 << b))   # strictly below 2**b so a bad index exists
    config, words, params, beats = make_layer(rng, b, rows, subvectors, cb, bad_at=bad_at)
    obs = run_index_path(IndexPath(b), [(config, words)], seed=3)
    assert obs["errors"] == []
    assert obs["error_cycle"] is not None, "error never raised"
    n_good = bad_at[0] * subvectors + bad_at[1]
    assert obs["beats"][0] == strip_row(beats[:n_good]), "beats before the bad index"
    # parameters: at least those of the bad row, never more than the rows in the stream
    assert bad_at[0] + 1 <= len(obs["params"][0]) <= rows
    assert obs["params"][0] == params[:len(obs["params"][0])]
    assert obs["taken"] <= len(words)


def test_index_path_start_clears_error():
    b = 4
    rng = np.random.default_rng(5)
    bad_cfg, bad_words, _, _ = make_layer(rng, b, 4, 6, 10, bad_at=(0, 2))
    good_cfg, good_words, params, beats = make_layer(rng, b, 3, 5, 16)
    dut = IndexPath(b)
    state = {}

    async def bench(ctx):
        for name, value in bad_cfg.items():
            ctx.set(getattr(dut.config, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        src = Source(dut.words, bad_words)
        ctx.set(dut.params.ready, 1)
        ctx.set(dut.beats.ready, 1)
        for _ in range(40):
            src.drive(ctx)
            src.sample(ctx)
            await ctx.tick()
        assert ctx.get(dut.error)
        ctx.set(dut.words.valid, 0)
        # new layer
        for name, value in good_cfg.items():
            ctx.set(getattr(dut.config, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        state["error_after_start"] = bool(ctx.get(dut.error))
        src = Source(dut.words, good_words)
        got = []
        for _ in range(100):
            src.drive(ctx)
            src.sample(ctx)
            if ctx.get(dut.beats.valid):
                got.append(unpack(beat_layout(b), int(ctx.get(dut.beats.payload.as_value()))))
            await ctx.tick()
        state["beats"] = got

    simulate(dut, bench)
    assert not state["error_after_start"]
    assert state["beats"] == strip_row(beats)


def test_index_path_mutant_is_caught():
    """An index path whose `last` flag never rises (or whose indices are off by one bit) fails."""
    b = 5
    rng = np.random.default_rng(1)
    config, words, params, beats = make_layer(rng, b, 3, 7, 32)
    layout = beat_layout(b)
    last_bit = 1 << layout["last"].offset
    dut = Mutant(IndexPath(b), {"beats.payload": lambda p: p & ~last_bit})
    obs = run_index_path(dut, [(config, words)], seed=1)
    with pytest.raises(AssertionError):
        check_layers(obs, [(params, beats)])
    dut = Mutant(IndexPath(b), {"beats.payload": lambda p: p ^ 1})
    obs = run_index_path(dut, [(config, words)], seed=1)
    with pytest.raises(AssertionError):
        check_layers(obs, [(params, beats)])
