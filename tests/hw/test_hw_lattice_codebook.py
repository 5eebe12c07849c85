"""hw.lattice_codebook.LatticeCodebook against its golden twin, model.codecs.e8p.e8p_decode."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.lattice_codebook import LatticeCodebook
from model.codecs.e8p import E8P_CODEWORDS, e8p_decode


def test_decodes_random_indices_and_holds_while_disabled():
    dut = LatticeCodebook()
    rng = np.random.default_rng(0)
    indices = [0, E8P_CODEWORDS - 1, *rng.integers(0, E8P_CODEWORDS, 400).tolist()]
    got = []

    async def bench(ctx):
        for i in indices:
            ctx.set(dut.addr, i)
            ctx.set(dut.en, 1)
            await ctx.tick()
            ctx.set(dut.en, 0)
            ctx.set(dut.addr, int(rng.integers(0, E8P_CODEWORDS)))   # not read: data holds
            await ctx.tick()
            got.append([ctx.get(dut.data[lane]) for lane in range(8)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == e8p_decode(indices).tolist()


def test_only_eight_lanes():
    with pytest.raises(ValueError, match="8 lanes"):
        LatticeCodebook(4)
