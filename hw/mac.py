from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from model.contract.fixedpoint import ACC_BITS, ACT_BITS

from hw.layouts import RowParams, RowResult, operands_layout


def adder_tree(values):
    """Pairwise sum, so the depth is log2(lanes) adders rather than lanes."""
    values = list(values)
    while len(values) > 1:
        values = [a + b for a, b in zip(values[0::2], values[1::2])] + values[len(values) & ~1:]
    return values[0]


class MacLanes(wiring.Component):
    """``lanes`` int8 multiplies, an adder tree and a 32-bit row accumulator.

    A two-stage pipeline that never stalls: stage 1 multiplies, stage 2 sums
    and accumulates.  The accumulator starts each row at the row's bias (from
    ``params``), wraps modulo 2**32 as the golden model does, and the row's
    parameters are consumed with its last beat.

    Parameters
    ----------
    lanes : int
        Multipliers, and the codeword dimension.

    Members
    -------
    operands : In(stream.Signature(operands_layout(lanes), always_ready=True))
        Codeword and activation sub-vector pairs, with row boundaries.
    params : In(stream.Signature(RowParams))
        The current row's bias and requantization, read at its first beat and
        consumed at its last.
    result : Out(stream.Signature(RowResult, always_ready=True))
        One accumulator per row.
    """

    def __init__(self, lanes: int):
        self._lanes = lanes
        super().__init__({
            "operands": In(stream.Signature(operands_layout(lanes), always_ready=True)),
            "params": In(stream.Signature(RowParams)),
            "result": Out(stream.Signature(RowResult, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        ops = self.operands.payload
        products = [Signal(signed(2 * ACT_BITS), name=f"product{i}") for i in range(self._lanes)]
        valid1, first1, last1 = Signal(), Signal(), Signal()
        m.d.sync += [valid1.eq(self.operands.valid), first1.eq(ops.first), last1.eq(ops.last)]
        for i, p in enumerate(products):
            m.d.sync += p.eq(ops.codeword[i] * ops.activations[i])

        acc = Signal(signed(ACC_BITS))
        acc_next = Signal(signed(ACC_BITS))
        base = Signal(signed(ACC_BITS))
        m.d.comb += [
            base.eq(acc),
            acc_next.eq(base + adder_tree(products)),
        ]
        with m.If(first1):
            m.d.comb += base.eq(self.params.payload.bias)
        row_end = valid1 & last1
        m.d.comb += self.params.ready.eq(row_end)
        with m.If(valid1):
            m.d.sync += acc.eq(acc_next)
        m.d.sync += [
            self.result.valid.eq(row_end),
            self.result.payload.acc.eq(acc_next),
            self.result.payload.mult.eq(self.params.payload.mult),
            self.result.payload.shift.eq(self.params.payload.shift),
        ]
        return m
