"""hw.mac.MacLanes: lanes int8 multiplies, adder tree, 32-bit row accumulator.

Golden model: ``acc = wrap32(bias + sum over the row's beats of dot(codeword, activations))``
(:func:`model.contract.fixedpoint.wrap_acc`), with the row's ``mult``/``shift`` passed
through.  ``operands`` is always-ready, so it gets random valid bubbles (with
garbage payloads, including stray first/last bits, in the bubbles); ``params``
is served like the engine's row-parameter FIFO: the head row stays offered
until the MAC consumes it.  Checked: every result, the result count, the fixed
2-cycle latency from a row's last beat, one ``params.ready`` per row, wrap-around
at both ends, the int8 extremes (-128 * -128), rows of one beat.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from hw.layouts import RowParams, operands_layout
from hw.mac import MacLanes
from model.contract.fixedpoint import wrap_acc

from hwsim import Mutant, pack, pack_lanes, sample_dot_product, simulate, stalls

LATENCY = 2  # cycles from a row's last operand to its result


def make_rows(rng, lanes: int, n_rows: int, max_beats: int = 10):
    rows = []
    for r in range(n_rows):
        beats = int(rng.integers(1, max_beats + 1)) if r % 5 else 1
        kind = rng.random()
        if kind < 0.15:      # all extremes: the largest products
            cw = np.full((beats, lanes), -128)
            act = np.full((beats, lanes), -128 if kind < 0.08 else 127)
        else:
            cw = rng.integers(-128, 128, size=(beats, lanes))
            act = rng.integers(-128, 128, size=(beats, lanes))
        near = rng.random()
        reach = beats * lanes * 3000   # well below the typical |sum| of same-sign products
        if near < 0.25:      # wraps past +2**31
            bias = (1 << 31) - int(rng.integers(1, reach + 2))
            cw, act = np.abs(cw).clip(0, 127), np.abs(act).clip(0, 127)
        elif near < 0.5:     # wraps past -2**31
            bias = -(1 << 31) + int(rng.integers(0, reach + 1))
            cw, act = np.abs(cw).clip(0, 127), -np.abs(act)
        else:
            bias = int(rng.integers(-(1 << 31), 1 << 31))
        mult, shift = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 64))
        acc = int(wrap_acc(bias + int((cw.astype(np.int64) * act).sum())))
        rows.append({"cw": cw, "act": act, "bias": bias, "mult": mult, "shift": shift, "acc": acc})
    return rows


def run_mac(dut, rows, *, seed: int, bubble: float = 0.35):
    lanes = dut._lanes
    rng = np.random.default_rng(seed)
    olay = operands_layout(lanes)
    ops = []   # (packed operands, row index or None) one per transfer
    for r, row in enumerate(rows):
        n = len(row["cw"])
        for k in range(n):
            ops.append((pack(olay, codeword=pack_lanes(row["cw"][k]), activations=pack_lanes(row["act"][k]),
                             first=int(k == 0), last=int(k == n - 1)), r))
    n_cycles = int(len(ops) / (1 - bubble)) * 2 + 40
    gaps = stalls(rng, n_cycles, bubble)
    garbage = rng.integers(0, 1 << olay.size, size=n_cycles, dtype=np.uint64) if olay.size < 64 else None
    obs = {"results": [], "result_cycles": [], "last_cycles": [], "params_ready": 0, "errors": []}

    async def bench(ctx):
        pos = 0
        queue = deque(rows)
        for cycle in range(n_cycles):
            if pos < len(ops) and not gaps[cycle]:
                word, r = ops[pos]
                ctx.set(dut.operands.valid, 1)
                ctx.set(dut.operands.payload.as_value(), word)
                if ops[pos][0] >> olay["last"].offset & 1:
                    obs["last_cycles"].append(cycle)
                pos += 1
            else:
                ctx.set(dut.operands.valid, 0)
                g = int(garbage[cycle]) if garbage is not None else int(rng.integers(0, 1 << 62)) << 8 | cycle
                ctx.set(dut.operands.payload.as_value(), g)
            if queue:
                head = queue[0]
                ctx.set(dut.params.valid, 1)
                ctx.set(dut.params.payload.as_value(),
                        pack(RowParams, bias=head["bias"], mult=head["mult"], shift=head["shift"]))
            else:
                ctx.set(dut.params.valid, 0)
                ctx.set(dut.params.payload.as_value(), int(rng.integers(0, 1 << 54)))
            if sample_dot_product(ctx, dut, queue, obs, cycle):
                obs["params_ready"] += 1
            await ctx.tick()
            if pos == len(ops) and len(obs["results"]) == len(rows) and cycle > obs["last_cycles"][-1] + 8:
                return
        raise AssertionError(f"timeout: {pos}/{len(ops)} operands, {len(obs['results'])}/{len(rows)} results")

    simulate(dut, bench)
    return obs


def check(obs, rows):
    assert obs["errors"] == []
    expected = [{"acc": row["acc"], "mult": row["mult"], "shift": row["shift"], "act": 0} for row in rows]
    assert len(obs["results"]) == len(expected)
    assert obs["results"] == expected
    assert obs["params_ready"] == len(rows)
    assert [c - l for c, l in zip(obs["result_cycles"], obs["last_cycles"])] == [LATENCY] * len(rows)


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
def test_mac_random(lanes):
    rng = np.random.default_rng(lanes)
    rows = make_rows(rng, lanes, 80)
    # the stimulus really wraps, at both ends
    raw = [row["bias"] + int((row["cw"].astype(np.int64) * row["act"]).sum()) for row in rows]
    assert any(v >= 1 << 31 for v in raw) and any(v < -(1 << 31) for v in raw)
    obs = run_mac(MacLanes(lanes), rows, seed=lanes)
    check(obs, rows)


@pytest.mark.parametrize("lanes", [1, 4])
def test_mac_back_to_back_single_beat_rows(lanes):
    """No bubbles, every row one beat: a result every cycle, each from its own bias."""
    rng = np.random.default_rng(11)
    rows = [r for r in make_rows(rng, lanes, 60, max_beats=1)]
    obs = run_mac(MacLanes(lanes), rows, seed=2, bubble=0.0)
    check(obs, rows)
    c = obs["result_cycles"]
    assert c == list(range(c[0], c[0] + len(rows)))


def test_mac_mutant_is_caught():
    """A MAC whose accumulator is off by one (or that skips wrap-around sign) fails."""
    rng = np.random.default_rng(3)
    rows = make_rows(rng, 4, 12)
    for fn in (lambda p: p + 1, lambda p: p ^ (1 << 31)):
        obs = run_mac(Mutant(MacLanes(4), {"result.payload": fn}), rows, seed=3)
        with pytest.raises(AssertionError):
            check(obs, rows)
