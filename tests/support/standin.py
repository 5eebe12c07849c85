"""A stand-in for the engine's simulation top (``vqe_sim_top``): same ports, trivial behaviour.

It counts cycles from ``start``, writes a few words into its memory while busy,
raises ``done`` (and ``error``) after ``run_cycles`` cycles and exposes a flat
counters vector and the ``dbg_addr``/``dbg_data`` read port, so the cocotb
backend and the linters can be tested without elaborating the engine.
"""
from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.layouts import control_members
from model.contract.counters import COUNTER_BITS
from sim.backends.cocotb import COUNTER_NAMES

TOP = "vqe_sim_top"


ADDR_BITS = 7


DEPTH = 1 << ADDR_BITS


OUT_ADDR = 16   # the stand-in writes its "outputs" here, 4 words


OUT_WORDS = 4


WRITE_MULT = 0x01000193


def counter_value(i: int, count: int) -> int:
    """What the stand-in shows in counter field ``i`` after ``count`` cycles (uses all 48 bits)."""
    return ((i << 40) + count * (i + 1)) & ((1 << COUNTER_BITS) - 1)


def init_word(a: int) -> int:
    return (0xA5000000 | (a * 0x10101)) & 0xFFFFFFFF


class StandInTop(wiring.Component):
    """Engine-shaped stand-in: same ports, trivial behaviour."""

    def __init__(self, run_cycles: int, error_code: int = 0):
        assert run_cycles >= 2
        self.run_cycles = run_cycles
        self.error_code = error_code
        super().__init__({
            **control_members(counters=COUNTER_BITS * len(COUNTER_NAMES)),   # the engine's, flattened counters
            "dbg_addr": In(ADDR_BITS),
            "dbg_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=32, depth=DEPTH, init=[init_word(a) for a in range(DEPTH)])
        rd = mem.read_port()
        wr = mem.write_port()
        count = Signal(32)

        m.d.comb += [rd.addr.eq(self.dbg_addr), self.dbg_data.eq(rd.data)]
        m.d.comb += [wr.en.eq(self.busy), wr.addr.eq(OUT_ADDR + count[:2]), wr.data.eq(count * WRITE_MULT)]
        for i in range(len(COUNTER_NAMES)):
            field = self.counters[COUNTER_BITS * i: COUNTER_BITS * (i + 1)]
            m.d.comb += field.eq(Const(i << 40, COUNTER_BITS) + count * (i + 1))

        with m.If(self.busy):
            m.d.sync += count.eq(count + 1)
            with m.If(count + 1 == self.run_cycles):
                m.d.sync += [self.busy.eq(0), self.done.eq(1), self.error.eq(self.error_code)]
        with m.Elif(self.start & ~self.done):
            m.d.sync += [self.busy.eq(1), count.eq(1)]
        return m


def standin_verilog(run_cycles: int = 1000, error_code: int = 0) -> str:
    return verilog.convert(StandInTop(run_cycles, error_code), name=TOP, emit_src=False)


def expected_outputs(run_cycles: int) -> list[int]:
    """Memory words OUT_ADDR.. after the run: the last write to each slot, else the initial word."""
    words = [init_word(OUT_ADDR + j) for j in range(OUT_WORDS)]
    for c in range(1, run_cycles):   # busy while count = 1 .. run_cycles-1
        words[c % 4] = (c * WRITE_MULT) & 0xFFFFFFFF
    return words
