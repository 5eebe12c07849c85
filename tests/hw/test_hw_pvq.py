"""hw.pvq.PvqDotProduct: the multiplier-free PVQ dot-product unit, against model.golden.pvq.

Golden model: :func:`model.golden.pvq.pvq_unit_run` (accumulators, per-vector
steps/cycles/adds/merges) and :func:`model.codecs.pvq.pvq_decode_steps` (the
walker's registers, step by step).  ``operands`` gets random valid gaps (with
garbage payloads in the gaps); ``result`` is always-ready like MacLanes', so
it has no ready to stall, and ``params`` is served like the engine's
row-parameter FIFO (the head row stays offered until consumed).  Checked per
vector: the transfer cycle (ready exactly when idle or in a vector's last busy
cycle), the busy window, the step/add/merge strobes in it, the ``mul`` strobe;
per row: the result and its fixed latency; on top, 32-bit wrap at both ends,
the walker's registers against pvq_decode_steps, every index of small
pyramids, out-of-range indices (error, stop, clear, resume), the back-to-back
rate (one pulse per cycle: a vector of K pulses is busy exactly K cycles), that
the only multiplier in the netlist is the scale multiply, and, on the engine,
that a job of PVQ layers costs its pulses plus a fixed cost per layer and image.
"""
from __future__ import annotations

import re
from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Const
from amaranth.lib import data

from hw.layouts import RowParams
from hw.pvq import PvqDotProduct, PvqEvents, vector_layout
from model.codecs.pvq import PVQError, pvq_bits, pvq_count, pvq_decode_steps, pvq_encode
from model.codecs.vectors import random_vectors
from model.contract.fixedpoint import wrap_acc
from model.contract.ints import ceil_div
from model.contract.pyramid import pvq_sum_bits
from model.golden.pvq import (LOAD_CYCLES, RESULT_LATENCY, PvqRow, index_in_range, pvq_unit_run, pvq_unit_timeline,
                              pvq_unit_vector, vector_cycles)
from model.program.synthetic import random_lowered
from model.program.writer import build_program

from engine_cases import assert_bit_exact, run_both
from hwsim import Mutant, Source, pack, pack_lanes, sample_dot_product, simulate, stalls

#: Valid gaps on ``operands`` in the random tests.
GAP = 0.3
#: Cycles a run keeps going after the last result, to catch stray outputs.
DRAIN = 12
#: Rates measured by test_back_to_back_rate per (n, K), printed in its output (pytest -s).
MEASURED = {}


# ---------------------------------------------------------------------------
# Stimulus


def edge_vectors(n: int, K: int) -> list[list[int]]:
    """Pyramid points that stress the walk: all pulses on the first or the last coordinate, each sign."""
    out = []
    for pos in (0, n - 1):
        for s in (1, -1):
            y = [0] * n
            y[pos] = s * K
            out.append(y)
    return out


def make_rows(rng, n: int, K: int, n_rows: int, *, max_vecs: int = 5, scale_bits: int = 8):
    """Random rows; about half get a bias that makes the accumulator wrap (past +2**31 or -2**31)."""
    v = pvq_count(n, K)
    edges = [pvq_encode(y) for y in edge_vectors(n, K)]
    rows = []
    for r in range(n_rows):
        count = int(rng.integers(1, max_vecs + 1)) if r % 4 else 1
        idx = [int(rng.integers(0, v)) if rng.random() < 0.8 else int(rng.choice(edges)) for _ in range(count)]
        kind = rng.random()
        if kind < 0.15:       # the largest sums: every activation at an int8 extreme
            acts = np.full((count, n), -128 if kind < 0.08 else 127)
        else:
            acts = rng.integers(-128, 128, size=(count, n))
        scales = [int(rng.integers(0, 1 << scale_bits)) if rng.random() < 0.8 else (1 << scale_bits) - 1
                  for _ in range(count)]
        contrib = sum(s * pvq_unit_vector(i, a, n, K).dot for i, s, a in zip(idx, scales, acts))
        near = rng.random()
        if near < 0.5 and contrib > 0:
            bias = (1 << 31) - 1 - int(rng.integers(0, contrib))          # wraps past +2**31
        elif near < 0.5 and contrib < 0:
            bias = -(1 << 31) + int(rng.integers(0, -contrib))            # wraps past -2**31
        else:
            bias = int(rng.integers(-(1 << 31), 1 << 31))
        rows.append(PvqRow(bias, idx, scales, acts, int(rng.integers(0, 1 << 16)), int(rng.integers(0, 64))))
    return rows


def vector_words(dut, rows):
    """Packed ``operands`` payloads in stream order."""
    lay = vector_layout(dut.n, dut.index_bits, dut.scale_bits)
    words = []
    for row in rows:
        count = len(row.indices)
        for j, (i, s, a) in enumerate(zip(row.indices, row.scales, row.activations)):
            words.append(pack(lay, index=i, scale=s, activations=pack_lanes(a), first=int(j == 0),
                              last=int(j == count - 1)))
    return words


# ---------------------------------------------------------------------------
# Simulation


def run_unit(dut, rows, ks, *, seed: int, gap: float = GAP, probe: bool = False, words=None,
             clear_at=None, stop_after_error: int | None = None, gaps=None):
    """Drive ``rows`` through ``dut`` and record every strobe, transfer and result.

    ``rows`` give the params queue and the expected result count; ``words``
    (default: the rows' vectors) are the ``operands`` transfers, and ``ks`` the K
    offered with each (an int for all).  ``gaps`` (default: random with rate
    ``gap``) withholds ``valid`` per cycle.  ``clear_at`` is a set of cycles in
    which ``clear`` is pulsed.  With ``stop_after_error`` the run ends that many
    cycles after ``error`` rises.
    """
    words = vector_words(dut, rows) if words is None else words
    ks = [ks] * len(words) if isinstance(ks, int) else list(ks)
    rng = np.random.default_rng(seed)
    budget = int((sum(dut.n + k + 2 for k in ks) + 20) / (1 - gap)) + 200
    gaps = stalls(rng, budget, gap) if gaps is None else gaps
    src = Source(dut.operands, words, gaps)
    w = dut.walker
    obs = {k: [] for k in ("ready", "step", "add", "merge", "mul", "busy", "error",
                           "transfers", "results", "result_cycles", "trace", "params_cycles")}
    obs["errors"] = []
    payload_bits = len(dut.operands.payload.as_value())

    async def bench(ctx):
        queue = deque(rows)
        error_cycle = None
        for cycle in range(budget):
            ctx.set(dut.clear, int(clear_at is not None and cycle in clear_at))
            src.drive(ctx)
            if src.offering:
                ctx.set(dut.config.k, ks[src.pos])
            else:
                ctx.set(dut.operands.payload.as_value(), int(rng.integers(0, 1 << 62)) << (payload_bits - 62)
                        if payload_bits > 62 else int(rng.integers(0, 1 << payload_bits)))
                ctx.set(dut.config.k, int(rng.integers(0, dut.k_max + 1)))   # only sampled with a transfer
            if queue:
                head = queue[0]
                ctx.set(dut.params.valid, 1)
                ctx.set(dut.params.payload.as_value(),
                        pack(RowParams, bias=head.bias, mult=head.mult, shift=head.shift))
            else:
                ctx.set(dut.params.valid, 0)
                ctx.set(dut.params.payload.as_value(), int(rng.integers(0, 1 << 54)))
            for name in ("ready", "step", "add", "merge", "mul", "busy", "error"):
                sig = (dut.operands.ready if name == "ready" else dut.error if name == "error"
                       else getattr(dut.events, name))
                obs[name].append(int(ctx.get(sig)))
            if src.sample(ctx):
                obs["transfers"].append(cycle)
            if probe and obs["step"][-1]:
                mag, neg = ctx.get(w.mag), ctx.get(w.negative)
                value = (-mag if neg else mag) if ctx.get(w.resolve) else None
                obs["trace"].append((dut.n - 1 - ctx.get(w.row), mag, ctx.get(w.pulses), ctx.get(w.rem),
                                     ctx.get(w.block), value))
            if sample_dot_product(ctx, dut, queue, obs, cycle):
                obs["params_cycles"].append(cycle)
            await ctx.tick()
            if obs["error"][-1] and error_cycle is None:
                error_cycle = cycle
            if stop_after_error is not None and error_cycle is not None and cycle >= error_cycle + stop_after_error:
                return
            if stop_after_error is None and src.done and len(obs["results"]) == len(rows):
                if cycle >= obs["result_cycles"][-1] + DRAIN:
                    return
        if stop_after_error is None:
            raise AssertionError(f"timeout: {src.pos}/{len(words)} vectors, {len(obs['results'])}/{len(rows)} results")

    simulate(dut, bench)
    return obs


def check(obs, rows, gold, *, start: int = 0):
    """Every result, strobe and handshake against the golden run (vectors from ``obs['transfers'][start:]``)."""
    assert obs["errors"] == []
    assert not any(obs["error"])
    assert obs["results"] == [{"acc": a, "mult": m, "shift": s, "act": 0} for a, m, s in gold.results]
    assert len(obs["params_cycles"]) == len(rows)
    vecs = gold.vectors
    transfers = obs["transfers"][start:]
    assert len(transfers) == len(vecs)
    ends = [t + v.cycles for t, v in zip(transfers, vecs)]
    for j, (t, d, v) in enumerate(zip(transfers, ends, vecs)):
        window = slice(t + 1, d + 1)
        assert obs["busy"][window] == [1] * v.cycles, f"vector {j}: busy"
        assert sum(obs["step"][window]) == v.steps, f"vector {j}: steps"
        assert obs["step"][window] == [1] * v.steps + [0] * (v.cycles - v.steps), f"vector {j}: no bubbles"
        assert obs["add"][window] == obs["step"][window], f"vector {j}: one pulse per step"
        assert sum(obs["add"][window]) == v.adds, f"vector {j}: adds"
        assert sum(obs["merge"][window]) == v.merges, f"vector {j}: merges"
        assert obs["mul"][d + 1] == 1, f"vector {j}: mul strobe"
        # ready: low while decoding, high from the last busy cycle until the next transfer
        assert obs["ready"][t + 1:d] == [0] * (v.cycles - 1), f"vector {j}: ready while busy"
        nxt = transfers[j + 1] if j + 1 < len(transfers) else d + 1
        assert nxt >= d, f"vector {j + 1} taken before vector {j} finished"
        assert obs["ready"][d:nxt + 1] == [1] * (nxt + 1 - d), f"vector {j}: ready after"
    first = transfers[0] if transfers else 0
    for name, total in (("busy", gold.cycles), ("step", gold.steps), ("add", gold.adds),
                        ("merge", gold.merges), ("mul", gold.muls)):
        assert sum(obs[name][first:]) == total, name
    row_last = np.cumsum([len(r.indices) for r in rows]) - 1
    assert obs["result_cycles"] == [ends[j] + RESULT_LATENCY for j in row_last]
    assert obs["params_cycles"] == [c - 1 for c in obs["result_cycles"]]


def expected_trace(rows, n, ks):
    flat = [i for row in rows for i in row.indices]
    ks = [ks] * len(flat) if isinstance(ks, int) else ks
    return [tuple(st[:5]) + (st.value,) for i, k in zip(flat, ks) for st in pvq_decode_steps(i, n, k)]


# ---------------------------------------------------------------------------
# Tests

RANDOM_CASES = [(n, k_max, K) for n, k_max in ((2, 12), (4, 8), (8, 6)) for K in (1, k_max // 2, k_max)]


@pytest.mark.parametrize("n,k_max,K", RANDOM_CASES)
def test_random_rows(n, k_max, K):
    seed = 100 * n + K
    rng = np.random.default_rng(seed)
    rows = make_rows(rng, n, K, 24)
    gold = pvq_unit_run(rows, n, K)
    raw = [row.bias + sum(s * pvq_unit_vector(i, a, n, K).dot for i, s, a in
                          zip(row.indices, row.scales, row.activations)) for row in rows]
    assert any(x >= 1 << 31 for x in raw) and any(x < -(1 << 31) for x in raw)   # both wraps exercised
    # one spare index bit, so out-of-range indices are representable (and absent here)
    dut = PvqDotProduct(n, k_max, pvq_bits(n, k_max) + 1)
    obs = run_unit(dut, rows, K, seed=seed, probe=True)
    check(obs, rows, gold)
    assert gold.adds == K * len(gold.vectors)
    assert obs["trace"] == expected_trace(rows, n, K)


@pytest.mark.parametrize("n,k_max", [(1, 3), (16, 4)])
def test_extreme_dimensions(n, k_max):
    """The smallest (one coordinate: only the sign) and the largest PVQ dimension."""
    for K in (0, 1, k_max):
        rng = np.random.default_rng(n * 10 + K)
        rows = make_rows(rng, n, K, 10, max_vecs=3)
        obs = run_unit(PvqDotProduct(n, k_max), rows, K, seed=K, probe=True)
        check(obs, rows, pvq_unit_run(rows, n, K))
        assert obs["trace"] == expected_trace(rows, n, K)


@pytest.mark.parametrize("n,k_max", [(2, 5), (3, 4)])
def test_every_index_small(n, k_max):
    """Every index of P(n, K) for every K <= k_max, K changing per row within one run."""
    rng = np.random.default_rng(n)
    rows, ks, row_k = [], [], []
    for K in range(k_max + 1):
        indices = list(range(pvq_count(n, K)))
        while indices:
            count = min(len(indices), int(rng.integers(1, 5)))
            take, indices = indices[:count], indices[count:]
            acts = rng.integers(-128, 128, size=(count, n))
            rows.append(PvqRow(int(rng.integers(-(1 << 31), 1 << 31)), take,
                               [int(s) for s in rng.integers(0, 256, size=count)], acts, 7, 3))
            ks += [K] * count
            row_k.append(K)
    dut = PvqDotProduct(n, k_max)
    obs = run_unit(dut, rows, ks, seed=n, probe=True)
    # the golden run, row by row with each row's K
    runs = [pvq_unit_run([row], n, K) for row, K in zip(rows, row_k)]
    gold = runs[0]._replace(results=[r for g in runs for r in g.results],
                            vectors=[v for g in runs for v in g.vectors],
                            **{f: sum(getattr(g, f) for g in runs) for f in ("steps", "cycles", "adds",
                                                                              "merges", "muls")})
    check(obs, rows, gold)
    assert obs["trace"] == expected_trace(rows, n, ks)
    assert gold.adds == sum(ks)


@pytest.mark.parametrize("n,k_max,K", [(8, 8, 8), (4, 3, 3), (8, 2, 2), (16, 4, 1)])
def test_back_to_back_rate(n, k_max, K):
    """No gaps: vectors are taken exactly as pvq_unit_timeline says, and the unit adds one pulse in every
    cycle after the first load (the lenet300 PVQ programs are (4, 3, 3) and (8, 2, 2))."""
    rng = np.random.default_rng(5 + n + K)
    rows = make_rows(rng, n, K, 30)
    gold = pvq_unit_run(rows, n, K)
    obs = run_unit(PvqDotProduct(n, k_max), rows, K, seed=5, gap=0.0)
    check(obs, rows, gold)
    t0 = obs["transfers"][0]
    transfers, lasts = pvq_unit_timeline([v.cycles for v in gold.vectors], start=t0)
    assert obs["transfers"] == transfers
    assert t0 == 0 and sum(obs["busy"][: t0 + LOAD_CYCLES]) == 0   # an idle unit spends one cycle loading
    span = lasts[-1] - t0 + 1   # the load cycle and every busy cycle
    assert span == LOAD_CYCLES + gold.cycles
    steps, busy, adds = sum(obs["step"]), sum(obs["busy"]), sum(obs["add"])
    MEASURED[(n, K)] = dict(pulses_per_busy_cycle=adds / busy, pulses_per_cycle=adds / span,
                            cycles_per_vector=busy / len(gold.vectors), vectors=len(gold.vectors))
    print("measured:", MEASURED)
    assert busy == gold.cycles == K * len(gold.vectors) == adds == steps   # one pulse in every busy cycle
    assert obs["busy"][t0 + 1:lasts[-1] + 1] == [1] * gold.cycles        # and no idle cycle between vectors


@pytest.mark.parametrize("seed", range(4))
def test_one_pulse_per_cycle_random_layer(seed):
    """The rate property, measured on the RTL alone: with random n, K, rows and operand gaps, a
    vector of K pulses is busy exactly max(K, 1) cycles (whatever its zeros and last coordinate),
    adds one pulse in each, and the unit is ready again in its last busy cycle."""
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.choice([1, 2, 4, 8, 16]))
    k_max = int(rng.integers(1, 9 if n < 16 else 5))
    K = int(rng.integers(0, k_max + 1))
    rows = make_rows(rng, n, K, 12)
    obs = run_unit(PvqDotProduct(n, k_max), rows, K, seed=seed, gap=float(rng.uniform(0.0, 0.6)))
    cycles = max(K, 1)
    transfers = obs["transfers"]
    for j, t in enumerate(transfers):
        # busy from the cycle after the transfer for exactly `cycles` cycles, then ready at once
        assert obs["busy"][t + 1:t + 1 + cycles] == [1] * cycles, f"vector {j}: n={n} K={K}"
        assert sum(obs["add"][t + 1:t + 1 + cycles]) == K
        assert obs["ready"][t + cycles] == 1
        nxt = transfers[j + 1] if j + 1 < len(transfers) else len(obs["busy"])
        assert not any(obs["busy"][t + 1 + cycles:nxt + 1]), f"vector {j}: busy past {cycles} cycles"
    assert sum(obs["busy"]) == cycles * len(transfers) and sum(obs["add"]) == K * len(transfers)
    check(obs, rows, pvq_unit_run(rows, n, K))


def test_out_of_range_index_stops_and_clear_resumes():
    """An index >= V(n, K) (the boundary, the largest field value) raises error, stops the unit; clear resumes."""
    n, k_max = 4, 5
    index_bits = pvq_bits(n, k_max) + 1
    for K, bad_index in ((2, pvq_count(4, 2)), (k_max, pvq_count(4, k_max)), (3, (1 << index_bits) - 1)):
        assert not index_in_range(bad_index, n, K)
        with pytest.raises(PVQError):   # the golden twin refuses what the RTL flags
            pvq_unit_vector(bad_index, [0] * n, n, K)
        rng = np.random.default_rng(K)
        good = make_rows(rng, n, K, 4, max_vecs=3)
        bad_row = make_rows(rng, n, K, 1, max_vecs=1)[0]
        bad_row = PvqRow(bad_row.bias, [3 % pvq_count(n, K), bad_index, 0], [1, 2, 3],
                         rng.integers(-128, 128, size=(3, n)))
        after = make_rows(rng, n, K, 3, max_vecs=3)
        dut = PvqDotProduct(n, k_max, index_bits)
        words = vector_words(dut, good + [bad_row] + after)
        n_good = sum(len(r.indices) for r in good)
        obs = run_unit(dut, good + [bad_row] + after, K, seed=K, words=words, stop_after_error=40)
        gold = pvq_unit_run(good, n, K)
        bad_t = obs["transfers"][n_good + 1]
        assert len(obs["transfers"]) == n_good + 2, "nothing is taken after the bad vector"
        assert obs["error"].index(1) == bad_t + 1, "error rises the cycle after the bad transfer"
        assert all(obs["error"][bad_t + 1:])
        # stopped: no decoding, no strobes, not ready, from the cycle after the bad transfer on
        for name in ("ready", "busy", "step", "add", "merge"):
            assert not any(obs[name][bad_t + 1:]), name
        # rows finished before still deliver; the failed row gives no result and keeps its params
        assert obs["results"] == [{"acc": a, "mult": m, "shift": s, "act": 0} for a, m, s in gold.results]
        assert len(obs["params_cycles"]) == len(good)

        # clear, then the unit takes fresh rows from scratch
        rows2 = make_rows(rng, n, K, 5, max_vecs=3)
        dut = PvqDotProduct(n, k_max, index_bits)
        bad = PvqRow(0, [bad_index], [1], np.zeros((1, n), dtype=int))
        words = vector_words(dut, [bad] + rows2)
        obs = run_unit(dut, rows2, K, seed=K + 1, gap=0.0, words=words, clear_at={30})
        assert obs["error"].index(1) == obs["transfers"][0] + 1 and obs["error"][30] == 1 and obs["error"][31] == 0
        assert obs["transfers"][1] >= 31
        check({**obs, "error": obs["error"][31:]}, rows2, pvq_unit_run(rows2, n, K), start=1)


def test_k_above_k_max_is_an_error():
    """k = 6 or 7 on a k_max = 5 unit (3-bit k field): even index 0 is rejected."""
    n, k_max = 4, 5
    for bad_k in (6, 7):
        rng = np.random.default_rng(bad_k)
        good = make_rows(rng, n, 3, 2, max_vecs=2)
        dut = PvqDotProduct(n, k_max)
        bad = PvqRow(0, [0], [1], np.zeros((1, n), dtype=int))
        words = vector_words(dut, good + [bad])
        ks = [3] * (len(words) - 1) + [bad_k]
        obs = run_unit(dut, good, ks, seed=bad_k, words=words, stop_after_error=20)
        assert len(obs["transfers"]) == len(words)
        assert obs["error"].index(1) == obs["transfers"][-1] + 1
        assert not any(obs["busy"][obs["transfers"][-1] + 1:])
        assert obs["results"] == [{"acc": a, "mult": m, "shift": s, "act": 0} for a, m, s in pvq_unit_run(good, n, 3).results]


def test_clear_abandons_work_in_flight():
    """clear mid-walk, on the last coordinate's pulses, in a vector's last busy cycle, and at each stage
    of a finished row's multiply/accumulate drops it all."""
    n, k_max, K = 4, 6, 6
    rng = np.random.default_rng(9)
    one = lambda y: PvqRow(0, [pvq_encode(y)], [3], rng.integers(-128, 128, size=(1, n)))  # noqa: E731
    victims = [
        PvqRow(0, [pvq_encode([1, -2, 0, 3])] * 2, [5, 6], rng.integers(-128, 128, size=(2, n))),
        one([0, 0, 0, -K]),    # three zeros skipped in the first step, then the last coordinate's pulses
        one([K, 0, 0, 0]),
        one([K, 0, 0, 0]),
        one([K, 0, 0, 0]),
    ]
    rows2 = make_rows(rng, n, K, 4)
    dut = PvqDotProduct(n, k_max)
    words = vector_words(dut, victims)[:1] + vector_words(dut, victims[1:] + rows2)
    # Timeline (checked below); every vector is busy K = 6 cycles:
    # A taken at 0, busy 1..6, cleared at 3 (a walk step);
    # B taken at 4, busy 5..10, cleared at 7 (a pulse of its last coordinate);
    # C taken at 8, busy 9..14, mul at 15, cleared at 16 (in the accumulator stage);
    # D taken at 17, busy 18..23, cleared at 23 (its last busy cycle);
    # E taken at 24, busy 25..30, cleared at 31 (in the multiply stage).
    # Gaps keep the next vector from being offered where the clear would drop it.
    gaps = np.zeros(400, dtype=bool)
    gaps[9:17] = gaps[25:32] = True
    obs = run_unit(dut, rows2, K, seed=1, words=words, clear_at={3, 7, 16, 23, 31}, gaps=gaps, probe=True)
    assert obs["transfers"][:6] == [0, 4, 8, 17, 24, 32]
    assert obs["step"][3] == 1 and obs["busy"][4] == 0
    assert obs["step"][7] == 1 and obs["busy"][8] == 0
    assert obs["busy"][14] == 1 and obs["mul"][15] == 1 and obs["busy"][15] == 0
    assert obs["busy"][23] == 1 and obs["mul"][24] == 0
    assert obs["busy"][30] == 1 and obs["mul"][31] == 1
    # The walker restarts cleanly: B's steps before its clear, then C, D, E and the rows in full.
    trace = obs["trace"]
    assert trace[:3] == expected_trace(victims[:1], n, K)[:3]
    assert trace[3:6] == expected_trace(victims[1:2], n, K)[:3]
    assert trace[6:] == expected_trace(victims[2:] + rows2, n, K)
    check(obs, rows2, pvq_unit_run(rows2, n, K), start=5)


def netlist_ports(dut):
    """The component's port signals (always-ready ``result.ready`` is a constant and no port)."""
    out = []
    for _, _, value in dut.signature.flatten(dut):
        value = value.as_value() if isinstance(value, data.View) else value
        if not isinstance(value, Const):
            out.append(value)
    return out


@pytest.mark.parametrize("n,k_max,scale_bits", [(2, 12, 8), (8, 6, 8), (16, 4, 12)])
def test_only_multiplier_is_the_scale_multiply(n, k_max, scale_bits):
    dut = PvqDotProduct(n, k_max, scale_bits=scale_bits)
    text = rtlil.convert(dut, ports=netlist_ports(dut))
    cells = re.findall(r"cell \$mul \S+\n(.*?)\n\s*end", text, re.S)
    assert len(cells) == 1, f"{len(cells)} $mul cells"
    params = dict(re.findall(r"parameter \\(\w+) (\d+)", cells[0]))
    # the unsigned scale, zero-extended by one bit to meet the signed sum
    assert (int(params["A_WIDTH"]), int(params["B_WIDTH"])) == (scale_bits + 1, pvq_sum_bits(k_max))
    assert "scale1" in cells[0] and "sum1" in cells[0]
    for banned in ("$div", "$mod", "$divfloor", "$modfloor", "$pow"):
        assert f"cell {banned} " not in text


def test_mutants_are_caught():
    """A unit whose accumulator is off by one, or whose add strobe is stuck, fails the checks."""
    n, k_max, K = 4, 6, 4
    rows = make_rows(np.random.default_rng(2), n, K, 6)
    gold = pvq_unit_run(rows, n, K)
    for override in ({"result.payload": lambda p: p + 1}, {"events": lambda e: e | 1 << PvqEvents["add"].offset},
                     {"events": lambda e: e | 1 << PvqEvents["step"].offset}):
        obs = run_unit(Mutant(PvqDotProduct(n, k_max), override), rows, K, seed=2)
        with pytest.raises(AssertionError):
            check(obs, rows, gold)


def test_golden_twin_counts():
    """The twin's add sequence gives <y, x>, K pulse adds, and the documented cycle count, for every index."""
    rng = np.random.default_rng(0)
    for n in range(1, 6):
        for K in range(0, 6):
            for index in range(pvq_count(n, K)):
                x = rng.integers(-128, 128, size=n)
                t = pvq_unit_vector(index, x, n, K)
                assert t.adds == K and t.steps == K
                assert t.cycles == max(K, 1) == vector_cycles(index, n, K)
                assert t.merges == sum(1 for v in t.y if v)
    assert int(wrap_acc(1 << 31)) == -(1 << 31)


#: Cycles the engine spends besides the PVQ unit's pulses, per image (job header, input load, output
#: writes) and per layer and image (descriptor fetch, the first row's header, pipeline drain): about
#: 65 and 52 in these tests, whatever K is; 55 to 60 per layer and image on lenet300.
ENGINE_IMAGE_OVERHEAD, ENGINE_LAYER_OVERHEAD = 100, 80


@pytest.mark.parametrize("lanes,shapes,seed", [(4, [96, 40, 12], 0), (8, [64, 24, 10], 1), (2, [30, 17], 2)])
def test_engine_pvq_layers_add_one_pulse_per_cycle(lanes, shapes, seed):
    """On the engine (Amaranth simulator, 2 images, one layer resident in the weight SRAM and the others
    streamed, bit-exact): a job of PVQ layers takes its pulses, one per cycle, plus a fixed cost per layer
    and image; rows and sub-vectors follow each other without a lost cycle."""
    rng = np.random.default_rng(seed)
    k_max, images = 3, 2
    layers = []
    for n_in, n_out in zip(shapes[:-1], shapes[1:]):
        layer = random_lowered(rng, lanes, [n_in, n_out], 16).layers[0]
        while getattr(layer, "mode", None) != "pvq":
            layer = random_lowered(rng, lanes, [n_in, n_out], 16, pvq_k_max=k_max).layers[0]
        layers.append(layer)
    lowered = SimpleNamespace(name="pvq-rate", method="random", lanes=lanes, input_scale=1 / 127,
                              output_scale=1.0, layers=layers, info={})
    first_words = build_program(lowered, codebook_depth=16, config_max_features=128,
                                pvq_k_max=k_max).meta["layers"][0]["placement"]["words"]
    program = build_program(lowered, codebook_depth=16, config_max_features=128, pvq_k_max=k_max,
                            weight_sram_words=first_words)
    assert [l["placement"]["resident"] for l in program.meta["layers"]] == [True] + [False] * (len(layers) - 1)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, images, shapes[0]))
    golden, rtl = run_both(program, image, out_addr, out_words * images, "amaranth", latency=10)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    pulses = images * sum(l.out_features * ceil_div(l.in_features, lanes) * l.pvq_k for l in layers)
    cycles = rtl["counters"]["cycles"]
    assert rtl["counters"]["adds"] == pulses
    print(f"lanes={lanes} K={[l.pvq_k for l in layers]}: {pulses} pulses in {cycles} cycles")
    assert pulses < cycles <= pulses + images * (ENGINE_IMAGE_OVERHEAD + len(layers) * ENGINE_LAYER_OVERHEAD)
