"""hw.skid_buffer.SkidBuffer: the words pass through in order, once each, with ``i.ready`` from a register.

Random valid bubbles upstream and random ready stalls downstream (bursts included).  Checked: the
output sequence is the input sequence; upstream ``ready`` is low exactly while the buffer holds a
word; a word offered while the buffer is empty and downstream is ready goes out in the same cycle
(no latency); with downstream always ready the buffer never fills; ``i.ready`` does not depend on
``o.ready`` in the same cycle.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.skid_buffer import SkidBuffer

from hwsim import simulate, stalls


def run(seed: int, bubble: float, stall: float, n: int = 400):
    rng = np.random.default_rng(seed)
    words = [int(w) for w in rng.integers(0, 1 << 32, size=n, dtype=np.uint64)]
    cycles = int(n / (1 - bubble) / (1 - stall)) * 2 + 50
    gaps, waits = stalls(rng, cycles, bubble), stalls(rng, cycles, stall)
    dut = SkidBuffer(32)
    obs = {"out": [], "same_cycle": 0, "holding_cycles": 0}

    async def bench(ctx):
        pos = 0
        for cycle in range(cycles):
            offer = pos < len(words) and not gaps[cycle]
            ctx.set(dut.i.valid, int(offer))
            ctx.set(dut.i.payload, words[pos] if offer else int(rng.integers(0, 1 << 32, dtype=np.uint64)))
            holding = ctx.get(dut.holding)
            # ready upstream is the buffer's register, whatever downstream does this cycle
            for ready in (0, 1):
                ctx.set(dut.o.ready, ready)
                assert ctx.get(dut.i.ready) == (not holding)
            ctx.set(dut.o.ready, int(not waits[cycle]))
            obs["holding_cycles"] += holding
            if ctx.get(dut.o.valid) and not waits[cycle]:
                obs["out"].append(int(ctx.get(dut.o.payload)))
                obs["same_cycle"] += offer and not holding
            if offer and ctx.get(dut.i.ready):
                pos += 1
            await ctx.tick()
            if len(obs["out"]) == len(words):
                return
        raise AssertionError(f"timeout: {len(obs['out'])}/{len(words)} words out")

    simulate(dut, bench)
    return words, obs


@pytest.mark.parametrize("seed,bubble,stall", [(0, 0.3, 0.3), (1, 0.0, 0.5), (2, 0.6, 0.1), (3, 0.0, 0.0)])
def test_words_pass_in_order_once(seed, bubble, stall):
    words, obs = run(seed, bubble, stall)
    assert obs["out"] == words
    assert obs["same_cycle"] > 0   # straight through when empty: no latency


def test_never_fills_when_downstream_is_always_ready():
    words, obs = run(4, 0.2, 0.0)
    assert obs["out"] == words and obs["holding_cycles"] == 0 and obs["same_cycle"] == len(words)
