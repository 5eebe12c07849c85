"""cocotb test module for the engine's simulation top (``vqe_sim_top``).

Run by :mod:`sim.backends.cocotb` inside Icarus or Verilator; not imported
otherwise.  The design holds the whole job (its DRAM and codebook ROM load
their contents from the ``+vqe_dram`` and ``+vqe_rom`` files the runner passes),
so the test only sets the DRAM timing, drives ``start`` and then sleeps until
``done`` (or the cycle bound), without waking Python every clock cycle.

Parameters come in through environment variables, results go out as JSON:

==========================  =================================================
``VQE_COCOTB_RESULT``       path of the JSON file to write (required)
``VQE_COCOTB_OUT_ADDR``     DRAM word address of the first output word
``VQE_COCOTB_OUT_WORDS``    number of output words to read back
``VQE_COCOTB_MAX_CYCLES``   hang bound: cycles to wait for ``done``
``VQE_COCOTB_COUNTERS``     comma-separated counter names, field 0 first
``VQE_COCOTB_COUNTER_BITS`` width of one counter field
``VQE_COCOTB_DRAM_TIMING``  optional: ``latency,stall,seed`` set on the ports
                            ``dram_latency``, ``dram_stall``, ``dram_seed``
==========================  =================================================
"""
from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Edge, FallingEdge, First, ReadOnly, RisingEdge, Timer

CLOCK_NS = 10


def _int(handle, what: str, problems: list[str]) -> int:
    """Value of a signal (1 bit or a vector) as an unsigned int; X/Z bits read as 0 and are noted."""
    text = str(handle.value)   # MSB first, one character per bit
    if not set(text) <= {"0", "1"}:
        problems.append(f"{what} has unresolved bits: {text}")
        text = "".join("1" if c == "1" else "0" for c in text)
    return int(text, 2) if text else 0


@cocotb.test()
async def run_engine(dut):
    """Preload the DRAM, pulse ``start``, wait for ``done`` or the bound, and write the results as JSON."""
    result_path = os.environ["VQE_COCOTB_RESULT"]
    out_addr = int(os.environ.get("VQE_COCOTB_OUT_ADDR", "0"))
    out_words = int(os.environ.get("VQE_COCOTB_OUT_WORDS", "0"))
    max_cycles = int(os.environ.get("VQE_COCOTB_MAX_CYCLES", "1000000"))
    names = [n for n in os.environ.get("VQE_COCOTB_COUNTERS", "").split(",") if n]
    field_bits = int(os.environ.get("VQE_COCOTB_COUNTER_BITS", "48"))
    problems: list[str] = []

    # The clock runs in the simulator's GPI layer (C++), not as a Python task.
    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)

    # Inputs change only on falling edges, half a cycle away from the sampling edge.
    dut.rst.value = 1
    dut.start.value = 0
    dut.dbg_addr.value = 0
    timing = os.environ.get("VQE_COCOTB_DRAM_TIMING", "")
    if timing:
        latency, stall, seed = (int(v) for v in timing.split(","))
        dut.dram_latency.value = latency
        dut.dram_stall.value = stall
        dut.dram_seed.value = seed
    await ClockCycles(dut.clk, 2)       # two rising edges in reset
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    dut.start.value = 1
    t_start_ns = get_sim_time(unit="ns") + CLOCK_NS / 2   # the rising edge that samples start
    wall0 = time.perf_counter()
    await FallingEdge(dut.clk)
    dut.start.value = 0

    # Sleep until done rises or the hang bound passes, waking where the engine's phase changes to
    # read its cycle counter (cycles per layer; as sim.backends.phases.PhaseCycles, which this
    # module, loaded by the simulator on its own, does not import).
    cycles_field = names.index("cycles") if "cycles" in names else None
    layer_cycles: list[int] = []
    phase, since = 0, 0
    deadline_ns = t_start_ns + max(1, max_cycles - 1) * CLOCK_NS
    while not _int(dut.done, "done", problems):
        remaining_ns = deadline_ns - get_sim_time(unit="ns")
        if remaining_ns <= 0:
            break
        timer = Timer(remaining_ns, unit="ns")
        if await First(RisingEdge(dut.done), Edge(dut.phase), timer) is timer:
            break
        await ReadOnly()   # the edge's registers have all settled
        now_phase = _int(dut.phase, "phase", problems)
        if cycles_field is not None and now_phase != phase:
            now = (_int(dut.counters, "counters", problems) >> (field_bits * cycles_field)) & ((1 << field_bits) - 1)
            if phase:
                layer_cycles.extend([0] * (phase - len(layer_cycles)))
                layer_cycles[phase - 1] += now - since
            phase, since = now_phase, now
        if _int(dut.done, "done", problems):
            break
        await FallingEdge(dut.clk)   # out of the read-only phase
    t_end_ns = get_sim_time(unit="ns")
    wall1 = time.perf_counter()
    done = bool(_int(dut.done, "done", problems))
    # Rising edges from the one that sampled start up to the one that raised done (or the bound).
    cycles = int((t_end_ns - t_start_ns) // CLOCK_NS) + 1

    # Half a cycle later everything registered on done's edge has settled.
    await FallingEdge(dut.clk)
    error = _int(dut.error, "error", problems)
    flat = _int(dut.counters, "counters", problems)
    mask = (1 << field_bits) - 1
    counters = {name: (flat >> (field_bits * i)) & mask for i, name in enumerate(names)}

    # Read back the outputs through the 1-cycle synchronous debug port, pipelined:
    # at each falling edge, collect the word addressed one cycle earlier and set the next address.
    addr_mask = (1 << len(dut.dbg_addr)) - 1
    outputs: list[int] = []
    if out_words:
        if out_addr + out_words - 1 > addr_mask:
            problems.append(f"output words {out_addr}..{out_addr + out_words - 1} lie beyond dbg_addr's range")
        dut.dbg_addr.value = out_addr & addr_mask
        for i in range(out_words):
            await FallingEdge(dut.clk)
            word = _int(dut.dbg_data, f"dbg_data[{out_addr + i}]", problems)
            if i + 1 < out_words:
                dut.dbg_addr.value = (out_addr + i + 1) & addr_mask
            outputs.append(word)

    result = {
        "done": done,
        "error": error,
        "counters": counters,
        "outputs": outputs,
        "sim_seconds": wall1 - wall0,
        "cycles_simulated": cycles,
        "layer_cycles": layer_cycles,
        "problems": problems,
    }
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, result_path)
