"""A small unsigned multiplier that takes one bit of its multiplier per cycle."""
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class SerialMultiplier(wiring.Component):
    """``product = a * b`` by shift and add: one bit of ``b`` per cycle, until none is left.

    For products the engine needs once per layer (a resident stream's
    length), where a combinational multiplier would cost area and a long path.

    Parameters
    ----------
    width : int
        Width of ``a`` and ``b``.

    Members
    -------
    a, b : In(width)
        Sampled with ``start``.
    start : In(1)
    busy : Out(1)
        High from the cycle after ``start`` until ``product`` is ready: at most ``width`` cycles.
    product : Out(2 * width)
    """

    def __init__(self, width: int):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        self._width = width
        super().__init__({"a": In(width), "b": In(width), "start": In(1), "busy": Out(1),
                          "product": Out(2 * width)})

    def elaborate(self, platform):
        m = Module()
        multiplicand = Signal(2 * self._width)
        multiplier = Signal(self._width)   # the bits of b still to add in
        m.d.comb += self.busy.eq(multiplier != 0)
        with m.If(self.start):
            m.d.sync += [self.product.eq(0), multiplicand.eq(self.a), multiplier.eq(self.b)]
        with m.Elif(self.busy):
            with m.If(multiplier[0]):
                m.d.sync += self.product.eq(self.product + multiplicand)
            m.d.sync += [multiplicand.eq(multiplicand << 1), multiplier.eq(multiplier >> 1)]
        return m
