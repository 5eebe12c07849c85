"""Index path: a dense layer's row stream -> row parameters and one entry per cycle."""
from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring

from hw.layouts import COUNT_BITS, RowSourceSignature, beat_layout
from model.contract.errors import EngineError
from model.contract.fixedpoint import ACT_PARAM_BITS, ACT_PARAM_SHIFT, COMPACT_BIAS_SHIFT_BITS, MULT_BITS, SHIFT_BITS
from model.contract.layout import WORD_BITS


def config_layout(max_bits: int, stages_max: int = 1) -> data.StructLayout:
    """The layer configuration the index path reads (see :class:`IndexPath`, ``config``); ``stages``
    only in an index path for residual-VQ entries (``stages_max > 1``)."""
    return data.StructLayout({"rows": COUNT_BITS, "subvectors": COUNT_BITS, "index_words": COUNT_BITS,
                              "codebook_size": COUNT_BITS + 1, "width": range(max_bits + 1), "check": 1,
                              "compact": 1, "shift": SHIFT_BITS, "act": signed(ACT_PARAM_BITS),
                              "bias_shift": COMPACT_BIAS_SHIFT_BITS,
                              **({"stages": range(stages_max + 1)} if stages_max > 1 else {})})


class IndexPath(wiring.Component):
    """Turns a layer's row stream into one codebook lookup per cycle.

    Each row is a bias word, a requantization word, then ``index_words`` words
    of ``width``-bit entries (codebook indices, or PVQ index and scale) packed
    LSB-first; in a layer of compact rows, one header word (the multiplier and
    a 16-bit bias) with the layer's shift, activation parameter and bias scale
    from ``config`` (:mod:`model.contract.layout`).  The row's parameters go
    out on ``params``; its indices go out on ``beats``, one per cycle.  Word
    loading and index emission overlap, including across rows (the next row's
    parameters are read while this row's last indices drain), so a long row
    costs exactly one cycle per index.  Golden twin:
    :func:`model.codecs.index_packing.unpack_indices`.  Its signature is
    ``RowSourceSignature(config=config_layout(max_bits), beat=beat_layout(max_bits))``.

    Parameters
    ----------
    max_bits : int
        Widest entry a layer may use.
    stages_max : int
        Most codebook indices an entry holds (residual VQ: one per stage, each
        ``stage_bits`` wide, stage 0 lowest); 1 for every other engine.
    stage_bits : int
        Width of one stage's index (with ``stages_max > 1``).
    unit : int
        A power of two that divides every entry width a layer may use and the word
        (:attr:`model.contract.config.EngineConfig.entry_bits_unit`): the bits held stay a multiple
        of it, so the shifters that move them are built for whole units only.

    Members
    -------
    config : In(config_layout(max_bits))
        ``rows``, ``subvectors``, ``index_words``: rows in the layer, entries
        per row, entry words per row.  ``width``: the entry width.  ``check``:
        entries are codebook indices, and those at or above ``codebook_size``
        are an error (with ``stages``, each of the entry's first ``stages`` indices
        of ``stage_bits``).  ``compact``: the rows have compact headers, whose rows share
        ``shift``, ``act`` and ``bias_shift``.
    start : In(1)
        Begin a layer with ``config`` (held for the whole layer).
    words : In(stream.Signature(32))
        The row stream.
    dry : In(1)
        Not needed: ``config`` says how long the rows are.
    params : Out(stream.Signature(RowParams))
        One transfer per row, before the row's first beat.
    beats : Out(stream.Signature(beat_layout(max_bits)))
        One transfer per entry (codebook lookup or PVQ vector).
    busy : Out(1)
        A layer is in progress.
    error : Out(ERROR_BITS)
        ``BAD_INDEX`` once a bad index is found; nothing more is read or emitted until ``start``.
    events : zero-width
    """

    def __init__(self, max_bits: int, stages_max: int = 1, stage_bits: int = 0, unit: int = 1):
        if unit < 1 or unit & (unit - 1) or WORD_BITS % unit:
            raise ValueError(f"unit must be a power of two dividing {WORD_BITS}, not {unit!r}")
        self._max, self._stages, self._stage_bits, self._unit = max_bits, stages_max, stage_bits, unit
        super().__init__(RowSourceSignature(config=config_layout(max_bits, stages_max), beat=beat_layout(max_bits)))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        b = cfg.width
        word = self.words.payload

        # Emitter: the bits of the open row not yet emitted.  Room for a word ahead of the one being
        # emitted, so a short row's last word, and then the next row's two header words, are read
        # while its indices still go out.
        bits = Signal(2 * WORD_BITS + self._max)
        # The count of bits held is a multiple of ``unit``: read with its low bits constant zero (the
        # register's are never read), which takes those levels out of the shifter that appends a word
        # (area, issue 16).
        low = self._unit.bit_length() - 1

        def units(count):
            return Cat(Const(0, low), count[low:]) if low else count
        nbits_reg = Signal(range(2 * WORD_BITS + self._max + 1), name="nbits")
        nbits = units(nbits_reg)
        open_row = Signal()
        left = Signal(COUNT_BITS)   # indices still to emit in the open row
        subvector = Signal(COUNT_BITS)
        error = Signal()

        index = Signal(self._max)
        m.d.comb += index.eq(bits[:self._max] & ((Const(1, self._max + 1) << b) - 1))
        can_emit = open_row & (nbits >= b) & ~error
        if self._stages > 1:   # residual VQ: every stage the layer uses is an index into its codebook
            sb = self._stage_bits
            bad = cfg.check & reduce(or_, [(cfg.stages > s) & (index[s * sb:(s + 1) * sb] >= cfg.codebook_size)
                                           for s in range(self._stages)])
        else:
            bad = cfg.check & (index >= cfg.codebook_size)
        m.d.comb += [
            self.beats.valid.eq(can_emit & ~bad),
            self.beats.payload.index.eq(index),
            self.beats.payload.subvector.eq(subvector),
            self.beats.payload.first.eq(subvector == 0),
            self.beats.payload.last.eq(left == 1),
            self.error.eq(Mux(error, EngineError.BAD_INDEX, EngineError.NONE)),
        ]
        with m.If(can_emit & bad):
            m.d.sync += error.eq(1)
        emit = self.beats.valid & self.beats.ready
        emit_last = emit & (left == 1)
        bits_after = Signal.like(bits)
        nbits_after = Signal.like(nbits_reg)
        # What an emit leaves, and whether a word then fits behind it, computed from the registers
        # alone: only a mux waits for the handshake (``emit``), not a subtraction and a comparison
        # (timing: this chain set the engine's clock, issue 16).
        nbits_less = Signal.like(nbits_reg)
        m.d.comb += [nbits_less.eq(nbits - b), bits_after.eq(bits), nbits_after.eq(nbits)]
        room = Mux(emit, nbits_less < b + WORD_BITS, nbits < b + WORD_BITS)   # nbits_after < b + WORD_BITS
        with m.If(emit):
            m.d.comb += [bits_after.eq(bits >> b), nbits_after.eq(nbits_less)]
            m.d.sync += [bits.eq(bits >> b), nbits_reg.eq(nbits_less),
                         left.eq(left - 1), subvector.eq(subvector + 1)]
            with m.If(emit_last):
                m.d.sync += [open_row.eq(0), nbits_reg.eq(0)]  # the rest of the word is padding

        # Popper: walks the row stream word by word.
        rows_left = Signal(COUNT_BITS)
        words_left = Signal(COUNT_BITS)
        bias = Signal.like(self.params.payload.bias)
        load = Signal()
        # The row's first index word is next (``words_left == index_words``), kept in a register: the
        # comparison with the configuration's subtraction set the engine's clock (timing, issue 16).
        first_word = Signal()
        take = self.words.valid & self.words.ready

        def restart():
            with m.If(self.start):
                m.d.sync += [rows_left.eq(cfg.rows), error.eq(0), open_row.eq(0), nbits_reg.eq(0)]
                with m.If(cfg.rows == 0):
                    m.next = "IDLE"
                with m.Elif(cfg.compact):
                    m.next = "REQUANT"
                with m.Else():
                    m.next = "BIAS"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                restart()
            with m.State("BIAS"):
                m.d.comb += self.words.ready.eq(~error)
                with m.If(take):
                    m.d.sync += bias.eq(word)
                    m.next = "REQUANT"
                restart()
            with m.State("REQUANT"):
                # Two-word rows: the bias came first, this is the requantization word.  Compact rows:
                # this one word holds the multiplier and the bias; the layer gives the rest.
                compact_bias = word[MULT_BITS:].as_signed() << cfg.bias_shift
                m.d.comb += [
                    self.params.valid.eq(self.words.valid & ~error),
                    self.params.payload.bias.eq(Mux(cfg.compact, compact_bias, bias)),
                    self.params.payload.mult.eq(word[:MULT_BITS]),
                    self.params.payload.shift.eq(Mux(cfg.compact, cfg.shift, word[MULT_BITS:ACT_PARAM_SHIFT])),
                    self.params.payload.act.eq(Mux(cfg.compact, cfg.act, word[ACT_PARAM_SHIFT:])),
                    self.words.ready.eq(self.params.ready & ~error),
                ]
                with m.If(take):
                    m.d.sync += [words_left.eq(cfg.index_words), first_word.eq(1)]
                    m.next = "INDICES"
                restart()
            with m.State("INDICES"):
                # A row's first word waits for the previous row to drain; later
                # words wait for room behind the bits not yet emitted.
                with m.If(first_word):
                    m.d.comb += load.eq(~open_row | emit_last)
                with m.Else():
                    m.d.comb += load.eq(room)
                m.d.comb += self.words.ready.eq(load & ~error)
                with m.If(take):
                    m.d.sync += [words_left.eq(words_left - 1), first_word.eq(0)]
                    with m.If(first_word):
                        m.d.sync += [bits.eq(word), nbits_reg.eq(WORD_BITS), open_row.eq(1),
                                     left.eq(cfg.subvectors), subvector.eq(0)]
                    with m.Else():
                        m.d.sync += [bits.eq(bits_after | (word << units(nbits_after))),
                                     nbits_reg.eq(nbits_after + WORD_BITS)]
                    with m.If(words_left == 1):
                        m.d.sync += rows_left.eq(rows_left - 1)
                        with m.If(rows_left == 1):
                            m.next = "IDLE"
                        with m.Elif(cfg.compact):
                            m.next = "REQUANT"
                        with m.Else():
                            m.next = "BIAS"
                restart()
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | open_row)
        return m
