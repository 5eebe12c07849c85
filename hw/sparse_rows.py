"""Sparse row path: a HUFFMAN layer's stream -> row parameters and one weight beat per symbol (fillers folded in)."""
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring

from hw.huffman import HuffmanDecoder, huffman_events
from hw.layouts import COUNT_BITS, RowSourceSignature, row_marked
from model.contract.errors import ERROR_BITS, HUFF_BASE, EngineError
from model.contract.fixedpoint import ACT_PARAM_SHIFT, MULT_BITS
from model.contract.layout import FIELD16, SPARSE_BIAS_BITS

#: Position arithmetic: a position (< 2**COUNT_BITS) plus a run, without overflow.
POSITION_BITS = COUNT_BITS + 1

#: The layer configuration the path reads (held for the whole layer): rows, row
#: length, centroids, and the table's word budget (descriptor word 3).
SparseConfig = data.StructLayout({"rows": COUNT_BITS, "in_features": COUNT_BITS, "k": COUNT_BITS,
                                  "table_words": COUNT_BITS})


def sparse_beat_layout(symbol_bits: int) -> data.StructLayout:
    """One stored weight: centroid index, position in the row, row boundaries."""
    return row_marked({
        "index": unsigned(symbol_bits),
        "position": unsigned(COUNT_BITS),
        "filler": 1,        # index 0: the zero weight, nothing to read or multiply
    })


class SparseRowPath(wiring.Component):
    """Decodes a sparse Huffman-coded layer (:mod:`model.contract.layout`, *Sparse Huffman-coded layers*).

    After ``start`` it reads the layer's requantization word, loads the
    layer's table into a :class:`hw.huffman.HuffmanDecoder`, then for each row
    reads its header word (the bias, with the layer's requantization, goes out
    on ``params``; ``n_symbols`` starts the decoder) and turns each decoded
    joint symbol ``run << idx_bits | idx`` into a beat at position
    ``p + run`` (then ``p`` moves one past it).  The decoder takes exactly the
    words holding the row's codes, so the next word is the next row's header.
    The decoder decodes two codes per step and delivers them one per cycle; the
    sparse stage passes a symbol on in the cycle it is offered, except that a
    filler (``idx == 0``) offered first of its step goes with the step's second
    symbol, in one cycle and one beat (``take_two``): a filler moves the
    position and weighs nothing, so it needs no beat of its own.  Which fillers
    go this way depends only on the data (the steps start at each row's first
    symbol), and a row costs its beats plus two cycles.  Once every
    row is read it takes and drops whatever words still come (the stream's
    padding).  Golden twin: :meth:`model.codecs.layers.huffman.HuffmanCodec.decode`
    with :func:`model.codecs.sparse_rows.decode_row`.  Its signature is
    ``RowSourceSignature(config=SparseConfig, beat=sparse_beat_layout(symbol_bits),
    events=huffman_events(max_len))``.

    Errors (``error``, a :class:`model.contract.errors.EngineError` code, held until the
    next ``start``; nothing more is emitted): the decoder's table and code errors
    as ``HUFF_BASE + status``, ``BAD_SPARSE`` for a position at or past
    ``in_features``, ``BAD_INDEX`` for an index at or above
    ``k``, ``BAD_STREAM`` when a word is needed and ``dry`` says none will come.
    A symbol is checked in the cycle it is offered, before the decoder can
    report an error of a later symbol, so the first error in stream order wins.

    Parameters
    ----------
    max_len : int
        Longest Huffman code.
    symbol_bits : int
        Joint symbol width.

    Members
    -------
    config : In(SparseConfig)
        ``rows``, ``in_features``, ``k``, ``table_words``.
    start : In(1)
        Begin a layer with ``config`` (held for the whole layer).
    words : In(stream.Signature(32))
        The layer's stream after its size word: requantization word, table, rows, padding.
    dry : In(1)
        No more words will arrive on ``words`` (the reader is idle).
    params : Out(stream.Signature(RowParams))
        One transfer per row, before the row's first beat.
    beats : Out(stream.Signature(sparse_beat_layout(symbol_bits)))
        One transfer per symbol, but none for a filler that goes with the next symbol.
    busy : Out(1)
        From ``start`` until every row has been read (the stream's padding may
        remain); it stays high after an error.
    error : Out(ERROR_BITS)
    events : Out(huffman_events(max_len))
        The decoder's counter strobes (``huffman_symbols``, ``huffman_bits``,
        ``huffman_busy_cycles``: its steps, two symbols each).
    """

    def __init__(self, max_len: int, symbol_bits: int):
        self.max_len, self.symbol_bits = max_len, symbol_bits
        super().__init__(RowSourceSignature(config=SparseConfig, beat=sparse_beat_layout(symbol_bits),
                                            events=huffman_events(max_len)))

    def elaborate(self, platform):
        m = Module()
        sb = self.symbol_bits
        cfg = self.config
        m.submodules.decoder = dec = HuffmanDecoder(self.max_len, sb, COUNT_BITS)
        word = self.words.payload
        take = self.words.valid & self.words.ready
        want = self.words.ready & self.dry        # a word is needed and none will come

        error = Signal(ERROR_BITS)
        idx_bits = Signal(range(COUNT_BITS + 1))
        rows_left = Signal(COUNT_BITS)
        mult = Signal.like(self.params.payload.mult)     # the layer's requantization
        shift = Signal.like(self.params.payload.shift)
        act = Signal.like(self.params.payload.act)
        sym_left = Signal(COUNT_BITS)
        first = Signal()
        position = Signal(COUNT_BITS)             # next position of the row

        m.d.comb += [
            self.error.eq(error),
            dec.table_words.eq(cfg.table_words),
            dec.load.eq(self.start),
            # A row header word: n_symbols - 1 above the bias; the codes may take any words.
            dec.count.eq(word[SPARSE_BIAS_BITS:] + 1),
            dec.n_words.eq(FIELD16),
            self.events.eq(dec.events),
        ]

        # --- sparse stage: the decoder's symbol -> position and index --------------------------
        # A filler that the decoder offers with the next symbol of its step goes with it, in
        # the same cycle: the beat is the next symbol's (``absorb``).
        def split(symbol, name):
            run, idx = Signal(sb, name=f"run_{name}"), Signal(sb, name=f"idx_{name}")
            m.d.comb += [run.eq(symbol >> idx_bits), idx.eq(symbol & ((1 << idx_bits) - 1))]
            return run, idx

        run, idx = split(dec.symbols.payload, "a")
        run_b, idx_b = split(dec.second, "b")
        pos = Signal(POSITION_BITS + sb)
        pos_b = Signal(POSITION_BITS + sb + 1)
        absorb = Signal()
        m.d.comb += [pos.eq(position + run), pos_b.eq(pos + 1 + run_b), absorb.eq(dec.pair & (idx == 0))]
        bad_pos = dec.symbols.valid & (pos >= cfg.in_features)
        bad_idx = dec.symbols.valid & (idx >= cfg.k)
        bad_pos_b = dec.symbols.valid & absorb & (pos_b >= cfg.in_features)
        bad_idx_b = dec.symbols.valid & absorb & (idx_b >= cfg.k)
        beat = self.beats.payload
        m.d.comb += [
            beat.index.eq(Mux(absorb, idx_b, idx)), beat.position.eq(Mux(absorb, pos_b, pos)),
            beat.filler.eq(Mux(absorb, idx_b, idx) == 0),
            beat.first.eq(first), beat.last.eq(sym_left == 1 + absorb),
            dec.take_two.eq(absorb),
        ]

        def fail(code):
            m.d.sync += error.eq(code)
            m.next = "FAILED"

        def restart():
            """``start`` wins from any state (called last in each)."""
            with m.If(self.start):
                km1 = cfg.k - 1
                m.d.sync += [error.eq(EngineError.NONE), rows_left.eq(cfg.rows),
                             idx_bits.eq(sum((km1 >> b) != 0 for b in range(COUNT_BITS)))]
                m.next = "REQUANT"

        with m.FSM(name="sparse_fsm") as fsm:
            with m.State("IDLE"):
                restart()
            with m.State("REQUANT"):
                m.d.comb += self.words.ready.eq(1)
                with m.If(take):
                    m.d.sync += [mult.eq(word[:len(mult)]), shift.eq(word[MULT_BITS:MULT_BITS + len(shift)]),
                                 act.eq(word[ACT_PARAM_SHIFT:])]
                    m.next = "TABLE"
                with m.Elif(want):
                    fail(EngineError.BAD_STREAM)
                restart()
            with m.State("TABLE"):
                wiring.connect(m, wiring.flipped(self.words), dec.table)
                with m.If(dec.error != 0):
                    fail(HUFF_BASE + dec.error)
                with m.Elif(dec.table_ok):
                    m.next = "HEADER"
                    with m.If(rows_left == 0):   # a PE with no rows of the layer (fewer rows than PEs)
                        m.next = "DONE"
                with m.Elif(want):
                    fail(EngineError.BAD_STREAM)
                restart()
            with m.State("HEADER"):
                # The row's parameters go out, and the decoder starts, with the header word.
                # ``valid`` rather than ``take``: the decoder's ``start`` must not depend on
                # ``words.ready``, which the decoder drives in CODES.
                m.d.comb += [
                    self.params.valid.eq(self.words.valid),
                    self.params.payload.bias.eq(word[:SPARSE_BIAS_BITS].as_signed()),
                    self.params.payload.mult.eq(mult),
                    self.params.payload.shift.eq(shift),
                    self.params.payload.act.eq(act),
                    self.words.ready.eq(self.params.ready),
                ]
                with m.If(self.words.valid & self.params.ready):
                    m.d.comb += dec.start.eq(1)
                    m.d.sync += [sym_left.eq(word[SPARSE_BIAS_BITS:] + 1), position.eq(0), first.eq(1)]
                    m.next = "CODES"
                # A separate condition on ``params.ready`` (= ``words.ready`` here), for the same reason.
                with m.If(self.params.ready & self.dry):
                    fail(EngineError.BAD_STREAM)
                restart()
            with m.State("CODES"):
                wiring.connect(m, wiring.flipped(self.words), dec.words)
                m.d.comb += [self.beats.valid.eq(dec.symbols.valid & ~bad_pos & ~bad_idx & ~bad_pos_b & ~bad_idx_b),
                             dec.symbols.ready.eq(self.beats.ready)]
                with m.If(self.beats.valid & self.beats.ready):
                    m.d.sync += [position.eq(beat.position + 1), first.eq(0), sym_left.eq(sym_left - 1 - absorb)]
                    with m.If(beat.last):
                        m.d.sync += rows_left.eq(rows_left - 1)
                        m.next = "HEADER"
                        with m.If(rows_left == 1):
                            m.next = "DONE"
                # The offered symbol came before anything the decoder finds now.
                with m.If(bad_pos):
                    fail(EngineError.BAD_SPARSE)
                with m.Elif(bad_idx):
                    fail(EngineError.BAD_INDEX)
                with m.Elif(bad_pos_b):
                    fail(EngineError.BAD_SPARSE)
                with m.Elif(bad_idx_b):
                    fail(EngineError.BAD_INDEX)
                with m.Elif(dec.error != 0):
                    fail(HUFF_BASE + dec.error)
                with m.Elif(want):
                    fail(EngineError.BAD_STREAM)
                restart()
            with m.State("DONE"):
                m.d.comb += self.words.ready.eq(1)      # the stream's padding
                restart()
            with m.State("FAILED"):
                restart()
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("DONE"))
        return m
