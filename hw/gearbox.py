"""Gearbox: re-chunks a byte stream between word widths (DRAM words <-> SRAM lane-words)."""
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

BYTE = 8


class Gearbox(wiring.Component):
    """Re-chunks a byte stream from ``in_bytes``-wide to ``out_bytes``-wide words.

    Bytes keep their order (lowest byte first).  Both sides run at full rate:
    the buffer holds ``in_bytes + out_bytes`` bytes, so it can always accept a
    word while it waits for enough bytes to emit one.

    Parameters
    ----------
    in_bytes, out_bytes : int
        Word widths in bytes.

    Members
    -------
    i : In(stream.Signature(8 * in_bytes))
    o : Out(stream.Signature(8 * out_bytes))
    """

    def __init__(self, in_bytes: int, out_bytes: int):
        self._in, self._out = in_bytes, out_bytes
        super().__init__({
            "i": In(stream.Signature(unsigned(BYTE * in_bytes))),
            "o": Out(stream.Signature(unsigned(BYTE * out_bytes))),
        })

    def elaborate(self, platform):
        m = Module()
        cap = self._in + self._out
        buf = Signal(BYTE * cap)
        count = Signal(range(cap + 1))

        m.d.comb += [
            self.i.ready.eq(count <= cap - self._in),
            self.o.valid.eq(count >= self._out),
            self.o.payload.eq(buf[:BYTE * self._out]),
        ]
        emit = self.o.valid & self.o.ready
        take = self.i.valid & self.i.ready
        kept = Signal.like(buf)
        kept_count = Signal.like(count)
        m.d.comb += [
            kept.eq(buf >> (BYTE * self._out) if self._out < cap else 0),
            kept_count.eq(count - self._out),
        ]
        with m.If(~emit):
            m.d.comb += [kept.eq(buf), kept_count.eq(count)]
        m.d.sync += [buf.eq(kept), count.eq(kept_count)]
        with m.If(take):
            m.d.sync += [buf.eq(kept | (self.i.payload << (kept_count * BYTE))),
                         count.eq(kept_count + self._in)]
        return m
