"""Output packer: a layer's int8 outputs -> lane-words written to the activation SRAM."""
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, Act, lane_word, sram_write_layout


class OutputPacker(wiring.Component):
    """Gathers a layer's int8 outputs into lane-words and writes them to SRAM.

    The last partial lane-word is zero-filled, and zero lane-words follow until
    ``words`` have been written, so the vector is padded to the alignment that
    DRAM words and lane-words share (:func:`model.contract.layout.vector_align`).

    Parameters
    ----------
    lanes : int
        Bytes per SRAM word.
    addr_width : int
        Width of the word index within one activation buffer.

    Members
    -------
    output : In(stream.Signature(signed(8), always_ready=True))
    start : In(1)
        Begin a layer (or a convolution's position) of ``rows`` outputs written as ``words``
        lane-words from lane-word ``base``.
    rows, words, base : In(16)
    write : Out(stream.Signature(sram_write_layout(addr_width, lanes), always_ready=True))
    busy : Out(1)
    """

    def __init__(self, lanes: int, addr_width: int):
        self._lanes = lanes
        super().__init__({
            "output": In(stream.Signature(Act, always_ready=True)),
            "start": In(1),
            "rows": In(COUNT_BITS),
            "words": In(COUNT_BITS),
            "base": In(COUNT_BITS),
            "write": Out(stream.Signature(sram_write_layout(addr_width, lanes), always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        gathered = Signal(lane_word(lanes))
        lane = Signal(range(lanes))
        rows_left = Signal(COUNT_BITS)
        written = Signal(COUNT_BITS)
        active = Signal()
        data = Signal(lane_word(lanes))
        # One assignment of the whole payload: yosys writes a partly-assigned struct as an
        # ``always @*`` that Icarus does not evaluate at time zero.
        m.d.comb += [self.busy.eq(active),
                     self.write.payload.eq(Cat((self.base + written)[:len(self.write.payload.addr)], data))]

        with m.If(self.start):
            m.d.sync += [active.eq(1), rows_left.eq(self.rows), written.eq(0), lane.eq(0),
                         gathered.eq(0)]
        with m.Elif(active & self.output.valid):
            full = Signal(lane_word(lanes))
            m.d.comb += full.eq(gathered)
            m.d.comb += full[lane].eq(self.output.payload)
            m.d.sync += [rows_left.eq(rows_left - 1), gathered.eq(full)]
            if lanes > 1:
                m.d.sync += lane.eq(lane + 1)
            with m.If((lane == lanes - 1) | (rows_left == 1)):
                m.d.comb += [self.write.valid.eq(1), data.eq(full)]
                m.d.sync += [written.eq(written + 1), lane.eq(0), gathered.eq(0)]
        with m.Elif(active & (rows_left == 0)):
            with m.If(written == self.words):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.comb += self.write.valid.eq(1)
                m.d.sync += written.eq(written + 1)
        return m
