"""The engine's event counters (:mod:`model.contract.counters`)."""
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import CounterLayout
from model.contract.config import LANES
from model.contract.counters import COUNTERS, RTL_COUNTERS
from model.contract.layout import HUFFMAN_MAX_LEN_LIMIT

#: Width of one cycle's step of a counter: the most is a lookup's MACs (one per lane)
#: or a Huffman code's bits.
STEP_BITS = max(max(LANES), HUFFMAN_MAX_LEN_LIMIT).bit_length()


class EventCounters(wiring.Component):
    """The engine's counters: each adds its step every cycle, until a clear.

    The counters are those of :mod:`model.contract.counters`: the golden
    model's events, and the RTL's cycle counts.  Only the counters that can
    move in this engine have a step; the others stay at zero (an engine
    without a PVQ unit makes no ``adds``), so every step is driven by logic.

    Parameters
    ----------
    moving : iterable of str
        The counters that have a step, by name.
    step_bits : int
        Width of a step (:data:`STEP_BITS`; wider in an engine with several processing elements,
        whose MACs per cycle are ``lanes * pes``).
    wide : dict, optional
        Counters whose step is wider, by name (the column unit's ``zero_skips``: a layer's at its end).

    Members
    -------
    steps : In(data.StructLayout({name: step_bits for name in moving}))
        What each of those counters goes up by this cycle.
    clear : In(1)
        Zero every counter (it wins over this cycle's steps).
    counters : Out(CounterLayout)
        The counts since the last clear, of the events up to the cycle before this one (each step
        is registered before it is added).
    """

    def __init__(self, moving, step_bits: int = STEP_BITS, wide: dict | None = None):
        moving = tuple(moving)
        wide = dict(wide or {})
        unknown = set(moving) - set(COUNTERS + RTL_COUNTERS)
        if unknown:
            raise ValueError(f"no such counters: {', '.join(sorted(unknown))}")
        self.moving = moving
        super().__init__({
            "steps": In(data.StructLayout({name: unsigned(wide.get(name, step_bits)) for name in moving})),
            "clear": In(1),
            "counters": Out(CounterLayout),
        })

    def elaborate(self, platform):
        m = Module()
        # Each step is registered before it is added: the 48-bit adds start at a register, not at the
        # end of the datapath's handshakes, which would set the engine's clock (issue 16).  The counts
        # lag their events by one cycle; the engine raises ``done`` a cycle after it finishes.
        pending = Signal(self.steps.shape())
        m.d.sync += pending.eq(self.steps)
        pending = data.View(self.steps.shape(), pending)
        for name in self.moving:
            count = getattr(self.counters, name)
            m.d.sync += count.eq(count + getattr(pending, name))
        with m.If(self.clear):
            m.d.sync += [self.counters.eq(0), pending.eq(0)]
        return m
