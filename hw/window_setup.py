"""Window setup: checks a windowed layer's window and derives the address steps its walker needs."""
from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.descriptor_check import log2
from hw.layouts import COUNT_BITS, DescriptorLayout
from model.contract.config import EngineConfig
from model.contract.errors import ERROR_BITS, EngineError
from model.codecs.layers.kinds import pooling_kinds
from model.contract.layout import vector_align

#: Width of the walker's signed lane-word offsets (a window may start above and left of its map).
OFFSET_BITS = 2 * COUNT_BITS + 2
#: Width of the setup's products: two 16-bit fields.
PRODUCT_BITS = 2 * COUNT_BITS


def steps_layout() -> data.StructLayout:
    """What :class:`WindowSetup` derives, in activation-SRAM lane-words (see its ``steps``)."""
    return data.StructLayout({
        "groups": COUNT_BITS,           # lane-words of one pixel
        "row": OFFSET_BITS,             # lane-words of one input row
        "step_x": OFFSET_BITS,          # from one output position to the next in its row
        "step_y": OFFSET_BITS,          # from one output row to the next
        "origin": signed(OFFSET_BITS),  # first tap of the first position (negative with padding)
        "out_map": PRODUCT_BITS,        # values of the output map
    })


class WindowSetup(wiring.Component):
    """Checks a windowed layer's window and derives its address steps, one product per cycle.

    The checks and their order are :meth:`model.contract.window.Window.check`:
    a zero field (``BAD_SHAPE``); the taps times the padded channels differ
    from ``in_features`` (``BAD_SHAPE``); a pooling layer's ``out_features``
    differ from its channels (``BAD_SHAPE``); the input map differs from the
    layer's input (``BAD_CHAIN``); the output map exceeds ``max_features``
    (``BAD_SHAPE``).  One multiplier computes the ten products in turn.

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    descriptor : In(DescriptorLayout)
    features : In(COUNT_BITS)
        Size of the layer's input.
    start : In(1)
        Begin (the descriptor held until ``busy`` falls).
    busy : Out(1)
    error : Out(ERROR_BITS)
        Valid when ``busy`` falls; ``NONE`` when the window is good.
    steps : Out(steps_layout())
        Valid when ``busy`` falls without an error.
    """

    def __init__(self, config: EngineConfig):
        self.config = config
        super().__init__({
            "descriptor": In(DescriptorLayout), "features": In(COUNT_BITS), "start": In(1),
            "busy": Out(1), "error": Out(ERROR_BITS), "steps": Out(steps_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, d, st = self.config, self.descriptor, self.steps
        align, lanes = vector_align(cfg.lanes), cfg.lanes
        pooling = sum((d.kind == kind for kind in pooling_kinds()), Const(0)) != 0
        channels = Signal(COUNT_BITS)
        m.d.comb += [channels.eq(d.channel_groups << log2(align)),
                     st.groups.eq(d.channel_groups << log2(align // lanes))]
        out_channels = Signal(COUNT_BITS)   # padded
        m.d.comb += out_channels.eq(((d.out_features + align - 1) >> log2(align)) << log2(align))
        fields = [d.channel_groups, d.in_width, d.in_height, d.out_width, d.out_height, d.kernel_w, d.kernel_h,
                  d.stride_x, d.stride_y]
        zero = Signal()
        m.d.comb += zero.eq(sum((f == 0 for f in fields[1:]), fields[0] == 0) != 0)

        taps, pixels, positions = (Signal(PRODUCT_BITS, name=n) for n in ("taps", "pixels", "positions"))
        a, b = Signal(PRODUCT_BITS), Signal(COUNT_BITS)
        product = Signal(unsigned(PRODUCT_BITS))
        m.d.comb += product.eq(a * b)
        step = Signal(range(11))
        m.d.comb += self.busy.eq(step != 0)
        # The products in turn (operand a, operand b, where the product goes); checks after theirs.
        plan = [
            (d.kernel_h, d.kernel_w, taps),
            (taps, channels, None),
            (d.in_height, d.in_width, pixels),
            (pixels, channels, None),
            (d.out_height, d.out_width, positions),
            (positions, out_channels, st.out_map),
            (d.in_width, st.groups, st.row),
            (d.stride_x, st.groups, st.step_x),
            (d.stride_y, st.row, st.step_y),
            (d.pad_top, st.row, None),
        ]
        error = Signal(ERROR_BITS)
        m.d.comb += self.error.eq(error)
        with m.If(self.start):
            m.d.sync += [step.eq(1), error.eq(0)]
            with m.If(zero):
                m.d.sync += [step.eq(0), error.eq(EngineError.BAD_SHAPE)]
        with m.Switch(step):
            for i, (x, y, into) in enumerate(plan, start=1):
                with m.Case(i):
                    m.d.comb += [a.eq(x), b.eq(y)]
                    if into is not None:
                        m.d.sync += into.eq(product)
                    m.d.sync += step.eq(i + 1 if i < len(plan) else 0)
                    if i == 2:
                        with m.If((product != d.in_features) | (pooling & (d.out_features != channels))):
                            m.d.sync += [step.eq(0), error.eq(EngineError.BAD_SHAPE)]
                    elif i == 4:
                        with m.If(product != self.features):
                            m.d.sync += [step.eq(0), error.eq(EngineError.BAD_CHAIN)]
                    elif i == 6:
                        with m.If(product > cfg.max_features):
                            m.d.sync += [step.eq(0), error.eq(EngineError.BAD_SHAPE)]
                    elif i == len(plan):
                        m.d.sync += st.origin.eq(-(product + d.pad_left * st.groups))
        return m
