"""The row accumulator both dot-product units end in: bias plus terms, modulo 2**32."""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import RowParams, RowResult, row_marked
from model.contract.fixedpoint import ACC_BITS

#: One term of a row's sum.  Terms are added modulo 2**32, so a wider sum may come truncated.
TermLayout = row_marked({"value": signed(ACC_BITS)})


class RowAccumulator(wiring.Component):
    """Sums each row's terms onto its bias in a 32-bit accumulator that wraps like the golden model.

    The accumulator starts a row at the row's bias (from ``params``, read with
    the row's first term), adds one term per transfer, and with the row's last
    term hands the sum, with the row's ``mult`` and ``shift``, to ``result``
    one cycle later and consumes the row's parameters.  It never stalls.
    Golden twin: :func:`model.golden.mac.accumulate` (with
    :func:`model.contract.fixedpoint.wrap_acc`).

    Members
    -------
    terms : In(stream.Signature(TermLayout, always_ready=True))
        The row's terms, with its ``first`` and ``last`` marks.
    params : In(stream.Signature(RowParams))
        The current row's bias and requantization; assumed valid from the
        row's first term (the engine's row-parameter FIFO runs ahead), and
        consumed (``ready``) with its last.
    result : Out(stream.Signature(RowResult, always_ready=True))
        One transfer per row.
    """

    terms: In(stream.Signature(TermLayout, always_ready=True))
    params: In(stream.Signature(RowParams))
    result: Out(stream.Signature(RowResult, always_ready=True))

    def elaborate(self, platform):
        m = Module()
        term = self.terms.payload
        acc = Signal(signed(ACC_BITS))
        acc_next = Signal(signed(ACC_BITS))     # the 32-bit width is the golden model's wrap
        m.d.comb += acc_next.eq(Mux(term.first, self.params.payload.bias, acc) + term.value)
        row_end = self.terms.valid & term.last
        m.d.comb += self.params.ready.eq(row_end)
        with m.If(self.terms.valid):
            m.d.sync += acc.eq(acc_next)
        m.d.sync += [
            self.result.valid.eq(row_end),
            self.result.payload.acc.eq(acc_next),
            self.result.payload.mult.eq(self.params.payload.mult),
            self.result.payload.shift.eq(self.params.payload.shift),
            self.result.payload.act.eq(self.params.payload.act),
        ]
        return m
