"""hw.dram_reader.DramReader: pipelined reads of rows x row_words consecutive words.

The testbench holds a tiny behavioural DRAM: it accepts requests (with random
``req.ready`` stalls), answers each exactly in order no earlier than
``latency`` cycles later, and offers responses with random delays (holding a
response until it is taken).  The reader's ``data`` output gets random ready
stalls; commands come with random gaps.  Checked: the exact request address
sequence, the exact data sequence, the bound of ``depth`` words issued and not
yet popped, ``idle``, and full throughput when nothing stalls.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from hw.dram_reader import DramReader, read_command

from hwsim import Mutant, Source, pack, simulate, stalls

ADDR_WIDTH = 12


def mem_word(addr: int) -> int:
    return (addr * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF


def expected_addresses(commands, addr_width=ADDR_WIDTH):
    out = []
    for addr, rows, row_words in commands:
        out += [(addr + k) % (1 << addr_width) for k in range(rows * row_words)]
    return out


def run_reader(dut, commands, *, latency: int, seed: int, cmd_gap=0.3, req_stall=0.3, resp_stall=0.3,
               data_stall=0.3, max_cycles=None):
    """Run ``commands`` through the reader; return a dict of observations."""
    rng = np.random.default_rng(seed)
    total = sum(r * w for _, r, w in commands)
    depth = dut._depth
    per_word = -(-(latency + 3) // depth)   # round trip over words in flight
    max_cycles = max_cycles or (6 * total * per_word + 10 * len(commands) + 4 * latency + 60)
    cmd_gaps = stalls(rng, max_cycles, cmd_gap)
    req_st = stalls(rng, max_cycles, req_stall)
    resp_st = stalls(rng, max_cycles, resp_stall)
    data_st = stalls(rng, max_cycles, data_stall)
    layout = read_command(ADDR_WIDTH)
    items = [pack(layout, addr=a, rows=r, row_words=w) for a, r, w in commands]
    obs = {"req": [], "data": [], "data_cycles": [], "req_cycles": [], "max_ahead": 0, "errors": []}

    async def bench(ctx):
        src = Source(dut.cmd, items, cmd_gaps)
        inflight = deque()    # (cycle the response may be offered, word)
        offer = None          # response being offered
        popped = 0
        for cycle in range(max_cycles):
            src.drive(ctx)
            ctx.set(dut.dram.req.ready, int(not req_st[cycle]))
            if offer is None and inflight and inflight[0][0] <= cycle and not resp_st[cycle]:
                offer = inflight.popleft()[1]
            ctx.set(dut.dram.resp.valid, int(offer is not None))
            ctx.set(dut.dram.resp.payload, offer if offer is not None else 0xDEADBEEF)
            ctx.set(dut.data.ready, int(not data_st[cycle]))

            ahead = len(obs["req"]) - popped
            if ahead > 0 and ctx.get(dut.idle):
                obs["errors"].append(f"cycle {cycle}: idle with {ahead} words in flight")
            src.sample(ctx)
            if ctx.get(dut.dram.req.valid) and not req_st[cycle]:
                addr = int(ctx.get(dut.dram.req.payload))
                obs["req"].append(addr)
                obs["req_cycles"].append(cycle)
                inflight.append((cycle + latency, mem_word(addr)))
            if offer is not None and ctx.get(dut.dram.resp.ready):
                offer = None
            if ctx.get(dut.data.valid) and not data_st[cycle]:
                obs["data"].append(int(ctx.get(dut.data.payload)))
                obs["data_cycles"].append(cycle)
                popped += 1
            obs["max_ahead"] = max(obs["max_ahead"], len(obs["req"]) - popped)
            await ctx.tick()
            if src.done and popped == total and ctx.get(dut.idle) and offer is None:
                # stay a while: nothing more may be requested or delivered
                for _ in range(latency + 8):
                    ctx.set(dut.dram.req.ready, 1)
                    ctx.set(dut.data.ready, 1)
                    if ctx.get(dut.dram.req.valid):
                        obs["errors"].append("request after the last command finished")
                    if ctx.get(dut.data.valid):
                        obs["errors"].append("data after the last command finished")
                    await ctx.tick()
                obs["cycles"] = cycle + 1
                return
        raise AssertionError(f"timeout after {max_cycles} cycles: {src.pos}/{len(items)} commands, "
                             f"{len(obs['req'])} requests, {popped}/{total} words")

    simulate(dut, bench)
    return obs


def random_commands(rng, n, *, max_rows=5, max_words=7):
    cmds = []
    for _ in range(n):
        kind = rng.random()
        rows = int(rng.integers(1, max_rows + 1))
        words = int(rng.integers(1, max_words + 1))
        if kind < 0.1:
            rows = 0
        elif kind < 0.2:
            words = 0
        cmds.append((int(rng.integers(0, (1 << ADDR_WIDTH) - 64)), rows, words))
    return cmds


@pytest.mark.parametrize("depth,latency", [(16, 10), (4, 1), (4, 6), (2, 3), (8, 3), (1, 4), (3, 2)])
def test_reader_random(depth, latency):
    seed = depth * 100 + latency
    rng = np.random.default_rng(seed)
    commands = random_commands(rng, 14)
    commands.insert(3, (100, 0, 0))          # zero-length commands, also back to back
    commands.insert(4, (200, 3, 0))
    commands.append(((1 << ADDR_WIDTH) - 3, 2, 3))  # wraps around the address space
    dut = DramReader(ADDR_WIDTH, depth)
    obs = run_reader(dut, commands, latency=latency, seed=seed)
    addrs = expected_addresses(commands)
    assert obs["errors"] == []
    assert len(obs["req"]) == len(addrs)
    assert obs["req"] == addrs
    assert obs["data"] == [mem_word(a) for a in addrs]
    assert obs["max_ahead"] <= depth
    assert obs["max_ahead"] == depth, "the reader should fill its FIFO when the output stalls"


def test_reader_zero_length_only():
    """Commands that read nothing: no request, no data, and the next command is still accepted."""
    commands = [(5, 0, 4), (6, 4, 0), (7, 0, 0), (8, 1, 1)]
    obs = run_reader(DramReader(ADDR_WIDTH, 4), commands, latency=2, seed=5)
    assert obs["errors"] == []
    assert obs["req"] == [8]
    assert obs["data"] == [mem_word(8)]


@pytest.mark.parametrize("latency", [1, 4, 10])
def test_reader_full_rate(latency):
    """No stalls anywhere and depth >= latency + 3: one word per cycle, no gaps.

    (depth = latency + 1 or + 2 is not enough: the words counted against ``depth`` include
    the ones in the response FIFO, which adds 2 cycles to the round trip.)
    """
    depth = latency + 3  # measured threshold: pending words include the 2-cycle FIFO
    commands = [(40, 6, 9), (1000, 1, 17)]
    obs = run_reader(DramReader(ADDR_WIDTH, depth), commands, latency=latency, seed=1,
                     cmd_gap=0, req_stall=0, resp_stall=0, data_stall=0)
    addrs = expected_addresses(commands)
    assert obs["data"] == [mem_word(a) for a in addrs]
    # requests of one command are back to back; the data of both commands is one burst
    first = obs["req_cycles"][:54]
    assert first == list(range(first[0], first[0] + 54))
    dc = obs["data_cycles"][:54]
    assert dc == list(range(dc[0], dc[0] + 54)), f"data not continuous: {dc}"


def test_reader_mutant_is_caught():
    """A reader whose requests skip an address on odd addresses fails the random check."""
    dut = Mutant(DramReader(ADDR_WIDTH, 4), {"dram.req.payload": lambda a: a | 1})
    commands = [(10, 2, 3)]
    obs = run_reader(dut, commands, latency=2, seed=9)
    assert obs["req"] != expected_addresses(commands)
