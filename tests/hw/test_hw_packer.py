"""hw.packer.OutputPacker: int8 outputs -> SRAM lane-word writes, zero-padded.

Golden model: the layer's ``rows`` outputs, zero-padded to ``words * lanes``
values, cut into lane-words (lane 0 = lowest byte), written at addresses
0, 1, ..., ``words - 1``, each exactly once.  The output stream is always-ready,
so it gets random valid bubbles (garbage payload in the bubbles).  Covered:
lanes 1..16, rows % lanes != 0, extra zero words (the engine's alignment
padding and more), several layers in a row with different shapes, ``busy``
falling once the last word is written and nothing written afterwards.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.layouts import sram_write_layout
from hw.packer import OutputPacker
from model.contract.ints import ceil_div
from model.contract.layout import vector_align

from hwsim import Mutant, simulate, stalls, unpack, unpack_lanes

ADDR_WIDTH = 8


def golden_writes(values, lanes: int, words: int):
    padded = list(values) + [0] * (words * lanes - len(values))
    return [(a, padded[a * lanes:(a + 1) * lanes]) for a in range(words)]


def run_packer(dut, layers, *, seed: int, bubble: float = 0.3):
    """``layers``: list of (values, words).  Returns, per layer, the (addr, lanes) writes seen."""
    lanes = dut._lanes
    rng = np.random.default_rng(seed)
    wlay = sram_write_layout(ADDR_WIDTH, lanes)
    obs = {"writes": [], "errors": []}

    async def bench(ctx):
        for li, (values, words) in enumerate(layers):
            n_cycles = int(len(values) / (1 - bubble)) * 2 + words + 60
            gaps = stalls(rng, n_cycles, bubble)
            ctx.set(dut.rows, len(values))
            ctx.set(dut.words, words)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            writes = []
            pos = 0
            for cycle in range(n_cycles):
                if pos < len(values) and not gaps[cycle]:
                    ctx.set(dut.output.valid, 1)
                    ctx.set(dut.output.payload, int(values[pos]))
                    pos += 1
                else:
                    ctx.set(dut.output.valid, 0)
                    ctx.set(dut.output.payload, int(rng.integers(-128, 128)))
                if ctx.get(dut.write.valid):
                    w = unpack(wlay, int(ctx.get(dut.write.payload.as_value())))
                    writes.append((w["addr"], unpack_lanes(w["data"], lanes)))
                busy = ctx.get(dut.busy)
                await ctx.tick()
                if pos == len(values) and not busy and not ctx.get(dut.busy):
                    break
            else:
                raise AssertionError(f"layer {li}: timeout, {pos}/{len(values)} outputs, "
                                     f"{len(writes)}/{words} writes")
            for _ in range(6):   # idle: nothing more is written
                ctx.set(dut.output.valid, 0)
                if ctx.get(dut.write.valid) or ctx.get(dut.busy):
                    obs["errors"].append(f"layer {li}: activity after the layer")
                await ctx.tick()
            obs["writes"].append(writes)

    simulate(dut, bench)
    return obs


def make_layers(rng, lanes: int):
    layers = []
    align = vector_align(lanes)
    for rows in [1, lanes, lanes + 1, 2 * lanes - 1, int(rng.integers(1, 70)), int(rng.integers(1, 70))]:
        values = [int(v) for v in rng.integers(-128, 128, size=rows)]
        if rows > 3:
            values[:3] = [-128, 127, 0]
        engine_words = ceil_div(rows, align) * (align // lanes)   # the engine's lane_words()
        extra = ceil_div(rows, lanes) + int(rng.integers(0, 4))
        layers.append((values, engine_words))
        layers.append((values, extra))
    return layers


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
def test_packer_random(lanes):
    rng = np.random.default_rng(200 + lanes)
    layers = make_layers(rng, lanes)
    assert any(len(v) % lanes for v, _ in layers) or lanes == 1
    assert any(w * lanes - len(v) >= lanes for v, w in layers), "some layer needs whole zero words"
    obs = run_packer(OutputPacker(lanes, ADDR_WIDTH), layers, seed=lanes)
    assert obs["errors"] == []
    assert len(obs["writes"]) == len(layers)
    for li, (values, words) in enumerate(layers):
        expected = golden_writes(values, lanes, words)
        assert len(obs["writes"][li]) == words, f"layer {li}: write count"
        assert obs["writes"][li] == expected, f"layer {li} (rows={len(values)}, words={words})"


def test_packer_no_bubbles():
    """Outputs every cycle: a write every ``lanes`` cycles, then the zero words back to back."""
    lanes = 4
    values = list(range(-50, -50 + 10))
    obs = run_packer(OutputPacker(lanes, ADDR_WIDTH), [(values, 6)], seed=0, bubble=0.0)
    assert obs["writes"] == [golden_writes(values, lanes, 6)]
    assert obs["writes"][0][2] == (2, [-42, -41, 0, 0])


def test_packer_mutant_is_caught():
    """A packer that corrupts one bit of lane 1 fails."""
    lanes = 4
    rng = np.random.default_rng(1)
    layers = make_layers(rng, lanes)[:4]
    dut = Mutant(OutputPacker(lanes, ADDR_WIDTH),
                 {"write.payload": lambda p: p ^ (1 << (ADDR_WIDTH + 8))})   # flips lane 1's low bit
    obs = run_packer(dut, layers, seed=1)
    assert any(obs["writes"][li] != golden_writes(v, lanes, w) for li, (v, w) in enumerate(layers))
