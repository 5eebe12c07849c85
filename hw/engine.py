"""The VQ Engine: runs a whole network, for every image of a job, from one start."""
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from model.contract.layout import (DESC_WORDS, FLAG_RELU, JOB_MAGIC, JOB_WORDS, MODE_MASK, MODE_SHIFT,
                                   PVQ_SCALE_BITS, ROW_HEADER_WORDS, WORD_BITS, WORD_BYTES, LayerMode,
                                   vector_align)
from model.contract.errors import ERROR_BITS, EngineError
from model.contract.config import EngineConfig

from hw.dram_reader import DramReader
from hw.gearbox import Gearbox
from hw.index_path import IndexPath
from hw.layouts import COUNT_BITS, CounterLayout, RowParams, dram_read_signature, dram_write_signature
from hw.mac import MacLanes
from hw.memories import ActivationSram, CodebookRom
from hw.packer import OutputPacker
from hw.pvq import PvqDotProduct
from hw.requantizer import Requantizer
from hw.sparse_rows import SparseRowPath

#: Rows whose parameters may be read before the MAC finishes the previous ones.
ROW_PARAMS_DEPTH = 4

log2 = lambda n: n.bit_length() - 1  # noqa: E731  (powers of two only)


class Engine(wiring.Component):
    """Fetches the job header and each layer's descriptor from DRAM, then runs the layers.

    For each image: the input vector is loaded from DRAM into one half of the
    activation SRAM; each layer streams its rows from DRAM through the index
    path (one codebook lookup per cycle), the codebook ROM, the MAC lanes, the
    requantizer and the output packer into the other half; the last layer's
    output is stored back to DRAM.  A sparse Huffman-coded layer (when the
    engine has a Huffman decoder) reads its stream's size word, then the whole
    stream in one pipelined read through :class:`hw.sparse_rows.SparseRowPath`,
    which feeds the same ROM, SRAM and MAC lanes one weight per symbol (the
    centroid in the lane of its activation, zeros elsewhere; fillers read
    nothing).  Every descriptor is checked before its
    layer runs; on a bad one, or a bad index, the engine stops with ``error``
    set and ``done`` high.  Golden twin: :class:`model.golden.GoldenEngine`.

    Parameters
    ----------
    config : model.layout.EngineConfig
        Lanes, codebook depth, ROM contents, activation capacity.
    addr_width : int
        DRAM word-address width.
    fifo_depth : int
        DRAM reads in flight; should exceed the DRAM latency.

    Members
    -------
    start : In(1)
        Run the job in DRAM (ignored while busy; after an error, reset first).
    busy, done : Out(1)
        ``done`` rises when the job finishes or stops on an error and stays up until the next start.
    error : Out(4)
        :class:`model.layout.EngineError` value, 0 when none.
    counters : Out(CounterLayout)
        Event counters since the last start.
    dram_rd : Out(dram_read_signature(addr_width))
    dram_wr : Out(dram_write_signature(addr_width))
    """

    def __init__(self, config: EngineConfig, addr_width: int = 24, fifo_depth: int = 16):
        self.config = config
        self._aw = addr_width
        self._fifo_depth = fifo_depth
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(ERROR_BITS),
            "counters": Out(CounterLayout),
            "dram_rd": Out(dram_read_signature(addr_width)),
            "dram_wr": Out(dram_write_signature(addr_width)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes = cfg.lanes
        align = vector_align(lanes)

        m.submodules.reader = reader = DramReader(self._aw, self._fifo_depth)
        m.submodules.index_path = index_path = IndexPath(cfg.max_entry_bits)
        rom = CodebookRom(lanes, cfg.rom) if cfg.rom else None
        if rom is not None:
            m.submodules.rom = rom
        pvq = PvqDotProduct(lanes, cfg.pvq_k_max, scale_bits=PVQ_SCALE_BITS) if cfg.pvq_k_max else None
        if pvq is not None:
            m.submodules.pvq = pvq
        huff = SparseRowPath(cfg.huffman_max_len, cfg.huffman_symbol_bits) if cfg.huffman_max_len else None
        if huff is not None:
            m.submodules.sparse = huff
        m.submodules.sram = sram = ActivationSram(lanes, cfg.sram_words)
        m.submodules.mac = mac = MacLanes(lanes)
        m.submodules.requantizer = requantizer = Requantizer()
        m.submodules.packer = packer = OutputPacker(lanes, len(sram.wr_addr))
        m.submodules.load_gearbox = load_gb = Gearbox(WORD_BYTES, lanes)
        m.submodules.store_gearbox = store_gb = Gearbox(lanes, WORD_BYTES)

        wiring.connect(m, reader.dram, wiring.flipped(self.dram_rd))
        # Row parameters run ahead of their row's beats by the pipeline's depth.
        m.submodules.row_params = row_params = fifo.SyncFIFOBuffered(width=RowParams.size,
                                                                     depth=ROW_PARAMS_DEPTH)
        m.d.comb += [
            row_params.w_data.eq(index_path.params.payload), row_params.w_en.eq(index_path.params.valid),
            index_path.params.ready.eq(row_params.w_rdy),
            mac.params.payload.eq(row_params.r_data), mac.params.valid.eq(row_params.r_rdy),
            row_params.r_en.eq(mac.params.ready),
            requantizer.result.valid.eq(mac.result.valid),
            requantizer.result.payload.eq(mac.result.payload),
        ]
        pvq_mode = Signal()  # the running layer is PVQ-coded
        if pvq is not None:
            m.d.comb += [pvq.params.payload.eq(row_params.r_data), pvq.params.valid.eq(row_params.r_rdy)]
            with m.If(pvq_mode):
                m.d.comb += [row_params.r_en.eq(pvq.params.ready),
                             requantizer.result.valid.eq(pvq.result.valid),
                             requantizer.result.payload.eq(pvq.result.payload)]
        wiring.connect(m, requantizer.output, packer.output)
        huff_mode = Signal()  # the running layer is sparse and Huffman-coded
        if huff is not None:
            # The sparse path writes the row parameters (the index path is idle then).
            with m.If(huff_mode):
                m.d.comb += [row_params.w_data.eq(huff.params.payload), row_params.w_en.eq(huff.params.valid),
                             huff.params.ready.eq(row_params.w_rdy)]

        # --- job and layer registers ---------------------------------------------------------
        fetched = Signal(JOB_WORDS * WORD_BITS)   # header or descriptor words, word 0 lowest
        word = lambda i: fetched[i * WORD_BITS:(i + 1) * WORD_BITS]  # noqa: E731
        n_fetched = Signal(range(JOB_WORDS + 1))
        n_layers, n_images = Signal(COUNT_BITS), Signal(COUNT_BITS)
        desc_addr, in_ptr, out_ptr = (Signal(self._aw, name=n) for n in ("desc_addr", "in_ptr", "out_ptr"))
        input_features = Signal(COUNT_BITS)
        image = Signal(COUNT_BITS)
        layer = Signal(COUNT_BITS)
        features = Signal(COUNT_BITS)  # size of the vector now in SRAM
        select = Signal()              # SRAM half holding that vector
        error = Signal(ERROR_BITS)

        # The descriptor in ``fetched`` after DESC_READ:
        d_in, d_out = word(0)[:16], word(0)[16:]
        d_cb_base, d_cb_size = word(1)[:16], word(1)[16:]
        d_stream, d_row_words, d_flags = word(2), word(3)[:16], word(3)[16:]
        d_mode = (d_flags >> MODE_SHIFT) & MODE_MASK
        d_pvq = d_mode == LayerMode.PVQ
        d_k, d_entry_bits = d_cb_base, d_cb_size  # the codebook fields' meaning in PVQ mode
        entry_bits = Mux(d_pvq, d_entry_bits, cfg.index_bits)
        subvectors = (d_in + (lanes - 1)) >> log2(lanes)
        index_words = (subvectors * entry_bits[:6] + (WORD_BITS - 1)) >> log2(WORD_BITS)

        def vector_words(n):   # DRAM words of an aligned vector (model.layout.vector_words)
            return ((n + align - 1) >> log2(align)) << log2(align // WORD_BYTES)

        def lane_words(n):     # SRAM lane-words of an aligned vector
            return ((n + align - 1) >> log2(align)) << log2(align // lanes)

        relu = Signal()
        size_word = Signal(WORD_BITS)  # a sparse layer's stream size (model.layout)
        m.d.comb += [
            index_path.rows.eq(d_out), index_path.subvectors.eq(subvectors),
            index_path.index_words.eq(d_row_words - ROW_HEADER_WORDS),
            index_path.codebook_size.eq(d_cb_size),
            index_path.width.eq(entry_bits), index_path.check.eq(~pvq_mode),
            packer.rows.eq(d_out), packer.words.eq(lane_words(d_out)),
            requantizer.relu.eq(relu),
        ]

        # --- datapath: index path -> ROM + SRAM read -> MAC lanes or PVQ unit -------------------
        # The fetch stage holds its beat (and the memories their data) while the PVQ
        # unit is busy; the MAC lanes never stall.
        beat = index_path.beats.payload
        fetch_valid, fetch_first, fetch_last = Signal(), Signal(), Signal()
        fetch_entry = Signal.like(beat.index)
        downstream_ready = Signal()
        m.d.comb += downstream_ready.eq(1)
        if pvq is not None:
            with m.If(pvq_mode):
                m.d.comb += downstream_ready.eq(pvq.vectors.ready)
        advance = ~fetch_valid | downstream_ready
        if huff is None:
            lookup = index_path.beats.valid & advance
            real_lookup = lookup        # a lookup that reads the ROM and SRAM
        else:
            hbeat = huff.beats.payload
            lookup = Mux(huff_mode, huff.beats.valid, index_path.beats.valid) & advance
            real_lookup = lookup & ~(huff_mode & hbeat.filler)   # fillers read nothing
        m.d.comb += [
            index_path.beats.ready.eq(advance),
            sram.rd_addr.eq(beat.subvector), sram.rd_en.eq(advance),
            sram.select.eq(select),
            mac.operands.valid.eq(fetch_valid & ~pvq_mode),
            mac.operands.payload.activations.eq(sram.rd_data),
            mac.operands.payload.first.eq(fetch_first),
            mac.operands.payload.last.eq(fetch_last),
        ]
        if rom is not None:
            m.d.comb += [rom.addr.eq(d_cb_base + beat.index), rom.en.eq(advance),
                         mac.operands.payload.codeword.eq(rom.data)]
        if pvq is not None:
            index_bits = Signal(range(len(fetch_entry) + 1))
            m.d.comb += [
                index_bits.eq(d_entry_bits - PVQ_SCALE_BITS),
                pvq.vectors.valid.eq(fetch_valid & pvq_mode),
                pvq.vectors.payload.index.eq(fetch_entry & ((Const(1, len(fetch_entry) + 1) << index_bits) - 1)),
                pvq.vectors.payload.scale.eq(fetch_entry >> index_bits),
                pvq.vectors.payload.activations.eq(sram.rd_data),
                pvq.vectors.payload.first.eq(fetch_first),
                pvq.vectors.payload.last.eq(fetch_last),
                pvq.k.eq(d_k),
            ]
        with m.If(advance):
            m.d.sync += [fetch_valid.eq(index_path.beats.valid), fetch_first.eq(beat.first),
                         fetch_last.eq(beat.last), fetch_entry.eq(beat.index)]
        if huff is not None:
            # A symbol's weight: centroid lane ``idx % lanes`` of ROM entry ``base + idx // lanes``,
            # placed in the lane of its activation (position % lanes); fillers read nothing.
            fetch_lane, fetch_clane = Signal(range(lanes)), Signal(range(lanes))
            fetch_filler = Signal()
            real = ~hbeat.filler
            m.d.comb += huff.beats.ready.eq(advance & huff_mode)
            with m.If(huff_mode):
                m.d.comb += [sram.rd_addr.eq(hbeat.position >> log2(lanes)), sram.rd_en.eq(advance & real),
                             rom.addr.eq(d_cb_base + (hbeat.index >> log2(lanes))), rom.en.eq(advance & real)]
                for i in range(lanes):
                    m.d.comb += mac.operands.payload.codeword[i].eq(
                        Mux(~fetch_filler & (fetch_lane == i), rom.data[fetch_clane] if lanes > 1 else rom.data[0], 0))
                with m.If(advance):
                    m.d.sync += [fetch_valid.eq(huff.beats.valid), fetch_first.eq(hbeat.first),
                                 fetch_last.eq(hbeat.last), fetch_filler.eq(hbeat.filler),
                                 fetch_lane.eq(hbeat.position[:log2(lanes)]),
                                 fetch_clane.eq(hbeat.index[:log2(lanes)])]

        # SRAM writes come from the input load or from the packer.
        load_words = Signal(COUNT_BITS)
        m.d.comb += [
            sram.wr_addr.eq(packer.write.payload.addr),
            sram.wr_data.eq(packer.write.payload.data),
            sram.wr_en.eq(packer.write.valid),
        ]

        # Store: SRAM -> gearbox -> DRAM writes.
        store_read, store_written = Signal(COUNT_BITS), Signal(COUNT_BITS)
        store_pending = Signal()
        m.d.comb += [
            store_gb.i.payload.eq(sram.rd_data),
            store_gb.i.valid.eq(store_pending),
            self.dram_wr.payload.addr.eq(out_ptr + store_written),
            self.dram_wr.payload.data.eq(store_gb.o.payload),
            self.dram_wr.valid.eq(store_gb.o.valid),
            store_gb.o.ready.eq(self.dram_wr.ready),
        ]
        m.d.sync += store_written.eq(store_written + (self.dram_wr.valid & self.dram_wr.ready))

        m.d.comb += load_gb.o.ready.eq(1)

        def read(addr, rows, row_words):
            m.d.comb += [reader.cmd.valid.eq(1), reader.cmd.payload.addr.eq(addr),
                         reader.cmd.payload.rows.eq(rows), reader.cmd.payload.row_words.eq(row_words)]

        def fail(code):
            m.d.sync += error.eq(code)
            m.next = "ERROR"

        def collect(n_words, then):
            """Shift ``n_words`` words from the reader into ``fetched``."""
            m.d.comb += reader.data.ready.eq(1)
            with m.If(reader.data.valid):
                m.d.sync += [fetched.eq(Cat(fetched[WORD_BITS:], reader.data.payload)),
                             n_fetched.eq(n_fetched + 1)]
                with m.If(n_fetched == n_words - 1):
                    if n_words < JOB_WORDS:   # align word 0 to the bottom
                        m.d.sync += fetched.eq(Cat(fetched[WORD_BITS * (JOB_WORDS - n_words + 1):],
                                                   reader.data.payload))
                    m.next = then

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += error.eq(0)
                    m.next = "JOB"
            with m.State("JOB"):
                read(0, 1, JOB_WORDS)
                m.d.sync += n_fetched.eq(0)
                with m.If(reader.cmd.ready):
                    m.next = "JOB_READ"
            with m.State("JOB_READ"):
                collect(JOB_WORDS, "JOB_CHECK")
            with m.State("JOB_CHECK"):
                m.d.sync += [n_layers.eq(word(1)[:16]), n_images.eq(word(1)[16:]),
                             desc_addr.eq(word(2)), in_ptr.eq(word(3)), input_features.eq(word(4)),
                             out_ptr.eq(word(5)), image.eq(0)]
                with m.If((word(0) != JOB_MAGIC) | (word(1)[:16] == 0) | (word(1)[16:] == 0)):
                    fail(EngineError.BAD_JOB)
                with m.Elif((word(4) == 0) | (word(4) > cfg.max_features)):
                    fail(EngineError.BAD_SHAPE)
                with m.Else():
                    m.next = "LOAD"
            with m.State("LOAD"):
                read(in_ptr, 1, vector_words(input_features))
                m.d.sync += [load_words.eq(0), select.eq(0), features.eq(input_features), layer.eq(0)]
                with m.If(reader.cmd.ready):
                    m.next = "LOAD_DATA"
            with m.State("LOAD_DATA"):
                wiring.connect(m, reader.data, load_gb.i)
                m.d.comb += [sram.write_same.eq(1), sram.wr_addr.eq(load_words),
                             sram.wr_data.eq(load_gb.o.payload), sram.wr_en.eq(load_gb.o.valid)]
                with m.If(load_gb.o.valid):
                    m.d.sync += load_words.eq(load_words + 1)
                    with m.If(load_words == lane_words(input_features) - 1):
                        m.d.sync += in_ptr.eq(in_ptr + vector_words(input_features))
                        m.next = "DESC"
            with m.State("DESC"):
                read(desc_addr + layer * DESC_WORDS, 1, DESC_WORDS)
                m.d.sync += n_fetched.eq(0)
                with m.If(reader.cmd.ready):
                    m.next = "DESC_READ"
            with m.State("DESC_READ"):
                collect(DESC_WORDS, "DESC_CHECK")
            with m.State("DESC_CHECK"):
                # The same checks, in the same order, as model.golden.Descriptor.check.
                supported = (d_mode == LayerMode.VQ) | (d_pvq if pvq is not None else 0)
                d_huff = d_mode == LayerMode.HUFFMAN
                if huff is not None:
                    supported = supported | d_huff
                    bad_sparse_codebook = ((d_cb_size == 0) | (d_cb_size > cfg.huffman_k_max)
                                           | (d_cb_base + ((d_cb_size + (lanes - 1)) >> log2(lanes))
                                              > cfg.rom_entries))
                vq_layer = ~d_pvq if huff is None else ~d_pvq & ~d_huff
                if pvq is not None:
                    table = Array(Const(cfg.pvq_entry_bits(k) if k else 0, 8) for k in range(cfg.pvq_k_max + 1))
                    bad_pyramid = (d_k == 0) | (d_k > cfg.pvq_k_max) | (d_entry_bits != table[d_k])
                else:
                    bad_pyramid = 1
                with m.If(~supported):
                    fail(EngineError.BAD_MODE)
                with m.Elif((d_in == 0) | (d_in > cfg.max_features) | (d_out == 0) | (d_out > cfg.max_features)):
                    fail(EngineError.BAD_SHAPE)
                with m.Elif(d_in != features):
                    fail(EngineError.BAD_CHAIN)
                with m.Elif(d_pvq & bad_pyramid):
                    fail(EngineError.BAD_CODEBOOK)
                if huff is not None:
                    with m.Elif(d_huff & bad_sparse_codebook):
                        fail(EngineError.BAD_CODEBOOK)
                with m.Elif(vq_layer & ((d_cb_size == 0) | (d_cb_size > cfg.codebook_depth)
                                        | (d_cb_base + d_cb_size > cfg.rom_entries))):
                    fail(EngineError.BAD_CODEBOOK)
                with m.Elif((d_row_words != ROW_HEADER_WORDS + index_words) if huff is None
                            else ~d_huff & (d_row_words != ROW_HEADER_WORDS + index_words)):
                    fail(EngineError.BAD_STREAM)
                with m.Else():
                    m.d.sync += [relu.eq((d_flags & FLAG_RELU) != 0), pvq_mode.eq(d_pvq)]
                    m.next = "LAYER"
                    if huff is not None:
                        m.d.sync += huff_mode.eq(d_huff)
                        with m.If(d_huff):
                            m.next = "SPARSE_SIZE"
            with m.State("LAYER"):
                read(d_stream, d_out, d_row_words)
                with m.If(reader.cmd.ready):
                    m.d.comb += [index_path.start.eq(1), packer.start.eq(1)]
                    m.next = "LAYER_RUN"
            with m.State("LAYER_RUN"):
                wiring.connect(m, reader.data, index_path.words)
                with m.If(index_path.error | (pvq.error if pvq is not None else 0)):
                    fail(EngineError.BAD_INDEX)
                with m.Elif(~packer.busy):
                    m.d.sync += [select.eq(~select), features.eq(d_out), layer.eq(layer + 1)]
                    with m.If(layer == n_layers - 1):
                        m.d.sync += [store_read.eq(0), store_written.eq(0)]
                        m.next = "STORE"
                    with m.Else():
                        m.next = "DESC"
            if huff is not None:
                with m.State("SPARSE_SIZE"):
                    read(d_stream, 1, 1)
                    with m.If(reader.cmd.ready):
                        m.next = "SPARSE_SIZE_READ"
                with m.State("SPARSE_SIZE_READ"):
                    m.d.comb += reader.data.ready.eq(1)
                    with m.If(reader.data.valid):
                        m.d.sync += size_word.eq(reader.data.payload)
                        m.next = "SPARSE"
                with m.State("SPARSE"):
                    # The rest of the stream in one read: the size word says exactly how long it is.
                    read(d_stream + 1, size_word[:16], size_word[16:])
                    with m.If(reader.cmd.ready):
                        m.d.comb += [huff.start.eq(1), packer.start.eq(1)]
                        m.next = "SPARSE_RUN"
                with m.State("SPARSE_RUN"):
                    wiring.connect(m, reader.data, huff.words)
                    with m.If(huff.error != 0):
                        fail(huff.error)
                    with m.Elif(huff.done):
                        m.d.comb += reader.data.ready.eq(1)     # the stream's padding
                        with m.If(reader.idle & ~packer.busy):
                            # As at the end of LAYER_RUN.
                            m.d.sync += [select.eq(~select), features.eq(d_out), layer.eq(layer + 1)]
                            with m.If(layer == n_layers - 1):
                                m.d.sync += [store_read.eq(0), store_written.eq(0)]
                                m.next = "STORE"
                            with m.Else():
                                m.next = "DESC"
            with m.State("STORE"):
                # Keep one SRAM word in flight into the gearbox; hold it while it waits.
                m.d.comb += sram.rd_addr.eq(store_read)
                advance = ~store_pending | store_gb.i.ready
                m.d.comb += sram.rd_en.eq(advance)
                with m.If(advance):
                    with m.If(store_read != lane_words(features)):
                        m.d.sync += [store_pending.eq(1), store_read.eq(store_read + 1)]
                    with m.Else():
                        m.d.sync += store_pending.eq(0)
                with m.If((store_written == vector_words(features)) & ~store_pending):
                    m.d.sync += [out_ptr.eq(out_ptr + vector_words(features)), image.eq(image + 1)]
                    with m.If(image == n_images - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "LOAD"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                with m.If(self.start):
                    m.d.sync += error.eq(0)
                    m.next = "JOB"
            with m.State("ERROR"):
                m.d.comb += self.done.eq(1)

        busy = ~fsm.ongoing("IDLE") & ~fsm.ongoing("DONE") & ~fsm.ongoing("ERROR")
        m.d.comb += [self.busy.eq(busy), self.error.eq(error)]

        # --- event counters (model.layout.COUNTERS) -----------------------------------------------
        c = self.counters
        events = {
            "dram_read_words": self.dram_rd.resp.valid & self.dram_rd.resp.ready,
            "dram_write_words": self.dram_wr.valid & self.dram_wr.ready,
            "sram_reads": (real_lookup & ~fsm.ongoing("STORE")) | (fsm.ongoing("STORE") & sram.rd_en
                                                                    & (store_read != lane_words(features))),
            "sram_writes": sram.wr_en,
            "rom_reads": real_lookup & ~pvq_mode,
            "cycles": busy,
            "stall_cycles": busy & reader.data.ready & ~reader.data.valid,
        }
        restart = self.start & ~busy
        if pvq is not None:
            m.d.comb += pvq.clear.eq(restart)
        if huff is not None:
            m.d.comb += [huff.dry.eq(reader.idle), huff.rows.eq(d_out), huff.in_features.eq(d_in),
                         huff.k.eq(d_cb_size), huff.table_words.eq(d_row_words)]
        for name, event in events.items():
            field = getattr(c, name)
            m.d.sync += field.eq(field + event)
        if huff is None:
            m.d.sync += c.macs.eq(c.macs + Mux(lookup & ~pvq_mode, lanes, 0))
        else:
            # A sparse layer's symbol is one useful multiply (the other lanes multiply by zero).
            m.d.sync += [
                c.macs.eq(c.macs + Mux(real_lookup & ~pvq_mode, Mux(huff_mode, 1, lanes), 0)),
                c.huffman_symbols.eq(c.huffman_symbols + huff.stat_symbol),
                c.huffman_bits.eq(c.huffman_bits + huff.stat_bits),
                c.huffman_busy_cycles.eq(c.huffman_busy_cycles + huff.stat_busy),
            ]
        if pvq is not None:
            m.d.sync += c.adds.eq(c.adds + pvq.add)
        with m.If(restart):
            m.d.sync += c.eq(0)
        return m
