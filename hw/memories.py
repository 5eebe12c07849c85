"""The engine's on-chip memories: the codebook ROM (and its residual-VQ form with a read port per stage),
the activation SRAM, the skip buffer, and a FIFO kept in block RAM."""
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import lane_word
from model.contract.fixedpoint import ACT_BITS, stage_sum_bits


def pack_lane_word(values, lanes: int) -> int:
    """int8 values -> the integer an SRAM/ROM word of ``lanes`` lanes holds (lane 0 lowest)."""
    mask = (1 << ACT_BITS) - 1
    return sum((int(v) & mask) << (ACT_BITS * i) for i, v in enumerate(values[:lanes]))


class CodebookRom(wiring.Component):
    """The codebook, fixed at elaboration: one codeword per entry, read in one cycle.

    Parameters
    ----------
    lanes : int
        Codeword dimension.
    codewords : sequence of sequences of int
        ROM contents, int8 values.

    Members
    -------
    addr : In(range(len(codewords)))
    en : In(1)
        Read enable; ``data`` holds while it is low.
    data : Out(lane_word(lanes))
        The codeword at last cycle's ``addr``.
    """

    def __init__(self, lanes: int, codewords):
        self._lanes = lanes
        self._init = [pack_lane_word(cw, lanes) for cw in codewords]
        super().__init__({
            "addr": In(range(max(2, len(self._init)))),
            "en": In(1),
            "data": Out(lane_word(lanes)),
        })

    def request(self, entry, en) -> list:
        """Statements reading ``entry`` (``data`` holds it next cycle) when ``en``."""
        return [self.addr.eq(entry), self.en.eq(en)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = memory.Memory(shape=unsigned(ACT_BITS * self._lanes),
                                               depth=len(self._init), init=self._init)
        port = rom.read_port()
        m.d.comb += [port.addr.eq(self.addr), port.en.eq(self.en), self.data.eq(port.data)]
        return m


class ActivationSram(wiring.Component):
    """Double-buffered activation SRAM: a layer reads one half and writes the other.

    One lane-word read port and one write port, and ``extra_reads`` more read
    ports into the half being read (the processing elements of a sparse layer
    each read their own activations: :mod:`hw.processing_elements`).  ``select``
    picks the half the read ports use; writes go to the other half, except while
    ``write_select`` overrides it (the input load writes the half it will read).

    Parameters
    ----------
    lanes : int
        Lane-word width in int8 values.
    words : int
        Lane-words per half.
    extra_reads : int
        Read ports besides ``rd_*``.

    Members
    -------
    rd_addr : In(range(words)), rd_en : In(1), rd_data : Out(lane_word(lanes))
    wr_addr : In(range(words)), wr_en : In(1), wr_data : In(lane_word(lanes))
    select : In(1)
        The half being read.
    write_same : In(1)
        Write into the half being read instead of the other one.
    reads : In(SramReadSignature(lanes, words)).array(extra_reads)
        The extra read ports (present only with ``extra_reads``).
    """

    def __init__(self, lanes: int, words: int, extra_reads: int = 0):
        self._lanes, self._words = lanes, words
        super().__init__({
            "rd_addr": In(range(words)), "rd_en": In(1), "rd_data": Out(lane_word(lanes)),
            "wr_addr": In(range(words)), "wr_en": In(1), "wr_data": In(lane_word(lanes)),
            "select": In(1), "write_same": In(1),
            **({"reads": In(SramReadSignature(lanes, words)).array(extra_reads)} if extra_reads else {}),
        })

    def elaborate(self, platform):
        m = Module()
        half_bits = (self._words - 1).bit_length()
        m.submodules.sram = sram = memory.Memory(shape=lane_word(self._lanes),
                                                 depth=2 << half_bits, init=[])
        rd = sram.read_port()
        wr = sram.write_port()
        m.d.comb += [
            rd.addr.eq(self.rd_addr | (self.select << half_bits)),
            rd.en.eq(self.rd_en),
            self.rd_data.eq(rd.data),
            wr.addr.eq(self.wr_addr | ((self.select ^ ~self.write_same) << half_bits)),
            wr.en.eq(self.wr_en),
            wr.data.eq(self.wr_data),
        ]
        for port in getattr(self, "reads", ()):
            rd = sram.read_port()
            m.d.comb += [rd.addr.eq(port.addr | (self.select << half_bits)), rd.en.eq(port.en),
                         port.data.eq(rd.data)]
        return m


class SramReadSignature(wiring.Signature):
    """One read port of the activation SRAM, as its user sees it: a lane-word a cycle after its address.

    Parameters
    ----------
    lanes : int
        Lane-word width in int8 values.
    words : int
        Lane-words per half.

    Members
    -------
    addr : Out(range(words)), en : Out(1)
        The lane-word to read (``data`` holds while ``en`` is low).
    data : In(lane_word(lanes))
        Last cycle's lane-word.
    """

    def __init__(self, lanes: int, words: int):
        super().__init__({"addr": Out(range(words)), "en": Out(1), "data": In(lane_word(lanes))})


class SkipBuffer(wiring.Component):
    """The residual connections' skip buffer: one vector of lane-words, saved by one layer, read by an add.

    One lane-word read port and one write port (:mod:`model.contract.layout`, "Skip buffer").

    Parameters
    ----------
    lanes : int
        Lane-word width in int8 values.
    words : int
        Lane-words it holds (one activation-SRAM half's).

    Members
    -------
    rd_addr : In(range(words)), rd_en : In(1), rd_data : Out(lane_word(lanes))
        ``rd_data`` is the lane-word at last cycle's ``rd_addr``.
    wr_addr : In(range(words)), wr_en : In(1), wr_data : In(lane_word(lanes))
    """

    def __init__(self, lanes: int, words: int):
        self._lanes, self._words = lanes, words
        super().__init__({
            "rd_addr": In(range(words)), "rd_en": In(1), "rd_data": Out(lane_word(lanes)),
            "wr_addr": In(range(words)), "wr_en": In(1), "wr_data": In(lane_word(lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(shape=lane_word(self._lanes), depth=self._words, init=[])
        rd, wr = buffer.read_port(), buffer.write_port()
        m.d.comb += [rd.addr.eq(self.rd_addr), rd.en.eq(self.rd_en), self.rd_data.eq(rd.data),
                     wr.addr.eq(self.wr_addr), wr.en.eq(self.wr_en), wr.data.eq(self.wr_data)]
        return m


class StagedCodebookRom(wiring.Component):
    """The codebook ROM of an engine with the residual-VQ unit: one read port per stage and the
    lane-wise sum of the codewords read (:mod:`model.contract.layout`, "Residual VQ layers").

    The same contents as :class:`CodebookRom` (one memory, so the compiled tops load it at run
    time as they load the plain ROM), read at ``stages`` addresses in one cycle; the next cycle
    ``data`` is the lane-wise sum of the codewords of the stages that were ``active``, each lane
    ``stage_sum_bits(stages)`` wide, so the sum never wraps.  A VQ, PQ or sparse layer reads
    through stage 0 alone.  Golden twin: :func:`model.codecs.layers.rvq.rvq_weights`.

    Parameters
    ----------
    lanes : int
        Codeword dimension.
    codewords : sequence of sequences of int
        ROM contents, int8 values.
    stages : int
        Read ports, the most codewords one lookup sums.

    Members
    -------
    addr : In(ArrayLayout(range(len(codewords)), stages))
        Each stage's entry.
    active : In(stages)
        The stages the lookup sums (bit ``s``: stage ``s``).
    en : In(1)
        Read enable; ``data`` holds while it is low.
    data : Out(ArrayLayout(signed(stage_sum_bits(stages)), lanes))
        The sum of last cycle's active codewords.
    """

    def __init__(self, lanes: int, codewords, stages: int):
        self._lanes, self._stages = lanes, stages
        self._init = [pack_lane_word(cw, lanes) for cw in codewords]
        self._sum_bits = stage_sum_bits(stages)
        super().__init__({
            "addr": In(data.ArrayLayout(range(max(2, len(self._init))), stages)),
            "active": In(stages),
            "en": In(1),
            "data": Out(data.ArrayLayout(signed(self._sum_bits), lanes)),
        })

    def request(self, entry, en) -> list:
        """Statements reading one entry through stage 0 alone (VQ, PQ, sparse layers)."""
        return [self.addr[0].eq(entry), self.active.eq(1), self.en.eq(en)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = memory.Memory(shape=unsigned(ACT_BITS * self._lanes), depth=len(self._init),
                                               init=self._init)
        ports = [rom.read_port() for _ in range(self._stages)]
        active = Signal(self._stages)   # the stages of the lookup whose codewords are on the ports now
        with m.If(self.en):
            m.d.sync += active.eq(self.active)
        for s, port in enumerate(ports):
            m.d.comb += [port.addr.eq(self.addr[s]), port.en.eq(self.en)]
        for lane in range(self._lanes):
            codewords = [port.data.word_select(lane, ACT_BITS).as_signed() for port in ports]
            m.d.comb += self.data[lane].eq(sum(Mux(active[s], cw, 0) for s, cw in enumerate(codewords)))
        return m


class BlockRamFIFO(fifo.SyncFIFOBuffered):
    """:class:`amaranth.lib.fifo.SyncFIFOBuffered`, the same cycle for cycle, whose storage asks yosys for
    block RAM (``ram_style = "block"``).

    Left to itself yosys keeps a shallow memory in flip-flops: a few entries of a wide word then take
    one logic cell per bit on the iCE40, where logic cells run out long before block RAMs do (area,
    issue 16).  Its read port already has the register a block RAM's read needs.

    Parameters
    ----------
    width, depth : int
        As :class:`~amaranth.lib.fifo.SyncFIFOBuffered`.
    """

    def elaborate(self, platform):
        m = super().elaborate(platform)
        if self.depth > 1:   # a queue of one entry is a register, no memory
            m.submodules["storage"].attrs["ram_style"] = "block"
        return m

