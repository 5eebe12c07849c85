"""Runs the simulation top in the Amaranth simulator."""
from __future__ import annotations

import time

from amaranth.sim import Simulator

from model.contract.config import EngineConfig
from model.contract.counters import COUNTERS, RTL_COUNTERS
from sim.backends.top import SimTop

CLOCK_PERIOD = 1e-8  # seconds; only the waveform's time axis depends on it


def run_amaranth(config: EngineConfig, image, *, out_addr: int, out_words: int, max_cycles: int,
                 latency: int = 10, stall: int = 0, seed: int = 1, vcd_path: str | None = None) -> dict:
    """Run one job; return done, error, counters, output words, cycles per layer and simulator speed.

    The testbench wakes only to start the engine, where ``done`` or the engine's
    ``phase`` (the running layer) changes, and to read results back, so whole
    networks simulate at the simulator's full speed.  At each phase change it
    reads the cycle counter, as the cocotb testbench and the Verilator harness do,
    for ``layer_cycles``.
    """
    top = SimTop(config, image, latency=latency, stall=stall, seed=seed)
    sim = Simulator(top)
    sim.add_clock(CLOCK_PERIOD)
    result = {}

    async def bench(ctx):
        """Pulse ``start``, sleep until ``done`` or the bound, then read the results back."""
        await ctx.tick()
        ctx.set(top.start, 1)
        await ctx.tick()
        ctx.set(top.start, 0)
        layer_cycles: list[int] = []
        phase, since = 0, 0
        while not ctx.get(top.done):
            remaining = max_cycles - int(ctx.get(top.counters.cycles))
            if remaining <= 0:
                break
            *_, expired = await ctx.changed(top.done, top.phase).delay(remaining * CLOCK_PERIOD)
            if expired:   # the hang bound passed with nothing changing
                break
            now_phase, now = int(ctx.get(top.phase)), int(ctx.get(top.counters.cycles))
            if now_phase != phase:
                if phase:
                    layer_cycles.extend([0] * (phase - len(layer_cycles)))
                    layer_cycles[phase - 1] += now - since
                phase, since = now_phase, now
        result["layer_cycles"] = layer_cycles
        result["done"] = bool(ctx.get(top.done))
        result["error"] = int(ctx.get(top.error))
        result["counters"] = {n: int(ctx.get(getattr(top.counters, n))) for n in COUNTERS + RTL_COUNTERS}
        words = []
        if result["done"] and not result["error"]:
            for a in range(out_addr, out_addr + out_words):
                ctx.set(top.dbg_addr, a)
                await ctx.tick()
                words.append(int(ctx.get(top.dbg_data)))
        result["outputs"] = words

    sim.add_testbench(bench)
    t0 = time.perf_counter()
    if vcd_path:
        with sim.write_vcd(vcd_path):
            sim.run()
    else:
        sim.run()
    result["sim_seconds"] = time.perf_counter() - t0
    return result
