"""One engine run on an RTL backend: the dispatch to the simulators, and the cycle bound that counts as a hang."""
from __future__ import annotations

import numpy as np

from model.program.file import Program

#: ``verilator``: the compiled C++ harness (`sim.backends.verilator`); ``verilator-cocotb``: the cocotb
#: testbench on Verilator; ``icarus``: the cocotb testbench on Icarus.  The compiled backends load the
#: DRAM image at run time, so each engine configuration is built once.
BACKENDS = ("golden", "amaranth", "icarus", "verilator", "verilator-cocotb")


def hang_bound(golden_counters: dict, n_layers: int, n_images: int, latency: int, lanes: int = 16) -> int:
    """Cycles after which a run that has not finished counts as hung.

    Every counted event costs at most a few cycles even under heavy stalls (a
    PVQ vector at most one cycle per lane and per pulse; a Huffman symbol one
    cycle, a table field one), and each descriptor
    fetch or load waits at most a DRAM round trip.
    """
    events = sum(golden_counters.get(k, 0) for k in ("dram_read_words", "dram_write_words", "rom_reads",
                                                     "sram_writes", "adds", "huffman_symbols"))
    events += lanes * golden_counters.get("sram_reads", 0)
    return 16 * events + 64 * (latency + 8) * n_images * (n_layers + 3) + 10_000


def simulate(program: Program, image: np.ndarray, backend: str, *, out_addr: int, out_words: int,
             max_cycles: int, latency: int, stall: int, seed: int, vcd: str | None) -> dict:
    """One run of ``program`` on the DRAM ``image`` on an RTL ``backend`` (the backend's result dict)."""
    cfg = program.config
    if backend == "amaranth":
        from sim.backends.amaranth import run_amaranth
        return run_amaranth(cfg, image, out_addr=out_addr, out_words=out_words, max_cycles=max_cycles,
                            latency=latency, stall=stall, seed=seed, vcd_path=vcd)
    from sim.backends.top import COMPILED_ADDR_BITS, TOP_NAME, compiled_top_verilog, rom_hex
    if len(image) > 1 << COMPILED_ADDR_BITS:
        from sim.backends.simulators import SimulationError
        raise SimulationError(f"a job's DRAM image of {len(image):,} words does not fit the compiled simulation's "
                              f"{1 << COMPILED_ADDR_BITS:,} words: run fewer images per job (--shard-images)")
    if backend == "verilator":
        from sim.backends.verilator import Job, harness_for, run_jobs
        binary, build_seconds = harness_for(cfg, trace=vcd is not None)
        res = run_jobs(binary, [Job(image, out_addr, out_words, max_cycles, latency, stall, seed, vcd,
                                    rom_hex(cfg))])[0]
        return dict(res, build_seconds=build_seconds, vcd=vcd)
    from sim.backends.cocotb import run_sim_top
    return run_sim_top(compiled_top_verilog(cfg), TOP_NAME, backend.removesuffix("-cocotb"), out_addr=out_addr,
                       out_words=out_words, max_cycles=max_cycles, vcd_path=vcd, dram_file=image,
                       dram_timing=(latency, stall, seed), rom=rom_hex(cfg))
