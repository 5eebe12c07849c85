"""The column unit: COLUMNS layers resident on chip, loaded from their stream in image 0, run every image."""
from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, lane_word
from hw.requantizer import Requantizer
from hw.sparse_columns import LoadTarget, SparseColumns
from model.contract.config import EngineConfig
from model.contract.errors import ERROR_BITS, EngineError
from model.contract.fixedpoint import ACT_PARAM_BITS, MULT_BITS, SHIFT_BITS
from model.contract.layout import (COLUMN_CENTROIDS_PER_WORD, COLUMN_ENTRY_BITS, COLUMN_INDEX_BITS, COLUMN_K_MAX,
                                   COLUMN_ROW_BITS, WORD_BITS)

#: Activations each slot may have queued: the better of the depths the cycle model compared on LeNet-300-100
#: (scripts/experiments/sparse_columns.py; at 4 slots, balanced rows, one activation a cycle: utilization
#: 0.924 with 64, 0.889 with 16).
COLUMN_QUEUE_DEPTH = 64

#: The unit's layer configuration, held by the engine for the whole layer.
ColumnLayerConfig = data.StructLayout({
    "in_features": COUNT_BITS, "out_features": COUNT_BITS, "in_words": COUNT_BITS, "out_words": COUNT_BITS,
    "k": range(COLUMN_K_MAX + 1), "kept": WORD_BITS,
    "mult": unsigned(MULT_BITS), "shift": unsigned(SHIFT_BITS), "act": signed(ACT_PARAM_BITS),
})


class ColumnUnit(wiring.Component):
    """Runs ``COLUMNS`` layers (:mod:`model.contract.layout`, "Column-wise sparse layers").

    It holds a :class:`hw.sparse_columns.SparseColumns` block with ``lanes``
    slots and allocates its memories layer after layer: the column table, the
    local rows and the centroids from 0 at each ``new_image`` (every image
    runs the same layers in the same order, so each layer finds its place
    again), each slot's entries from 0 at each ``new_job``.  On ``start``
    with ``fill`` (image 0) its loader reads the layer's stream from
    ``words``, checks it and writes it into the block, one memory write a
    cycle; then, and directly on a ``start`` without ``fill``, the block runs
    the layer on the activations it reads from the SRAM.  Its output
    lane-words go through ``lanes`` requantizers, one per slot, and are written
    to the SRAM a lane-word a cycle: local row ``t`` of slot ``s`` is row
    ``t * lanes + s``, lane ``s`` of output lane-word ``t``, so the slots'
    outputs are the output vector's lane-words as they come (lanes past
    ``out_features`` zero, then zero lane-words up to ``out_words``, the
    vector's alignment).  Errors (``error``, held until the next
    ``start``): ``BAD_STREAM``, ``BAD_SPARSE``, ``BAD_INDEX`` as the contract
    lists them.  Golden twin: :class:`model.codecs.layers.columns.ColumnsCodec`.

    Parameters
    ----------
    config : EngineConfig
        ``lanes`` (slots) and the unit's sizes (``column_*``).

    Members
    -------
    layer : In(ColumnLayerConfig)
        The layer (from its descriptor), held from ``start`` to the end of the layer.
    unfit : Out(1)
        The layer does not fit what the unit has left (its centroids, local rows or column table):
        ``BAD_STREAM`` before its stream is read.
    start, fill, new_image, new_job : In(1)
    words : In(stream.Signature(WORD_BITS))
        The layer's stream after its size word (image 0); padding is taken and dropped.
    dry : In(1)
        No more words will come.
    sram_addr : Out(COUNT_BITS), sram_en : Out(1), sram_data : In(lane_word(lanes))
        The activation SRAM's read port (data a cycle after the address; held while ``en`` is low).
    wr_addr : Out(COUNT_BITS), wr_data : Out(lane_word(lanes)), wr_en : Out(1)
        The activation SRAM's write port (the output vector, in the half the layer writes).
    relu, floor : In(1)
        The layer's activation (held for the layer).
    busy : Out(1)
    error : Out(ERROR_BITS)
    events : Out(layout)
        Per cycle: ``macs``, ``zero_skips`` (the layer's kept weights not multiplied, all at its end),
        ``weight_sram_reads`` (column-table and entry reads), ``weight_sram_writes`` (the loader's
        writes), ``sram_reads`` (activation lane-words).
    """

    def __init__(self, config: EngineConfig):
        if not config.columns:
            raise ValueError("the engine has no column unit (EngineConfig.column_entries is 0)")
        self.cfg = config
        slots = config.lanes
        self.events_layout = data.StructLayout({
            "macs": range(slots + 1), "zero_skips": WORD_BITS, "weight_sram_reads": range(2 * slots + 1),
            "weight_sram_writes": 1, "sram_reads": 1})
        super().__init__({
            "layer": In(ColumnLayerConfig), "unfit": Out(1),
            "start": In(1), "fill": In(1), "new_image": In(1), "new_job": In(1),
            "words": In(stream.Signature(WORD_BITS)), "dry": In(1),
            "sram_addr": Out(COUNT_BITS), "sram_en": Out(1), "sram_data": In(lane_word(slots)),
            "wr_addr": Out(COUNT_BITS), "wr_data": Out(lane_word(slots)), "wr_en": Out(1),
            "relu": In(1), "floor": In(1),
            "busy": Out(1), "error": Out(ERROR_BITS),
            "events": Out(self.events_layout),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self.cfg, self.layer
        slots = cfg.lanes
        log2_slots = slots.bit_length() - 1
        m.submodules.block = block = SparseColumns(
            slots, slots, columns=cfg.column_columns, entries=cfg.column_entries, rows=cfg.column_rows,
            index_bits=COLUMN_INDEX_BITS, centroids=cfg.column_centroids,
            max_words=cfg.max_features // slots,   # max_features is a whole number of lane-words
            queue_depth=COLUMN_QUEUE_DEPTH)
        load = block.load.payload

        # --- allocation ------------------------------------------------------------------------------
        column_base = Signal(range(cfg.column_columns + 1))
        row_base = Signal(range(cfg.column_rows + 1))
        centroid_base = Signal(range(cfg.column_centroids + 1))
        entry_base = Array(Signal(range(cfg.column_entries + 1), name=f"entry_base{s}") for s in range(slots))
        rows = Signal(COUNT_BITS)     # the layer's local rows
        m.d.comb += [
            rows.eq((lay.out_features + (slots - 1)) >> log2_slots),
            self.unfit.eq((column_base + lay.in_features > cfg.column_columns)
                          | (row_base + rows > cfg.column_rows) | (centroid_base + lay.k > cfg.column_centroids)),
            block.config.words.eq(lay.in_words), block.config.column_base.eq(column_base),
            block.config.rows.eq(rows), block.config.row_base.eq(row_base),
            block.config.centroid_base.eq(centroid_base),
        ]
        with m.If(self.new_image):
            m.d.sync += [column_base.eq(0), row_base.eq(0), centroid_base.eq(0)]
        with m.If(self.new_job):
            m.d.sync += [b.eq(0) for b in entry_base]

        # --- loader: the stream word by word (a word's pieces one a cycle) ------------------------------
        error = Signal(ERROR_BITS)
        held, have = Signal(WORD_BITS), Signal()   # a word whose later pieces are still to write
        word = Mux(have, held, self.words.payload)
        avail = have | self.words.valid
        piece = Signal(range(COLUMN_CENTROIDS_PER_WORD))
        count = Signal(COUNT_BITS + 1)             # words (or centroids, entries) of the section so far
        slot = Signal(range(slots))
        entries = Signal(WORD_BITS)               # the slot's E_s
        total = Signal(WORD_BITS + 8)             # the slots' E_s so far
        counted = Signal(WORD_BITS + 8)           # the column tables' counts so far
        m.d.comb += self.words.ready.eq(~have)
        writing = Signal()
        m.d.comb += block.load.valid.eq(writing)

        def write(target, addr, value, slot_=None):
            m.d.comb += [writing.eq(1), load.target.eq(target), load.addr.eq(addr), load.data.eq(value)]
            if slot_ is not None:
                m.d.comb += load.slot.eq(slot_)

        def fail(code):
            m.d.sync += [error.eq(code), have.eq(0)]
            m.next = "FAILED"

        def use_word(last_piece):
            """This cycle takes the word's current piece: keep the word for its next piece, or let it go."""
            last_piece = Value.cast(last_piece)
            with m.If(~have):
                m.d.sync += held.eq(self.words.payload)
            m.d.sync += [have.eq(~last_piece), piece.eq(Mux(last_piece, 0, piece + 1))]

        want = ~have & self.dry & ~self.words.valid   # a word is needed and none will come

        @contextmanager
        def on_word():
            """The body runs when a word (or a held word's next piece) is there; ``BAD_STREAM`` when none will come."""
            with m.If(avail):
                yield
            with m.Elif(want):
                fail(EngineError.BAD_STREAM)

        # The events, each its own signal, joined in one assignment: ``events`` has no bit that only a
        # process with constant inputs drives (Icarus would leave it X until they change, and the counters
        # would add the X).
        event = {name: Signal(field.shape, name=f"event_{name}") for name, field in self.events_layout}
        m.d.comb += self.events.eq(Cat(*event.values()))

        # --- run: activations in, output lane-words out ------------------------------------------------------
        fetched = Signal()
        fetch_at = Signal(COUNT_BITS)
        advance = ~fetched | block.acts.ready
        more = fetch_at != lay.in_words
        running = Signal()
        m.d.comb += [block.acts.valid.eq(fetched), block.acts.payload.eq(self.sram_data),
                     self.sram_addr.eq(fetch_at), self.sram_en.eq(running & advance & more),
                     event["sram_reads"].eq(running & advance & more)]
        with m.If(running & advance):
            m.d.sync += fetched.eq(more)
            with m.If(more):
                m.d.sync += fetch_at.eq(fetch_at + 1)
        # Each output lane-word through a requantizer per lane, written where it belongs; then the padding.
        written = Signal(COUNT_BITS)          # output lane-words written
        in_flight = Signal(range(Requantizer.LATENCY + 2))
        m.d.comb += block.sums.ready.eq(1)    # the requantizers never stall
        outputs = []
        for s_ in range(slots):
            m.submodules[f"requantizer{s_}"] = rq = Requantizer()
            r = rq.result.payload
            m.d.comb += [rq.result.valid.eq(block.sums.valid), r.acc.eq(block.sums.payload[s_]),
                         r.mult.eq(lay.mult), r.shift.eq(lay.shift), r.act.eq(lay.act),
                         rq.relu.eq(self.relu), rq.floor.eq(self.floor)]
            outputs.append(rq.output)
        word_out = outputs[0].valid
        first_row = Signal(COUNT_BITS + log2_slots + 1)
        m.d.comb += first_row.eq(written << log2_slots)
        # (``running`` rises with the block's ``busy``, so the padding waits for the block to finish.)
        padding = running & (in_flight == 0) & ~block.busy & (written != lay.out_words)
        m.d.comb += [self.wr_addr.eq(written), self.wr_en.eq(word_out | padding)]
        for s_, o in enumerate(outputs):
            m.d.comb += self.wr_data[s_].eq(Mux(word_out & (first_row + s_ < lay.out_features), o.payload, 0))
        with m.If(self.wr_en):
            m.d.sync += written.eq(written + 1)
        m.d.sync += in_flight.eq(in_flight + block.sums.valid - word_out)
        # ``zero_skips``: the layer's kept weights less its MACs, counted at its end.
        unmultiplied = Signal(WORD_BITS)
        m.d.sync += unmultiplied.eq(unmultiplied - block.events.macs)
        m.d.comb += [event["macs"].eq(block.events.macs),
                     event["weight_sram_reads"].eq(block.events.macs + block.events.column_reads),
                     event["weight_sram_writes"].eq(writing)]

        k_words = (lay.k + (COLUMN_CENTROIDS_PER_WORD - 1)) >> (COLUMN_CENTROIDS_PER_WORD.bit_length() - 1)
        entry = Signal(COLUMN_ENTRY_BITS)
        m.d.comb += entry.eq(Mux(piece[0], word[COLUMN_ENTRY_BITS:], word[:COLUMN_ENTRY_BITS]))
        local, index = entry[:COLUMN_ROW_BITS], entry[COLUMN_ROW_BITS:]

        def run_now():
            """Start the block on the layer (its stream is in)."""
            m.d.comb += block.start.eq(1)
            m.d.sync += [running.eq(1), fetched.eq(0), fetch_at.eq(0), written.eq(0), unmultiplied.eq(lay.kept)]
            m.next = "RUN"

        def begin():
            """A ``start``: image 0 loads the layer first (``fill``); later images run it at once."""
            with m.If(self.start):
                m.d.sync += [error.eq(EngineError.NONE), count.eq(0), piece.eq(0), slot.eq(0), total.eq(0),
                             counted.eq(0), have.eq(0)]
                m.next = "CENTROIDS"
                with m.If(~self.fill):
                    run_now()

        def next_slot():
            with m.If(slot == slots - 1):
                with m.If((total + entries != lay.kept) | (counted != lay.kept)):
                    fail(EngineError.BAD_STREAM)
                with m.Else():
                    m.next = "RUN_START"
            with m.Else():
                m.d.sync += [slot.eq(slot + 1), total.eq(total + entries)]
                m.next = "HEADER"

        with m.FSM(name="column_unit_fsm") as fsm:
            with m.State("IDLE"):
                begin()
            with m.State("CENTROIDS"):
                # Four centroids a word, one written a cycle (those past k are padding).
                with on_word():
                    at = Cat(piece, count)   # centroid count * 4 + piece
                    with m.If(at < lay.k):
                        write(LoadTarget.CENTROID, centroid_base + at, word.word_select(piece, 8).as_signed())
                    last = piece == COLUMN_CENTROIDS_PER_WORD - 1
                    use_word(last)
                    with m.If(last):
                        m.d.sync += count.eq(count + 1)
                        with m.If(count + 1 == k_words):
                            m.d.sync += count.eq(0)
                            m.next = "HEADER"
            with m.State("HEADER"):
                with on_word():
                    use_word(1)
                    m.d.sync += [entries.eq(word), count.eq(0)]
                    with m.If(entry_base[slot] + word > cfg.column_entries):
                        fail(EngineError.BAD_STREAM)
                    with m.Else():
                        m.next = "BIASES"
            with m.State("BIASES"):
                with on_word():
                    use_word(1)
                    write(LoadTarget.BIAS, row_base + count, word, slot)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == rows):
                        m.d.sync += count.eq(0)
                        m.next = "COLUMNS"
            with m.State("COLUMNS"):
                with on_word():
                    use_word(1)
                    start, n = word[:16], word[16:]
                    with m.If(start + n > entries):
                        fail(EngineError.BAD_SPARSE)
                    with m.Else():
                        column = data.View(block.column_layout, Signal(block.column_layout.size))
                        m.d.comb += [column.start.eq(entry_base[slot] + start), column.count.eq(n)]
                        write(LoadTarget.COLUMN, column_base + count, column.as_value(), slot)
                        m.d.sync += [count.eq(count + 1), counted.eq(counted + n)]
                        with m.If(count + 1 == lay.in_features):
                            m.d.sync += count.eq(0)
                            with m.If(entries == 0):
                                next_slot()
                            with m.Else():
                                m.next = "ENTRIES"
            with m.State("ENTRIES"):
                # Two entries a word, one written a cycle (an odd count's last high half is padding).
                with on_word():
                    done = count + 1 == entries
                    use_word(piece[0] | done)
                    with m.If(local >= rows):
                        fail(EngineError.BAD_SPARSE)
                    with m.Elif((index == 0) | (index >= lay.k)):
                        fail(EngineError.BAD_INDEX)
                    with m.Else():
                        stored = data.View(block.entry_layout, Signal(block.entry_layout.size))
                        m.d.comb += [stored.row.eq(local), stored.index.eq(index)]
                        write(LoadTarget.ENTRY, entry_base[slot] + count, stored.as_value(), slot)
                        m.d.sync += count.eq(count + 1)
                        with m.If(done):
                            m.d.sync += [entry_base[slot].eq(entry_base[slot] + entries), count.eq(0)]
                            next_slot()
            with m.State("RUN_START"):
                run_now()
            with m.State("RUN"):
                with m.If(~block.busy & (in_flight == 0) & (written == lay.out_words)):
                    m.d.sync += [running.eq(0), column_base.eq(column_base + lay.in_features),
                                 row_base.eq(row_base + rows), centroid_base.eq(centroid_base + lay.k)]
                    m.d.comb += event["zero_skips"].eq(unmultiplied)
                    m.next = "IDLE"
            with m.State("FAILED"):
                begin()
        # ``words.ready`` stays high outside the loader's sections: the stream's padding is taken and dropped.
        m.d.comb += [self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("FAILED")), self.error.eq(error)]
        return m

