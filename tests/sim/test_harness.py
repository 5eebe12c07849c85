"""The compiled Verilator harness: one build per engine shape, the DRAM and ROM loaded at run time,
DRAM timing set at run time, bit-exact with the golden model and with Icarus."""
from __future__ import annotations

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.program.synthetic import random_lowered
from model.program.writer import build_program
from sim.backends.readmem import write_image
from sim.backends.top import compiled_top_verilog, placeholder_rom, rom_hex
from sim.backends.verilator import RUNTIME_OBJECTS, Job, harness_for, run_jobs, runtime_dir
from sim.run import run_program

SHAPES = [23, 9, 5]   # widths that do not divide by the 4 lanes
SIZES = [16, 7]       # codebook sizes: the ROM holds 23 entries in both programs


def program(seed: int, **writer):
    rng = np.random.default_rng(seed)
    return build_program(random_lowered(rng, 4, SHAPES, 16, codebook_sizes=SIZES), codebook_depth=16,
                         config_max_features=64, **writer)


def test_two_programs_for_one_engine_share_one_build(tmp_path):
    a, b = program(1), program(2)
    assert a.config.rom != b.config.rom            # different codebooks...
    assert placeholder_rom(a.config) == placeholder_rom(b.config)   # ...on one engine shape
    verilog = compiled_top_verilog(a.config, harness=True)
    assert verilog == compiled_top_verilog(b.config, harness=True)
    first, seconds = harness_for(a.config, build_root=tmp_path)
    assert seconds > 0
    again, seconds = harness_for(b.config, build_root=tmp_path)
    assert (again, seconds) == (first, 0.0)
    assert len([d for d in tmp_path.iterdir() if d.is_dir() and d.name != "_runtime"]) == 1


def test_a_second_engine_reuses_the_verilator_runtime_objects(tmp_path):
    """The runtime objects (``verilated.o``, ...) are compiled by the first build under a root only."""
    first, _ = harness_for(program(1).config, build_root=tmp_path)
    assert sorted(p.name for p in runtime_dir(tmp_path, False).iterdir()) == [f"{n}.o" for n in RUNTIME_OBJECTS]
    other = program(3, pes=2).config
    second, seconds = harness_for(other, build_root=tmp_path)
    assert second != first and seconds > 0
    compiled = (first.parent.parent / "build.log").read_text(), (second.parent.parent / "build.log").read_text()
    assert "include/verilated.cpp" in compiled[0] and "include/verilated.cpp" not in compiled[1]
    assert "include/verilated_threads.cpp" not in compiled[1]


@pytest.mark.parametrize("latency,stall", [(3, 0), (17, 90), (32, 200)])
def test_programs_inputs_and_timing_at_run_time_are_bit_exact(latency, stall):
    """Both programs, several input sets and DRAM timings, each bit-exact (outputs and every counter)."""
    for seed in (1, 2):
        x = random_vectors(np.random.default_rng(seed + latency), 3, SHAPES[0])
        r = run_program(program(seed), x, None, "verilator", latency=latency, stall=stall, seed=seed)
        assert r["bit_exact"] is True, r["counter_mismatches"]


def test_stalls_and_latency_change_cycles_not_results():
    p = program(3)
    x = random_vectors(np.random.default_rng(0), 2, SHAPES[0])
    fast = run_program(p, x, None, "verilator", latency=3, stall=0)
    slow = run_program(p, x, None, "verilator", latency=30, stall=150, seed=7)
    assert fast["bit_exact"] and slow["bit_exact"]
    assert slow["cycles"] > fast["cycles"]
    assert slow["counters"]["stall_cycles"] > fast["counters"]["stall_cycles"]


def test_verilator_harness_equals_icarus_cycle_for_cycle():
    """The same compiled top under the C++ harness and under cocotb on Icarus: equal counters and cycles."""
    p = program(4, weight_sram_words=40)
    x = random_vectors(np.random.default_rng(4), 2, SHAPES[0])
    fast = run_program(p, x, None, "verilator", latency=7, stall=40, seed=3)
    icarus = run_program(p, x, None, "icarus", latency=7, stall=40, seed=3)
    assert fast["bit_exact"] and icarus["bit_exact"]
    assert fast["counters"] == icarus["counters"]
    assert [l["cycles"] for l in fast["layers"]] == [l["cycles"] for l in icarus["layers"]]


def test_a_hang_is_reported_not_waited_for():
    p = program(5)
    x = random_vectors(np.random.default_rng(5), 1, SHAPES[0])
    image, out_addr, out_words = p.dram_image(x)
    binary, _ = harness_for(p.config)
    r = run_jobs(binary, [Job(image, out_addr, out_words, 50, rom=rom_hex(p.config))])[0]
    assert r["done"] is False and r["cycles_simulated"] == 50


def test_one_process_runs_many_jobs_in_order():
    progs = [program(s) for s in (6, 7, 8)]
    xs = [random_vectors(np.random.default_rng(s), s - 5, SHAPES[0]) for s in (6, 7, 8)]
    jobs = []
    for p, x in zip(progs, xs):
        image, out_addr, out_words = p.dram_image(x)
        jobs.append(Job(image, out_addr, out_words * len(x), 10 ** 6, rom=rom_hex(p.config)))
    binary, _ = harness_for(progs[0].config)
    results = run_jobs(binary, jobs)
    singles = [run_program(p, x, None, "verilator") for p, x in zip(progs, xs)]
    assert [r["counters"]["cycles"] for r in results] == [s["cycles"] for s in singles]


def test_readmemh_file(tmp_path):
    path = tmp_path / "img.hex"
    write_image(path, np.array([0, 1, 0xDEADBEEF, 0xFFFFFFFF], dtype=np.uint32))
    assert path.read_text() == "00000000\n00000001\ndeadbeef\nffffffff\n"


def test_rom_contents_are_not_in_the_verilog():
    """The compiled top's ROM is read from +vqe_rom: no codeword of the program appears in the text."""
    p = program(9)
    text = compiled_top_verilog(p.config)
    assert "$readmemh(rom_path, rom)" in text and "vqe_rom=%s" in text
    assert "rom[0] =" not in text
