"""cocotb backend (sim/cocotb_backend.py) on a stand-in simulation top, with Icarus and Verilator.

The stand-in has exactly the ports of the engine's simulation top (``vqe_sim_top``):
it counts cycles from ``start``, writes a few words into its memory while busy,
raises ``done`` (and ``error``) after ``run_cycles`` cycles and exposes a flat
counters vector and the ``dbg_addr``/``dbg_data`` read port.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.layout import COUNTER_BITS, ERROR_BITS
from sim.cocotb_backend import COUNTER_NAMES, SimulationError, run_sim_top

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
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(ERROR_BITS),
            "counters": Out(COUNTER_BITS * len(COUNTER_NAMES)),
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


@pytest.fixture(scope="session")
def build_root(cocotb_build_root) -> Path:
    return cocotb_build_root


SIMS = ["icarus", "verilator"]


@pytest.mark.parametrize("sim", SIMS)
def test_run_to_done(sim, build_root):
    n = 1000
    text = standin_verilog(n)
    r = run_sim_top(text, TOP, sim, out_addr=OUT_ADDR - 2, out_words=OUT_WORDS + 4,
                    max_cycles=10 * n, build_root=build_root)
    assert r["done"] is True
    assert r["error"] == 0
    assert r["cycles_simulated"] == n
    assert r["counters"] == {name: counter_value(i, n) for i, name in enumerate(COUNTER_NAMES)}
    assert list(r["counters"]) == list(COUNTER_NAMES)
    expect = ([init_word(OUT_ADDR - 2), init_word(OUT_ADDR - 1)] + expected_outputs(n)
              + [init_word(OUT_ADDR + 4), init_word(OUT_ADDR + 5)])
    assert r["outputs"] == expect
    assert r["warnings"] == []
    assert r["sim_seconds"] >= 0 and r["wall_seconds"] > 0

    # The same design again: the build is reused.
    r2 = run_sim_top(text, TOP, sim, out_addr=OUT_ADDR, out_words=1, max_cycles=10 * n, build_root=build_root)
    assert r2["build_seconds"] == 0.0
    assert r2["outputs"] == expected_outputs(n)[:1]


@pytest.mark.parametrize("sim", SIMS)
def test_dram_preload(sim, build_root):
    """One build, another memory image: written through VPI during reset, before start."""
    n = 1000   # the design of test_run_to_done: its build is reused
    image = [(0x9E3779B9 * (a + 7)) & 0xFFFFFFFF for a in range(DEPTH)]
    r = run_sim_top(standin_verilog(n), TOP, sim, out_addr=0, out_words=DEPTH, max_cycles=10 * n,
                    build_root=build_root, dram_image=image, dram_memory="mem")
    expect = list(image)
    expect[OUT_ADDR:OUT_ADDR + OUT_WORDS] = expected_outputs(n)
    assert r["done"] and r["outputs"] == expect
    assert r["preload_seconds"] > 0


@pytest.mark.parametrize("sim", SIMS)
def test_hang_is_not_done(sim, build_root):
    r = run_sim_top(standin_verilog(1 << 30), TOP, sim, out_addr=OUT_ADDR, out_words=2,
                    max_cycles=500, build_root=build_root)
    assert r["done"] is False
    assert r["cycles_simulated"] == 500
    # Still busy: the counters show how far it got (the read-back adds a few cycles).
    assert r["counters"]["cycles"] >= counter_value(COUNTER_NAMES.index("cycles"), 500)


@pytest.mark.parametrize("sim", SIMS)
def test_error_and_waves(sim, build_root, tmp_path):
    n = 40
    vcd = tmp_path / "waves" / "run.vcd"
    r = run_sim_top(standin_verilog(n, error_code=5), TOP, sim, out_addr=OUT_ADDR, out_words=OUT_WORDS,
                    max_cycles=1000, vcd_path=str(vcd), build_root=build_root)
    assert r["done"] is True and r["error"] == 5
    assert r["outputs"] == expected_outputs(n)
    assert r["vcd"] == str(vcd.resolve())
    head = vcd.read_text(errors="replace")
    assert "$enddefinitions" in head and "done" in head


def test_icarus_fst(build_root, tmp_path):
    fst = tmp_path / "run.fst"
    r = run_sim_top(standin_verilog(30), TOP, "icarus", out_addr=OUT_ADDR, out_words=1,
                    max_cycles=100, vcd_path=str(fst), build_root=build_root)
    assert r["done"]
    assert fst.stat().st_size > 0 and b"$enddefinitions" not in fst.read_bytes()[:4096]


def test_errors_are_clear(build_root):
    with pytest.raises(SimulationError, match="unknown simulator"):
        run_sim_top("module x; endmodule", "x", "modelsim", out_addr=0, out_words=0, max_cycles=10,
                    build_root=build_root)
    with pytest.raises(SimulationError, match="icarus build of broken failed"):
        run_sim_top("module broken(input clk; endmodule\n", "broken", "icarus", out_addr=0, out_words=0,
                    max_cycles=10, build_root=build_root)
    # A top without the expected ports fails in the test, and says so.
    with pytest.raises(SimulationError, match="simulation of portless failed"):
        run_sim_top("module portless(input clk); endmodule\n", "portless", "icarus", out_addr=0,
                    out_words=0, max_cycles=10, build_root=build_root)
