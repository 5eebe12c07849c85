"""Requantizer: a row's 32-bit accumulator -> its int8 output."""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import Act, RowResult
from model.contract.fixedpoint import ACC_BITS, ACT_MAX, ACT_MIN, MULT_BITS


class Requantizer(wiring.Component):
    """Scales a 32-bit accumulator to int8: ``sat(round(acc * mult / 2**shift))``, then ReLU.

    Two stages: the 32x16 multiply, then the shift with round-half-up (the bit
    below the shift point is added, see :func:`model.contract.fixedpoint.requantize`)
    and saturation.

    Members
    -------
    result : In(stream.Signature(RowResult, always_ready=True))
    relu : In(1)
        Clamp at zero (held for the layer).
    output : Out(stream.Signature(signed(8), always_ready=True))
    """

    def __init__(self):
        super().__init__({
            "result": In(stream.Signature(RowResult, always_ready=True)),
            "relu": In(1),
            "output": Out(stream.Signature(Act, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        r = self.result.payload
        product = Signal(signed(ACC_BITS + MULT_BITS + 1))
        shift = Signal.like(r.shift)
        valid1 = Signal()
        m.d.sync += [product.eq(r.acc * r.mult), shift.eq(r.shift), valid1.eq(self.result.valid)]

        quotient = product >> shift
        round_bit = Mux(shift == 0, 0, (product >> (shift - 1)[:len(shift)])[0])
        rounded = Signal(signed(len(product) + 1))
        m.d.comb += rounded.eq(quotient + round_bit)
        low = Mux(self.relu, 0, ACT_MIN)
        with m.If(rounded > ACT_MAX):
            m.d.sync += self.output.payload.eq(ACT_MAX)
        with m.Elif(rounded < low):
            m.d.sync += self.output.payload.eq(low)
        with m.Else():
            m.d.sync += self.output.payload.eq(rounded)
        m.d.sync += self.output.valid.eq(valid1)
        return m
