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
    """Run one job; return done, error, counters, output words and simulator speed.

    The testbench wakes only to start the engine, when ``done`` changes, and to
    read results back, so whole networks simulate at the simulator's full speed.
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
        if not ctx.get(top.done):
            await ctx.changed(top.done).delay(max_cycles * CLOCK_PERIOD)
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
