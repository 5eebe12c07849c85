"""Small helpers for the block-level Amaranth tests (tests/test_hw_*.py).

Every block test drives its DUT from one async testbench that works cycle by
cycle: set the inputs for this cycle, read the (settled) handshakes and
outputs, then ``await ctx.tick()``.  Loops are bounded, so a block that hangs
shows as an ``AssertionError``, never as a hung test.
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Shape
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from hw.layouts import RowResult

CLOCK_PERIOD = 1e-6


def simulate(dut, *benches, vcd: str | None = None) -> None:
    """Run ``dut`` with a clock and the given ``async def bench(ctx)`` testbenches until they return.

    Exceptions raised in a testbench (failed asserts, timeouts) propagate.
    """
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    for bench in benches:
        sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def to_signed(value: int, width: int) -> int:
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def pack(layout: data.StructLayout, **fields) -> int:
    """Field values (ints; nested layouts as ints too) -> the packed integer of ``layout``."""
    word = 0
    for name, field in layout:
        value = int(fields.get(name, 0))
        word |= (value & ((1 << field.width) - 1)) << field.offset
    return word


def unpack(layout: data.StructLayout, word: int) -> dict:
    """Packed integer -> dict of field values (signed fields sign-extended)."""
    out = {}
    for name, field in layout:
        value = (word >> field.offset) & ((1 << field.width) - 1)
        shape = field.shape if isinstance(field.shape, Shape) else Shape.cast(field.shape)
        out[name] = to_signed(value, field.width) if shape.signed else value
    return out


def pack_lanes(values, bits: int = 8) -> int:
    """Lane 0 lowest; values may be negative."""
    mask = (1 << bits) - 1
    return sum((int(v) & mask) << (bits * i) for i, v in enumerate(values))


def unpack_lanes(word: int, lanes: int, bits: int = 8) -> list[int]:
    return [to_signed(word >> (bits * i), bits) for i in range(lanes)]


def stalls(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """``n`` booleans, each True with probability ``p``: where a valid or a ready is withheld.

    About 40% of the stalled cycles come in bursts (runs of 2..11 cycles), so both
    isolated and long stalls are exercised; the overall stall rate stays close to
    ``p`` (slightly below, where bursts overlap), so cycle budgets can use
    ``1 / (1 - p)``.
    """
    out = rng.random(n) < 0.6 * p
    if p > 0:
        for start in np.flatnonzero(rng.random(n) < 0.4 * p / 6.5):
            out[start:start + int(rng.integers(2, 12))] = True
    return out


def budget(transfers: int, *ps: float, slack: int = 60) -> int:
    """A generous cycle limit for ``transfers`` handshakes on paths stalled with probabilities ``ps``."""
    factor = 1.0
    for p in ps:
        factor = max(factor, 1.0 / (1.0 - min(p, 0.9)))
    return int(3 * transfers * factor) + slack


class Source:
    """A stream transmitter that obeys the handshake rules: once ``valid`` is up,
    it stays up with the same payload until the transfer happens.

    ``items`` are packed integers; ``gaps`` (bool array, one per cycle, cycled)
    withholds ``valid`` when a new item would be offered.
    """

    def __init__(self, stream, items, gaps=None):
        self.stream = stream
        self.items = list(items)
        self.gaps = gaps
        self.pos = 0
        self.offering = False
        self.cycle = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.items)

    def drive(self, ctx) -> None:
        """Call once per cycle before sampling handshakes."""
        if not self.offering and not self.done:
            gap = self.gaps is not None and bool(self.gaps[self.cycle % len(self.gaps)])
            self.offering = not gap
        ctx.set(self.stream.valid, int(self.offering))
        if self.offering:
            payload = self.stream.payload
            target = payload.as_value() if isinstance(payload, data.View) else payload
            ctx.set(target, self.items[self.pos])

    def sample(self, ctx) -> bool:
        """Call once per cycle after ``drive``; returns True when a transfer happens this cycle."""
        self.cycle += 1
        if self.offering and (not hasattr(self.stream, "ready") or ctx.get(self.stream.ready)):
            self.pos += 1
            self.offering = False
            return True
        return False


def payload_int(ctx, payload) -> int:
    """Read a stream payload (plain value or layout view) as a packed integer."""
    return int(ctx.get(payload.as_value() if isinstance(payload, data.View) else payload))


class Mutant(wiring.Component):
    """A deliberately broken copy of a block, to prove a test can fail.

    Same ports as ``inner``; every port is wired straight through, except the
    outputs named in ``overrides`` (``"o.payload"`` -> ``fn(inner_value) -> Value``).
    Attributes of ``inner`` (e.g. elaboration parameters) are reachable on the mutant.
    """

    def __init__(self, inner, overrides: dict):
        self._inner = inner
        self._overrides = overrides
        super().__init__(inner.signature)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_inner", "_overrides"):
            raise AttributeError(name)
        if name in self.__dict__.get("_inner").signature.members:
            raise AttributeError(name)  # ports are the mutant's own
        return getattr(self._inner, name)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        for path, member, outer in self.signature.flatten(self):
            inner = self._inner
            for part in path:
                inner = inner[part] if isinstance(part, int) else getattr(inner, part)
            if isinstance(outer, Const) or isinstance(inner, Const):
                continue
            outer_v = outer.as_value() if isinstance(outer, data.View) else outer
            inner_v = inner.as_value() if isinstance(inner, data.View) else inner
            if member.flow == wiring.In:
                m.d.comb += inner_v.eq(outer_v)
            else:
                fn = self._overrides.get(".".join(map(str, path)))
                m.d.comb += outer_v.eq(fn(inner_v) if fn else inner_v)
        return m


class Sink:
    """The receiving end of a stream, checking the transmitter's rules: once ``valid`` is up it
    stays up with the same payload until the transfer happens.

    Call :meth:`sample` once per cycle with what the stream shows and whether
    this end is ready; transfers collect in ``items`` (with their ``cycles``),
    broken rules in ``errors``.
    """

    def __init__(self, what: str = "payload", errors: list | None = None):
        self.what = what
        self.items, self.cycles = [], []
        self.errors = [] if errors is None else errors
        self.held = None   # offered and not yet taken

    def sample(self, valid: bool, payload, ready: bool, cycle: int) -> bool:
        """Check one cycle; returns True when ``payload`` is transferred in it."""
        if valid:
            if self.held is not None and payload != self.held:
                self.errors.append(f"cycle {cycle}: {self.what} changed while not taken")
            if ready:
                self.items.append(payload)
                self.cycles.append(cycle)
                self.held = None
                return True
            self.held = payload
        elif self.held is not None:
            self.errors.append(f"cycle {cycle}: {self.what} withdrawn before it was taken")
        return False


async def start_row_source(ctx, dut, config: dict, words, gaps) -> Source:
    """Configure a row source (``hw.layouts.RowSourceSignature``: ``config``, ``start``, ``words``),
    pulse ``start``, and return the :class:`Source` that will feed it ``words``."""
    for name, value in config.items():
        ctx.set(getattr(dut.config, name), value)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)
    return Source(dut.words, words, gaps)


def sample_dot_product(ctx, dut, queue, obs: dict, cycle: int) -> bool:
    """One cycle's handshakes of a dot-product unit (``hw.layouts.DotProductSignature``).

    Row parameters the unit takes are popped from ``queue`` (taking one when
    none is offered is an error in ``obs["errors"]``); a result is unpacked
    into ``obs["results"]`` with its cycle in ``obs["result_cycles"]``.
    Returns whether the unit took row parameters this cycle.
    """
    taken = bool(ctx.get(dut.params.ready))
    if taken:
        if queue:
            queue.popleft()
        else:
            obs["errors"].append(f"cycle {cycle}: params consumed with none offered")
    if ctx.get(dut.result.valid):
        obs["results"].append(unpack(RowResult, int(ctx.get(dut.result.payload.as_value()))))
        obs["result_cycles"].append(cycle)
    return taken
