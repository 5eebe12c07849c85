# amaranth: UnusedElaboratable=no
"""sim.backends.dram_model.DramModel: the simulated DRAM the engine runs against.

Checked: every read answers ``image[addr]`` in request order, under the
model's own LFSR stalls plus random request gaps and response-ready stalls
from the testbench; a response, once offered, is held with a stable payload
until taken; the response latency is constant and reads run at one word per
cycle when nothing stalls; writes land (read back via ``dbg`` and the read
port); the stall knob produces stalls at about the requested rate; and the
documented latency (``latency`` cycles from request to response).
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.layouts import dram_write_signature
from sim.backends.dram_model import DramModel

from hwsim import Sink, pack, simulate, stalls

AW = 7


def make_image(seed: int, n: int = 1 << AW) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(0, 1 << 32, size=n, dtype=np.uint64)]


def run_reads(dut, addrs, *, req_gap: float, resp_stall: float, seed: int, max_cycles: int = 4000):
    """Issue reads of ``addrs`` (one outstanding address offered at a time, held until taken).

    Returns (accept cycles, response cycles, response words, protocol errors,
    cycles with req.ready low while a request was offered).
    """
    rng = np.random.default_rng(seed)
    gaps = stalls(rng, max_cycles, req_gap)
    rst = stalls(rng, max_cycles, resp_stall)
    acc, resp_cycles, words, errors = [], [], [], []
    not_ready = [0]

    async def bench(ctx):
        pos = 0
        offering = False
        sink = Sink("response", errors)
        sink.items, sink.cycles = words, resp_cycles
        for cycle in range(max_cycles):
            if not offering and pos < len(addrs) and not gaps[cycle]:
                offering = True
            ctx.set(dut.rd.req.valid, int(offering))
            ctx.set(dut.rd.req.payload, addrs[pos] if offering else 0)
            ready = not rst[cycle]
            ctx.set(dut.rd.resp.ready, int(ready))
            if offering:
                if ctx.get(dut.rd.req.ready):
                    acc.append(cycle)
                    pos += 1
                    offering = False
                else:
                    not_ready[0] += 1
            sink.sample(ctx.get(dut.rd.resp.valid), int(ctx.get(dut.rd.resp.payload)), ready, cycle)
            await ctx.tick()
            if len(words) == len(addrs):
                for _ in range(20):   # nothing more may come
                    ctx.set(dut.rd.req.valid, 0)
                    ctx.set(dut.rd.resp.ready, 1)
                    if ctx.get(dut.rd.resp.valid):
                        errors.append("extra response")
                    await ctx.tick()
                return
        raise AssertionError(f"timeout: {len(acc)}/{len(addrs)} accepted, {len(words)} answered")

    simulate(dut, bench)
    return acc, resp_cycles, words, errors, not_ready[0]


@pytest.mark.parametrize("latency,stall", [(3, 0), (3, 64), (10, 128), (6, 200)])
def test_reads_in_order_under_stalls(latency, stall):
    image = make_image(latency)
    rng = np.random.default_rng(100 + stall)
    addrs = [int(a) for a in rng.integers(0, 1 << AW, size=150)]
    dut = DramModel(image, AW, latency=latency, stall=stall, seed=0x1234 + latency)
    acc, resp, words, errors, _ = run_reads(dut, addrs, req_gap=0.2, resp_stall=0.3, seed=stall)
    assert errors == []
    assert len(words) == len(addrs)
    assert words == [image[a] for a in addrs]
    # no response before its request plus the latency
    assert all(r >= a + latency for a, r in zip(acc, resp))


@pytest.mark.parametrize("latency", [3, 4, 5, 10])
def test_latency_constant_and_full_rate(latency):
    """No stalls: every request accepted at once, every response the same fixed time later,
    one word per cycle."""
    image = make_image(7)
    addrs = list(range(3, 3 + 40)) + [0, 127, 64]
    dut = DramModel(image, AW, latency=latency)
    acc, resp, words, errors, not_ready = run_reads(dut, addrs, req_gap=0, resp_stall=0, seed=1)
    assert errors == [] and not_ready == 0
    assert words == [image[a] for a in addrs]
    assert acc == list(range(acc[0], acc[0] + len(addrs)))
    lat = {r - a for a, r in zip(acc, resp)}
    assert len(lat) == 1, f"latency varies: {sorted(lat)}"
    assert lat.pop() >= latency


@pytest.mark.parametrize("latency", [3, 4, 11])
def test_latency_as_documented(latency):
    image = make_image(3)
    addrs = [5, 9, 17, 33, 65]
    dut = DramModel(image, AW, latency=latency)
    acc, resp, words, errors, _ = run_reads(dut, addrs, req_gap=0.5, resp_stall=0, seed=4)
    assert words == [image[a] for a in addrs]
    assert [r - a for a, r in zip(acc, resp)] == [latency] * len(addrs)


@pytest.mark.parametrize("stall", [0, 128])
def test_stall_rate(stall):
    """One request at a time into an empty DRAM, so only the stall knob can withhold
    ``req.ready``: with ``stall`` = 128/256 about half the offered cycles are refused
    (and responses are delayed); with 0, none is, and each answer takes the fixed latency."""
    image = make_image(1)
    dut = DramModel(image, AW, latency=3, stall=stall, seed=99)
    n = 150
    stats = {"refused": 0, "accepted": 0, "resp_wait": [], "words": []}

    async def bench(ctx):
        ctx.set(dut.rd.resp.ready, 1)
        for k in range(n):
            ctx.set(dut.rd.req.valid, 1)
            ctx.set(dut.rd.req.payload, k % 128)
            for _ in range(100):
                if ctx.get(dut.rd.req.ready):
                    break
                stats["refused"] += 1
                await ctx.tick()
            else:
                raise AssertionError("request never accepted")
            stats["accepted"] += 1
            await ctx.tick()
            ctx.set(dut.rd.req.valid, 0)
            for wait in range(100):
                if ctx.get(dut.rd.resp.valid):
                    stats["words"].append(int(ctx.get(dut.rd.resp.payload)))
                    stats["resp_wait"].append(wait)
                    break
                await ctx.tick()
            else:
                raise AssertionError("no response")
            await ctx.tick()

    simulate(dut, bench)
    assert stats["words"] == [image[k % 128] for k in range(n)]
    rate = stats["refused"] / (stats["refused"] + stats["accepted"])
    if stall == 0:
        assert rate == 0 and len(set(stats["resp_wait"])) == 1
    else:
        assert 0.35 < rate < 0.65, rate
        assert len(set(stats["resp_wait"])) > 1, "responses should be delayed at random"


def test_writes_then_reads():
    """Posted writes under stalls land in memory; later reads (and dbg) see them."""
    image = make_image(11)
    rng = np.random.default_rng(11)
    writes = [(int(a), int(d)) for a, d in zip(rng.integers(0, 1 << AW, size=80),
                                                rng.integers(0, 1 << 32, size=80, dtype=np.uint64))]
    expect = list(image)
    for a, d in writes:
        expect[a] = d
    dut = DramModel(image, AW, latency=3, stall=100, seed=5)
    layout = dram_write_signature(AW).members["payload"].shape
    gaps = stalls(rng, 2000, 0.3)
    state = {"taken": 0, "stalled": 0}
    dbg = []

    async def bench(ctx):
        pos, offering = 0, False
        for cycle in range(2000):
            if not offering and pos < len(writes) and not gaps[cycle]:
                offering = True
            ctx.set(dut.wr.valid, int(offering))
            if offering:
                a, d = writes[pos]
                ctx.set(dut.wr.payload.as_value(), pack(layout, addr=a, data=d))
                if ctx.get(dut.wr.ready):
                    pos += 1
                    offering = False
                else:
                    state["stalled"] += 1
            await ctx.tick()
            if pos == len(writes):
                break
        state["taken"] = pos
        ctx.set(dut.wr.valid, 0)
        for a in range(1 << AW):
            ctx.set(dut.dbg_addr, a)
            await ctx.tick()
            dbg.append(int(ctx.get(dut.dbg_data)))

    simulate(dut, bench)
    assert state["taken"] == len(writes)
    rate = state["stalled"] / (state["stalled"] + state["taken"])
    assert 0.2 < rate < 0.6, f"stall=100/256 should withhold wr.ready ~39% of the time, got {rate}"
    assert dbg == expect
    # and through the read port, after the writes
    dut2 = DramModel(expect, AW, latency=3)
    *_, words, errors, _ = run_reads(dut2, list(range(1 << AW)), req_gap=0, resp_stall=0.2, seed=3)
    assert words == expect and errors == []


def test_write_then_read_same_run():
    """A read accepted after a write's transfer returns the written word."""
    image = [0] * (1 << AW)
    dut = DramModel(image, AW, latency=3)
    layout = dram_write_signature(AW).members["payload"].shape
    got = []

    async def bench(ctx):
        ctx.set(dut.wr.valid, 1)
        ctx.set(dut.wr.payload.as_value(), pack(layout, addr=9, data=0xCAFEF00D))
        assert ctx.get(dut.wr.ready)
        await ctx.tick()
        ctx.set(dut.wr.valid, 0)
        ctx.set(dut.rd.req.valid, 1)
        ctx.set(dut.rd.req.payload, 9)
        ctx.set(dut.rd.resp.ready, 1)
        assert ctx.get(dut.rd.req.ready)
        await ctx.tick()
        ctx.set(dut.rd.req.valid, 0)
        for _ in range(20):
            if ctx.get(dut.rd.resp.valid):
                got.append(int(ctx.get(dut.rd.resp.payload)))
            await ctx.tick()

    simulate(dut, bench)
    assert got == [0xCAFEF00D]


def test_bad_parameters():
    with pytest.raises(ValueError):
        DramModel([0], 4, latency=2)
    with pytest.raises(ValueError):
        DramModel([0] * 17, 4)
    with pytest.raises(ValueError):
        DramModel([0], 4, stall=256)


def test_dram_mutant_is_caught():
    """A DRAM that corrupts the response payload's top bit fails the in-order check."""
    from hwsim import Mutant

    image = make_image(2)
    dut = Mutant(DramModel(image, AW, latency=3, stall=64), {"rd.resp.payload": lambda d: d ^ (1 << 31)})
    addrs = list(range(30))
    *_, words, errors, _ = run_reads(dut, addrs, req_gap=0.2, resp_stall=0.3, seed=1)
    assert errors == [] and len(words) == 30
    assert words != [image[a] for a in addrs]
