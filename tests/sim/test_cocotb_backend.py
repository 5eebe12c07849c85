"""cocotb backend (sim/cocotb_backend.py) on a stand-in simulation top, with Icarus and Verilator.

The stand-in has exactly the ports of the engine's simulation top (``vqe_sim_top``):
it counts cycles from ``start``, writes a few words into its memory while busy,
raises ``done`` (and ``error``) after ``run_cycles`` cycles and exposes a flat
counters vector and the ``dbg_addr``/``dbg_data`` read port.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from sim.backends.cocotb import COUNTER_NAMES, run_sim_top
from sim.backends.simulators import SimulationError

from standin import OUT_ADDR, OUT_WORDS, TOP, counter_value, expected_outputs, init_word, standin_verilog


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
