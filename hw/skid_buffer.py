"""Skid buffer: a stream stage whose ``ready`` comes from a register."""
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """Passes a stream on unchanged, with the upstream ``ready`` taken from a register.

    While the buffer is empty a word goes straight through (no latency); a word offered
    while downstream is not ready is kept in the buffer, and upstream waits (``i.ready``
    low) until it has been taken.  So the downstream ``ready``, which in the engine is the
    end of a long chain of handshakes (the fetch stage, the row source's unpacking), never
    reaches upstream's logic (the DRAM reader's FIFO) in the same cycle: that chain set the
    engine's clock (issue 16).  Every word is passed on once, in order; downstream, always
    ready, sees the upstream's rate.

    Parameters
    ----------
    shape : shape-like
        The payload's shape.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    holding : Out(1)
        The buffer holds a word (not yet taken).
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape)), "holding": Out(1)})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        kept = Signal.like(self.i.payload)
        m.d.comb += [self.i.ready.eq(~full), self.holding.eq(full),
                     self.o.valid.eq(full | self.i.valid),
                     self.o.payload.eq(Mux(full, kept, self.i.payload))]
        with m.If(full):
            with m.If(self.o.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.i.valid & ~self.o.ready):
            m.d.sync += [full.eq(1), kept.eq(self.i.payload)]
        return m
