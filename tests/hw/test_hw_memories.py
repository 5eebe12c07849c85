"""hw.memories: CodebookRom and ActivationSram against cycle-level Python models.

CodebookRom: ``data`` is the codeword at the previous cycle's ``addr`` when ``en``
was high, and holds when ``en`` was low (lane 0 in the lowest byte; int8 values
sign-correct).  ActivationSram: two halves; reads (1-cycle, ``rd_en`` holds the
last data) come from half ``select``; writes go to the other half, or to the
same half while ``write_same``; a read and a write of the same word in one
cycle return the old contents.  Random addresses/enables/selects every cycle,
lanes 1..16, word counts that are and are not powers of two.  BlockRamFIFO: the
same outputs, cycle for cycle, as Amaranth's SyncFIFOBuffered, its storage marked
for block RAM in the Verilog.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.memories import ActivationSram, BlockRamFIFO, CodebookRom, pack_lane_word

from hwsim import Mutant, pack_lanes, simulate, unpack_lanes


def run_rom(dut, codewords, *, seed: int, n_cycles: int = 500):
    lanes = dut._lanes
    rng = np.random.default_rng(seed)
    addrs = rng.integers(0, len(codewords), size=n_cycles)
    ens = rng.random(n_cycles) < 0.7
    got, want = [], []

    async def bench(ctx):
        model = None   # nothing read yet: do not compare
        for cycle in range(n_cycles):
            ctx.set(dut.addr, int(addrs[cycle]))
            ctx.set(dut.en, int(ens[cycle]))
            await ctx.tick()
            if ens[cycle]:
                model = list(codewords[addrs[cycle]])
            if model is not None:
                got.append(unpack_lanes(int(ctx.get(dut.data.as_value())), lanes))
                want.append(model)

    simulate(dut, bench)
    return got, want


@pytest.mark.parametrize("lanes,entries", [(1, 2), (2, 16), (4, 37), (8, 256), (16, 5)])
def test_rom_random(lanes, entries):
    rng = np.random.default_rng(lanes * 1000 + entries)
    codewords = rng.integers(-128, 128, size=(entries, lanes)).tolist()
    codewords[0] = [-128] * lanes
    codewords[-1] = [127] * lanes
    got, want = run_rom(CodebookRom(lanes, codewords), codewords, seed=entries)
    assert len(got) > 400
    assert got == want


def test_pack_lane_word():
    assert pack_lane_word([1, -1, -128, 127], 4) == 0x7F80FF01
    assert pack_lane_word([5, 6, 7], 2) == 0x0605   # extra values ignored
    assert pack_lane_word([-2], 1) == 0xFE


def test_rom_mutant_is_caught():
    lanes, codewords = 4, np.random.default_rng(0).integers(-128, 128, size=(8, 4)).tolist()
    dut = Mutant(CodebookRom(lanes, codewords), {"data": lambda d: d ^ (1 << 31)})
    got, want = run_rom(dut, codewords, seed=0, n_cycles=50)
    assert got != want


def run_sram(dut, *, seed: int, n_cycles: int = 700):
    lanes, words = dut._lanes, dut._words
    rng = np.random.default_rng(seed)
    mem = [[[0] * lanes for _ in range(words)] for _ in range(2)]
    # Bias addresses to a few words, so reads often hit what was just written (and the same cycle).
    hot = rng.integers(0, words, size=3)
    got, want = [], []
    same_cycle_hits = [0]

    async def bench(ctx):
        model = [0] * lanes
        for cycle in range(n_cycles):
            rd_addr = int(hot[rng.integers(0, 3)] if rng.random() < 0.4 else rng.integers(0, words))
            wr_addr = int(hot[rng.integers(0, 3)] if rng.random() < 0.4 else rng.integers(0, words))
            rd_en, wr_en = bool(rng.random() < 0.7), bool(rng.random() < 0.5)
            select, same = int(rng.random() < 0.5), int(rng.random() < 0.3)
            data = [int(v) for v in rng.integers(-128, 128, size=lanes)]
            for sig, v in ((dut.rd_addr, rd_addr), (dut.rd_en, rd_en), (dut.wr_addr, wr_addr),
                           (dut.wr_en, wr_en), (dut.select, select), (dut.write_same, same)):
                ctx.set(sig, int(v))
            ctx.set(dut.wr_data.as_value(), pack_lanes(data))
            await ctx.tick()
            # read sees the memory before this cycle's write
            if rd_en:
                model = list(mem[select][rd_addr])
            if wr_en:
                half = select if same else 1 - select
                mem[half][wr_addr] = data
                if rd_en and half == select and wr_addr == rd_addr:
                    same_cycle_hits[0] += 1
            got.append(unpack_lanes(int(ctx.get(dut.rd_data.as_value())), lanes))
            want.append(model)

    simulate(dut, bench)
    return got, want, same_cycle_hits[0]


@pytest.mark.parametrize("lanes,words", [(1, 8), (2, 6), (4, 16), (8, 5), (16, 3)])
def test_sram_random(lanes, words):
    dut = ActivationSram(lanes, words)
    got, want, hits = run_sram(dut, seed=lanes * 10 + words)
    assert hits > 0, "stimulus should read and write one word in the same cycle"
    mismatch = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert mismatch == [], f"first mismatch at cycle {mismatch[:1]}: got {got[mismatch[0]]}, want {want[mismatch[0]]}"
    assert len(got) == len(want) == 700


def test_sram_halves_are_separate():
    """Write both halves at the same address through write_same / the other half, read both back."""
    dut = ActivationSram(4, 6)
    seen = []

    async def bench(ctx):
        ctx.set(dut.wr_en, 1)
        ctx.set(dut.wr_addr, 5)
        # select=0, write_same=0 -> half 1
        ctx.set(dut.select, 0)
        ctx.set(dut.write_same, 0)
        ctx.set(dut.wr_data.as_value(), pack_lanes([1, 2, 3, 4]))
        await ctx.tick()
        # select=0, write_same=1 -> half 0
        ctx.set(dut.write_same, 1)
        ctx.set(dut.wr_data.as_value(), pack_lanes([-1, -2, -3, -4]))
        await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.write_same, 0)
        ctx.set(dut.rd_en, 1)
        ctx.set(dut.rd_addr, 5)
        for select in (0, 1):
            ctx.set(dut.select, select)
            await ctx.tick()
            seen.append(unpack_lanes(int(ctx.get(dut.rd_data.as_value())), 4))

    simulate(dut, bench)
    assert seen == [[-1, -2, -3, -4], [1, 2, 3, 4]]


def test_sram_mutant_is_caught():
    """An SRAM whose read data has lane 0's sign bit flipped fails the random check."""
    dut = Mutant(ActivationSram(4, 8), {"rd_data": lambda d: d ^ 0x80})
    got, want, _ = run_sram(dut, seed=1, n_cycles=100)
    assert got != want


@pytest.mark.parametrize("depth", [1, 2, 4, 5])
def test_block_ram_fifo_is_sync_fifo_buffered(depth):
    """Random writes and reads: every output of BlockRamFIFO equals SyncFIFOBuffered's on every cycle."""
    from amaranth.hdl import Module
    from amaranth.lib.fifo import SyncFIFOBuffered
    width = 66
    m = Module()
    m.submodules.dut = dut = BlockRamFIFO(width=width, depth=depth)
    m.submodules.ref = ref = SyncFIFOBuffered(width=width, depth=depth)
    rng = np.random.default_rng(depth)
    n_cycles = 400
    w_en, r_en = rng.random(n_cycles) < 0.6, rng.random(n_cycles) < 0.5
    data = [int(rng.integers(0, 1 << 62)) << 4 | int(rng.integers(16)) for _ in range(n_cycles)]
    mismatches, reads = [], [0]

    async def bench(ctx):
        for cycle in range(n_cycles):
            for fifo in (dut, ref):
                ctx.set(fifo.w_en, int(w_en[cycle]))
                ctx.set(fifo.w_data, data[cycle])
                ctx.set(fifo.r_en, int(r_en[cycle]))
            got = [ctx.get(getattr(dut, n)) for n in ("w_rdy", "r_rdy", "level")]
            want = [ctx.get(getattr(ref, n)) for n in ("w_rdy", "r_rdy", "level")]
            if got[1] and ctx.get(dut.r_data) != ctx.get(ref.r_data):
                mismatches.append((cycle, "r_data"))
            if got != want:
                mismatches.append((cycle, got, want))
            reads[0] += int(bool(want[1] and r_en[cycle]))
            await ctx.tick()

    simulate(m, bench)
    assert mismatches == []
    assert reads[0] > n_cycles // 5   # the queue was used, not just idle


def test_block_ram_fifo_asks_for_block_ram():
    from amaranth.back import verilog
    dut = BlockRamFIFO(width=66, depth=4)
    text = verilog.convert(dut, name="fifo", ports=[dut.w_data, dut.w_en, dut.w_rdy, dut.r_data, dut.r_en, dut.r_rdy])
    assert 'ram_style = "block"' in text

