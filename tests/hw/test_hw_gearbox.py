"""hw.gearbox.Gearbox: re-chunking a byte stream between word widths.

Golden model: the output words are the input byte stream (each input word
lowest byte first) cut into ``out_bytes`` groups, lowest byte first; the bytes
of a trailing incomplete group stay inside.  Inputs get random valid gaps,
the output random ready stalls; the output must also obey the stream rules
(valid held, payload stable until taken) and the block must run at full rate
when neither side stalls.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.gearbox import Gearbox

from hwsim import Sink, Source, budget, simulate, stalls

RATIOS = [(4, 1), (4, 2), (4, 4), (4, 8), (1, 4), (2, 4), (8, 4), (1, 1), (2, 8), (8, 2)]


def byte_model(words, in_bytes: int, out_bytes: int) -> list[int]:
    """Output words the gearbox must produce from ``words``."""
    stream = b"".join(int(w).to_bytes(in_bytes, "little") for w in words)
    n = len(stream) // out_bytes
    return [int.from_bytes(stream[k * out_bytes:(k + 1) * out_bytes], "little") for k in range(n)]


def run_gearbox(dut, words, in_gap: float, out_stall: float, seed: int, extra: int = 40):
    """Stream ``words`` through ``dut``; return (outputs, cycle of each output transfer, protocol errors)."""
    in_bytes, out_bytes = dut._in, dut._out
    rng = np.random.default_rng(seed)
    expected_n = len(words) * in_bytes // out_bytes
    n_cycles = budget(max(len(words), expected_n), in_gap, out_stall, slack=extra)
    gaps = stalls(rng, n_cycles, in_gap)
    rstall = stalls(rng, n_cycles, out_stall)
    outputs, when, errors = [], [], []

    async def bench(ctx):
        src = Source(dut.i, words, gaps)
        sink = Sink("output", errors)
        sink.items, sink.cycles = outputs, when
        for cycle in range(n_cycles):
            src.drive(ctx)
            ready = not rstall[cycle]
            ctx.set(dut.o.ready, int(ready))
            src.sample(ctx)
            sink.sample(ctx.get(dut.o.valid), int(ctx.get(dut.o.payload)), ready, cycle)
            await ctx.tick()
            if src.done and len(outputs) >= expected_n:
                # run a few more cycles to catch any spurious extra output
                for _ in range(8):
                    ctx.set(dut.i.valid, 0)
                    ctx.set(dut.o.ready, 1)
                    if ctx.get(dut.o.valid):
                        outputs.append(int(ctx.get(dut.o.payload)))
                    await ctx.tick()
                return
        raise AssertionError(f"timeout: {len(outputs)}/{expected_n} outputs after {n_cycles} cycles, "
                             f"{src.pos}/{len(words)} inputs taken")

    simulate(dut, bench)
    return outputs, when, errors


@pytest.mark.parametrize("in_gap,out_stall", [(0.3, 0.3), (0.0, 0.7), (0.7, 0.0)])
@pytest.mark.parametrize("in_bytes,out_bytes", RATIOS)
def test_gearbox_random_stalls(in_bytes, out_bytes, in_gap, out_stall):
    seed = 1000 * in_bytes + out_bytes + int(10 * in_gap)
    rng = np.random.default_rng(seed)
    # a byte count that is not a multiple of out_bytes leaves bytes inside, never emitted
    n = 60 + int(rng.integers(0, 4))
    words = [int(x) for x in rng.integers(0, 1 << (8 * in_bytes), size=n, dtype=np.uint64)]
    dut = Gearbox(in_bytes, out_bytes)
    outputs, _, errors = run_gearbox(dut, words, in_gap=in_gap, out_stall=out_stall, seed=seed)
    expected = byte_model(words, in_bytes, out_bytes)
    assert errors == []
    assert len(outputs) == len(expected)
    assert outputs == expected


@pytest.mark.parametrize("in_bytes,out_bytes", [(4, 1), (4, 8), (1, 4), (8, 4), (4, 4)])
def test_gearbox_full_rate(in_bytes, out_bytes):
    """No stalls on either side: one output every cycle once the output side is the bottleneck
    (or one input every cycle when the input side is), with no gaps."""
    rng = np.random.default_rng(7 + in_bytes * 10 + out_bytes)
    n = 32
    words = [int(x) for x in rng.integers(0, 1 << (8 * in_bytes), size=n, dtype=np.uint64)]
    dut = Gearbox(in_bytes, out_bytes)
    outputs, when, errors = run_gearbox(dut, words, in_gap=0.0, out_stall=0.0, seed=1)
    assert errors == []
    assert outputs == byte_model(words, in_bytes, out_bytes)
    # The gearbox moves min(in_bytes, out_bytes)... per cycle on the slow side: total cycles
    # from first to last output equal the bytes it had to move divided by the narrower width.
    span = when[-1] - when[0] + 1
    if out_bytes <= in_bytes:
        assert span == len(outputs), f"output not continuous: {when}"
    else:
        ratio = out_bytes // in_bytes
        assert span == (len(outputs) - 1) * ratio + 1, f"input side not at full rate: {when}"


def test_gearbox_model_catches_wrong_order():
    """The byte model itself is not symmetric under byte swaps: a gearbox that emitted the
    bytes of an input word high byte first would be caught."""
    words = [0x04030201, 0x08070605]
    assert byte_model(words, 4, 1) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert byte_model(words, 4, 8) == [0x0807060504030201]
    assert byte_model([0x0201, 0x0403], 2, 4) == [0x04030201]
    assert byte_model([1, 2, 3], 1, 2) == [0x0201]


def test_gearbox_mutant_is_caught():
    """A gearbox that swaps the two low bytes of each output word fails the random test."""
    from amaranth.hdl import Cat

    from hwsim import Mutant

    dut = Mutant(Gearbox(4, 2), {"o.payload": lambda p: Cat(p[8:16], p[0:8])})
    rng = np.random.default_rng(3)
    words = [int(x) for x in rng.integers(0, 1 << 32, size=20, dtype=np.uint64)]
    outputs, _, errors = run_gearbox(dut, words, in_gap=0.3, out_stall=0.3, seed=3)
    assert errors == [] and len(outputs) == 40
    assert outputs != byte_model(words, 4, 2)
