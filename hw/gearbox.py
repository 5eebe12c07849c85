"""Gearbox: re-chunks a byte stream between word widths (DRAM words <-> SRAM lane-words)."""
from math import gcd

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
        # Bytes come and go in whole units of ``gcd(in_bytes, out_bytes)``, so the buffer's fill is
        # counted in units: the shift that places an input word then picks among ``cap / unit + 1``
        # offsets, not ``cap + 1`` (a quarter of the mux levels at 4 -> 4 bytes; area, issue 16).
        unit = gcd(self._in, self._out)
        cap, n_in, n_out = (self._in + self._out) // unit, self._in // unit, self._out // unit
        buf = Signal(BYTE * unit * cap)
        count = Signal(range(cap + 1))   # units held

        m.d.comb += [
            self.i.ready.eq(count <= cap - n_in),
            self.o.valid.eq(count >= n_out),
            self.o.payload.eq(buf[:BYTE * self._out]),
        ]
        emit = self.o.valid & self.o.ready
        take = self.i.valid & self.i.ready
        kept = Signal.like(buf)
        kept_count = Signal.like(count)
        m.d.comb += [
            kept.eq(buf >> (BYTE * self._out) if n_out < cap else 0),
            kept_count.eq(count - n_out),
        ]
        with m.If(~emit):
            m.d.comb += [kept.eq(buf), kept_count.eq(count)]
        m.d.sync += [buf.eq(kept), count.eq(kept_count)]
        with m.If(take):
            m.d.sync += [buf.eq(kept | (self.i.payload << (kept_count * (BYTE * unit)))),
                         count.eq(kept_count + n_in)]
        return m
