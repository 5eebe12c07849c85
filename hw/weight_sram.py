"""The on-chip weight SRAM, and the stream reader that takes a layer's words from DRAM or from it."""
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dram_reader import DramReader, read_command, walk_block
from hw.layouts import DramReadSignature
from hw.skid_buffer import SkidBuffer
from model.contract.layout import WORD_BITS, WSRAM_ADDR_BITS


class Place(enum.Enum, shape=2):
    """Where a read command's words come from (:mod:`model.contract.layout`, weight SRAM)."""
    DRAM = 0   #: from DRAM
    FILL = 1   #: from DRAM, each word also written to the weight SRAM (a resident layer, image 0)
    SRAM = 2   #: from the weight SRAM (a resident layer, later images)


def stream_command(addr_width: int) -> data.StructLayout:
    """A :func:`~hw.dram_reader.read_command`, where its words come from, and their weight-SRAM address."""
    fields = {name: field.shape for name, field in read_command(addr_width)}
    return data.StructLayout({**fields, "place": Place, "wsram_addr": WSRAM_ADDR_BITS})


class WeightSram(wiring.Component):
    """The weight SRAM: one 32-bit word written per cycle, and blocks of words read in order.

    A read command walks ``rows * row_words`` words from ``addr`` (as
    :class:`~hw.dram_reader.DramReader` does in DRAM), one per cycle while
    ``data`` takes them; the memory's read latency is one cycle and a word
    not taken holds.

    Parameters
    ----------
    words : int
        Capacity in 32-bit words.

    Members
    -------
    cmd : In(stream.Signature(read_command(WSRAM_ADDR_BITS)))
    data : Out(stream.Signature(32))
        The words read, in order.
    idle : Out(1)
        No read in progress and no word waiting in ``data``.
    wr_addr : In(range(words)), wr_data : In(32), wr_en : In(1)
        The write port.
    """

    def __init__(self, words: int):
        if not isinstance(words, int) or words < 1:
            raise ValueError(f"weight SRAM capacity must be a positive number of words, not {words!r}")
        self._words = words
        super().__init__({
            "cmd": In(stream.Signature(read_command(WSRAM_ADDR_BITS))),
            "data": Out(stream.Signature(unsigned(WORD_BITS))),
            "idle": Out(1),
            "wr_addr": In(range(words)), "wr_data": In(WORD_BITS), "wr_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=unsigned(WORD_BITS), depth=self._words, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += [wr.addr.eq(self.wr_addr), wr.data.eq(self.wr_data), wr.en.eq(self.wr_en)]

        held = Signal()   # ``rd.data`` holds a word not yet taken
        advance = ~held | self.data.ready
        step = Signal()
        addr, active = walk_block(m, self.cmd, step)
        m.d.comb += [step.eq(advance & active), rd.addr.eq(addr), rd.en.eq(advance),
                     self.data.valid.eq(held), self.data.payload.eq(rd.data),
                     self.idle.eq(~active & ~held)]
        with m.If(advance):
            m.d.sync += held.eq(active)
        return m


class StreamReader(wiring.Component):
    """The engine's word reader: blocks of words from DRAM, or, for resident layers, the weight SRAM.

    Its ``data`` leaves through a :class:`~hw.skid_buffer.SkidBuffer`, so the engine's ``ready``
    reaches the DRAM reader's FIFO and the weight SRAM a cycle later (timing; no latency).
    A command says where its words come from (:class:`Place`).  ``FILL``
    reads DRAM and writes each word, as ``data`` hands it on, to the weight
    SRAM from ``wsram_addr`` up; ``SRAM`` reads the weight SRAM from
    ``wsram_addr``.  A command's words must all be taken before the next
    command (the engine always does).  Without a weight SRAM only ``DRAM``
    commands may be given.

    Parameters
    ----------
    addr_width : int
        DRAM word-address width.
    fifo_depth : int
        DRAM reads in flight (:class:`~hw.dram_reader.DramReader`).
    weight_sram_words : int
        Weight SRAM capacity in words; 0 for none.

    Members
    -------
    cmd : In(stream.Signature(stream_command(addr_width)))
    dram : Out(DramReadSignature(addr_width))
    data : Out(stream.Signature(32))
    idle : Out(1)
        Nothing in progress or in flight.
    events : Out(data.StructLayout({"wsram_read": 1, "wsram_write": 1}))
        A word read from / written to the weight SRAM this cycle.
    """

    def __init__(self, addr_width: int, fifo_depth: int = 16, weight_sram_words: int = 0):
        self._aw, self._depth, self._wsram = addr_width, fifo_depth, weight_sram_words
        super().__init__({
            "cmd": In(stream.Signature(stream_command(addr_width))),
            "dram": Out(DramReadSignature(addr_width)),
            "data": Out(stream.Signature(unsigned(WORD_BITS))),
            "idle": Out(1),
            "events": Out(data.StructLayout({"wsram_read": 1, "wsram_write": 1})),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dram_reader = dram = DramReader(self._aw, self._depth)
        wiring.connect(m, dram.dram, wiring.flipped(self.dram))
        m.submodules.skid = skid = SkidBuffer(unsigned(WORD_BITS))
        wiring.connect(m, skid.o, wiring.flipped(self.data))
        words = skid.i   # the words read, before the skid buffer
        cmd = self.cmd.payload
        m.d.comb += [dram.cmd.payload.addr.eq(cmd.addr), dram.cmd.payload.rows.eq(cmd.rows),
                     dram.cmd.payload.row_words.eq(cmd.row_words)]
        if not self._wsram:
            m.d.comb += [dram.cmd.valid.eq(self.cmd.valid), self.cmd.ready.eq(dram.cmd.ready),
                         self.idle.eq(dram.idle & ~skid.holding)]
            wiring.connect(m, dram.data, words)
            return m

        m.submodules.wsram = wsram = WeightSram(self._wsram)
        m.d.comb += [wsram.cmd.payload.addr.eq(cmd.wsram_addr), wsram.cmd.payload.rows.eq(cmd.rows),
                     wsram.cmd.payload.row_words.eq(cmd.row_words)]
        place = Signal(Place)         # the last command's
        fill_addr = Signal(WSRAM_ADDR_BITS)
        to_sram = cmd.place == Place.SRAM
        m.d.comb += [dram.cmd.valid.eq(self.cmd.valid & ~to_sram), wsram.cmd.valid.eq(self.cmd.valid & to_sram),
                     self.cmd.ready.eq(Mux(to_sram, wsram.cmd.ready, dram.cmd.ready)),
                     self.idle.eq(dram.idle & wsram.idle & ~skid.holding)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [place.eq(cmd.place), fill_addr.eq(cmd.wsram_addr)]

        with m.If(place == Place.SRAM):
            wiring.connect(m, wsram.data, words)
        with m.Else():
            wiring.connect(m, dram.data, words)
        taken = words.valid & words.ready
        fill = taken & (place == Place.FILL)
        m.d.comb += [wsram.wr_addr.eq(fill_addr), wsram.wr_data.eq(dram.data.payload), wsram.wr_en.eq(fill),
                     self.events.wsram_write.eq(fill), self.events.wsram_read.eq(taken & (place == Place.SRAM))]
        with m.If(fill):
            m.d.sync += fill_addr.eq(fill_addr + 1)
        return m
