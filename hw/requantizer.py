"""Requantizer: a row's 32-bit accumulator -> its int8 output, through the layer's activation."""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import Act, RowResult
from model.contract.fixedpoint import (ACC_BITS, ACT_MAX, ACT_MIN, ACT_PARAM_BITS, MULT_BITS, SLOPE_FRAC_BITS,
                                       SLOPE_INPUT_BITS)


def _saturated(value):
    """``value`` clamped to int8."""
    return Mux(value > ACT_MAX, ACT_MAX, Mux(value < ACT_MIN, ACT_MIN, value))


class Requantizer(wiring.Component):
    """Scales a 32-bit accumulator to int8: ``sat(round(acc * mult / 2**shift))``, then the activation.

    Three stages: the 32x16 multiply; the shift with round-half-up (the bit
    below the shift point is added) and the clamps; the activation, whose
    leaky-ReLU slope is one small multiply (16 x ``ACT_PARAM_BITS``) of the
    value clamped to 16 bits.  Golden twin: :func:`model.contract.fixedpoint.requantize`.

    Members
    -------
    result : In(stream.Signature(RowResult, always_ready=True))
        The row's accumulator, multiplier, shift and activation parameter ``act``.
    relu : In(1)
        ReLU, negative values times ``act / 2**SLOPE_FRAC_BITS`` (held for the layer).
    floor : In(1)
        The floor activation, ``max(value, act)`` (held for the layer; not with ``relu``).
    output : Out(stream.Signature(signed(8), always_ready=True))
    """

    #: Cycles from a ``result`` to its ``output``: one per stage.
    LATENCY = 3

    def __init__(self):
        super().__init__({
            "result": In(stream.Signature(RowResult, always_ready=True)),
            "relu": In(1),
            "floor": In(1),
            "output": Out(stream.Signature(Act, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        r = self.result.payload
        # Stage 1: the multiply.
        product = Signal(signed(ACC_BITS + MULT_BITS + 1))
        shift = Signal.like(r.shift)
        act1 = Signal(signed(ACT_PARAM_BITS))
        valid1 = Signal()
        m.d.sync += [product.eq(r.acc * r.mult), shift.eq(r.shift), act1.eq(r.act), valid1.eq(self.result.valid)]

        # Stage 2: round, then the int8 and the 16-bit clamps.
        quotient = product >> shift
        round_bit = Mux(shift == 0, 0, (product >> (shift - 1)[:len(shift)])[0])
        rounded = Signal(signed(len(product) + 1))
        m.d.comb += rounded.eq(quotient + round_bit)
        lim = 1 << (SLOPE_INPUT_BITS - 1)
        value = Signal(signed(8))
        negative = Signal(signed(SLOPE_INPUT_BITS))   # the value for the slope, clamped (exact, see fixedpoint)
        is_negative = Signal()
        act2 = Signal.like(act1)
        valid2 = Signal()
        m.d.sync += [value.eq(_saturated(rounded)), is_negative.eq(rounded < 0),
                     negative.eq(Mux(rounded < -lim, -lim, Mux(rounded > lim - 1, lim - 1, rounded))),
                     act2.eq(act1), valid2.eq(valid1)]

        # Stage 3: the activation.
        sloped = Signal(signed(SLOPE_INPUT_BITS + ACT_PARAM_BITS))
        m.d.comb += sloped.eq(negative * act2)
        leaky = Signal(signed(len(sloped)))
        m.d.comb += leaky.eq((sloped >> SLOPE_FRAC_BITS) + sloped[SLOPE_FRAC_BITS - 1])
        with m.If(self.floor):
            m.d.sync += self.output.payload.eq(Mux(value < act2, act2, value))
        with m.Elif(self.relu & is_negative):
            m.d.sync += self.output.payload.eq(_saturated(leaky))
        with m.Else():
            m.d.sync += self.output.payload.eq(value)
        m.d.sync += self.output.valid.eq(valid2)
        return m
