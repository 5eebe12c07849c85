"""Window walker: the activation-SRAM address of each tap of a windowed layer (im2col without a copy)."""
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, DescriptorLayout
from hw.window_setup import OFFSET_BITS, steps_layout

#: Width of a tap's signed pixel coordinates (a window may start above and left of its map).
COORD_BITS = COUNT_BITS + 2


class WindowWalker(wiring.Component):
    """Walks the taps of each output position's window, one per beat, in the order the rows need them.

    A convolution row's beats run over the taps (ky, kx) and, innermost, the
    pixel's lane-words (``pooling`` low); a pooling row's beats over the taps
    of one lane-word, the row's ``group`` (``pooling`` high).  HWC maps make a
    kernel row's taps consecutive lane-words, so the address only ever adds
    a step derived once per layer (:class:`hw.window_setup.WindowSetup`).
    Golden twin: :meth:`model.contract.window.Window.gather`.

    Parameters
    ----------
    none

    Members
    -------
    descriptor : In(DescriptorLayout)
    steps : In(steps_layout())
    pooling : In(1)
    restart : In(1)
        Strobe: the layer's first position (once ``steps`` are valid).
    next_position : In(1)
        Strobe: the next position, row-major.
    first : In(1)
        The beat presented now is its row's first.
    group : In(COUNT_BITS)
        Pooling: the lane-word of the pixel the row reduces.
    take : In(1)
        The beat presented now is taken.
    addr : Out(signed(OFFSET_BITS))
        The beat's lane-word in the input map (meaningful when ``inside``).
    inside : Out(1)
        The beat's pixel is in the map (else padding: zero, or ignored by pooling).
    last_position : Out(1)
        The position is the layer's last.
    """

    def __init__(self):
        super().__init__({
            "descriptor": In(DescriptorLayout), "steps": In(steps_layout()), "pooling": In(1),
            "restart": In(1), "next_position": In(1), "first": In(1), "group": In(COUNT_BITS), "take": In(1),
            "addr": Out(signed(OFFSET_BITS)), "inside": Out(1), "last_position": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d, st = self.descriptor, self.steps

        # The position: its window's first tap.
        ox, oy = Signal(COUNT_BITS), Signal(COUNT_BITS)
        y0, x0 = Signal(signed(COORD_BITS)), Signal(signed(COORD_BITS))
        base, row_base = Signal(signed(OFFSET_BITS)), Signal(signed(OFFSET_BITS))
        m.d.comb += self.last_position.eq((ox == d.out_width - 1) & (oy == d.out_height - 1))
        with m.If(self.restart):
            m.d.sync += [ox.eq(0), oy.eq(0), y0.eq(-d.pad_top), x0.eq(-d.pad_left),
                         base.eq(st.origin), row_base.eq(st.origin)]
        with m.Elif(self.next_position):
            with m.If(ox == d.out_width - 1):
                m.d.sync += [ox.eq(0), oy.eq(oy + 1), x0.eq(-d.pad_left), y0.eq(y0 + d.stride_y),
                             base.eq(row_base + st.step_y), row_base.eq(row_base + st.step_y)]
            with m.Else():
                m.d.sync += [ox.eq(ox + 1), x0.eq(x0 + d.stride_x), base.eq(base + st.step_x)]

        # The beat: registers hold the tap after the last one taken; a row's first beat starts over.
        r_cg, r_kx, r_ky = Signal(COUNT_BITS), Signal(COUNT_BITS), Signal(COUNT_BITS)
        r_y, r_x = Signal(signed(COORD_BITS)), Signal(signed(COORD_BITS))
        r_addr = Signal(signed(OFFSET_BITS))
        cg, kx, ky = Signal(COUNT_BITS), Signal(COUNT_BITS), Signal(COUNT_BITS)
        y, x = Signal(signed(COORD_BITS)), Signal(signed(COORD_BITS))
        addr = Signal(signed(OFFSET_BITS))
        with m.If(self.first):
            m.d.comb += [cg.eq(0), kx.eq(0), ky.eq(0), y.eq(y0), x.eq(x0),
                         addr.eq(base + Mux(self.pooling, self.group, 0))]
        with m.Else():
            m.d.comb += [cg.eq(r_cg), kx.eq(r_kx), ky.eq(r_ky), y.eq(r_y), x.eq(r_x), addr.eq(r_addr)]
        m.d.comb += [self.addr.eq(addr),
                     self.inside.eq((y >= 0) & (y < d.in_height) & (x >= 0) & (x < d.in_width))]

        # Next tap: a convolution steps through the pixel's lane-words first, a pooling row has one.
        inner_last = self.pooling | (cg == st.groups - 1)
        tap_step = Mux(self.pooling, st.groups, 1)
        # From a kernel row's last tap to the next kernel row's first.
        row_jump = Signal(signed(OFFSET_BITS))
        m.d.comb += row_jump.eq(st.row - (d.kernel_w - 1) * st.groups - Mux(self.pooling, 0, st.groups - 1))
        with m.If(self.take):
            m.d.sync += [r_cg.eq(cg + 1), r_kx.eq(kx), r_ky.eq(ky), r_y.eq(y), r_x.eq(x), r_addr.eq(addr + 1)]
            with m.If(inner_last):
                m.d.sync += [r_cg.eq(0), r_kx.eq(kx + 1), r_x.eq(x + 1), r_addr.eq(addr + tap_step)]
                with m.If(kx == d.kernel_w - 1):
                    m.d.sync += [r_kx.eq(0), r_ky.eq(ky + 1), r_x.eq(x0), r_y.eq(y + 1), r_addr.eq(addr + row_jump)]
        return m
