"""Several processing elements: a dense layer's stream dealt to them, their row results gathered in row order.

The engine with ``pes > 1`` (:class:`model.contract.config.EngineConfig`) gives each processing
element (PE) its own index path, ROM port and MAC lanes; these two blocks sit on either side of
them.  The stream layout they follow is :mod:`model.contract.layout`, "Processing elements".
"""
from functools import reduce
from operator import or_

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, RowResult
from model.contract.layout import WORD_BITS


def _check_pes(pes: int) -> None:
    if not isinstance(pes, int) or pes < 2:
        raise ValueError(f"the PE blocks are for two processing elements or more, not {pes!r}")


class WordDistributor(wiring.Component):
    """Deals a dense layer's stream words to the PEs in the order the stream is laid out for them.

    Row group ``g`` (the rows ``g*P`` to ``g*P + n - 1``, ``n = min(P, rows - g*P)``) is
    ``n * row_words`` words, word ``w`` of its row ``i`` at ``w * n + i``: the distributor hands
    the group's words to PEs ``0, 1, .., n - 1, 0, 1, ..`` in turn, one per cycle.  Each PE has a
    FIFO of ``depth`` words, so a PE that takes its words in bursts (a row's header words, then
    one entry word every few cycles) does not hold back the others.

    Parameters
    ----------
    pes : int
        Processing elements, at least 2.
    depth : int
        Words each PE's FIFO holds.

    Members
    -------
    start : In(1)
        Begin a stream of ``rows`` rows of ``row_words`` words (held for the stream).
    rows, row_words : In(COUNT_BITS)
    words : In(stream.Signature(32))
        The stream; words after its rows are taken and dropped.
    outs : Out(stream.Signature(32)).array(pes)
        PE ``p``'s words.
    busy : Out(1)
        A word is still in a PE's FIFO.
    """

    def __init__(self, pes: int, depth: int = 4):
        _check_pes(pes)
        self._pes, self._depth = pes, depth
        super().__init__({
            "start": In(1),
            "rows": In(COUNT_BITS),
            "row_words": In(COUNT_BITS),
            "words": In(stream.Signature(unsigned(WORD_BITS))),
            "outs": Out(stream.Signature(unsigned(WORD_BITS))).array(pes),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pes = self._pes
        queues = []
        for p in range(pes):
            m.submodules[f"queue{p}"] = q = fifo.SyncFIFOBuffered(width=WORD_BITS, depth=self._depth)
            wiring.connect(m, q.r_stream, wiring.flipped(self.outs[p]))
            queues.append(q)
        rows_left = Signal(COUNT_BITS)   # rows of the groups not yet dealt
        word = Signal(COUNT_BITS)        # the word of the group's rows being dealt
        turn = Signal(range(pes))        # the PE whose word comes next
        group = Signal(range(pes + 1))   # rows in the group being dealt
        m.d.comb += group.eq(Mux(rows_left >= pes, pes, rows_left))
        dealing = rows_left != 0
        with m.Switch(turn):
            for p, q in enumerate(queues):
                with m.Case(p):
                    m.d.comb += [q.w_stream.payload.eq(self.words.payload),
                                 q.w_stream.valid.eq(self.words.valid & dealing),
                                 self.words.ready.eq(q.w_stream.ready | ~dealing)]
        with m.If(self.words.valid & self.words.ready & dealing):
            with m.If(turn == group - 1):
                m.d.sync += turn.eq(0)
                with m.If(word == self.row_words - 1):
                    m.d.sync += [word.eq(0), rows_left.eq(rows_left - group)]
                with m.Else():
                    m.d.sync += word.eq(word + 1)
            with m.Else():
                m.d.sync += turn.eq(turn + 1)
        with m.If(self.start):
            m.d.sync += [rows_left.eq(self.rows), word.eq(0), turn.eq(0)]
        m.d.comb += self.busy.eq(reduce(or_, [q.level != 0 for q in queues]))
        return m


class ResultMerger(wiring.Component):
    """Gathers the PEs' row results and hands them on in row order, one per cycle.

    The PEs of a row group finish their rows in the same cycle; each result waits in its PE's
    FIFO of ``depth`` until the merger reaches it (PE 0's first, then 1, .. ``n - 1``, then the
    next group's).  ``room`` says whether another group may start: a group is *in flight* from
    its first beat (``group_start``) until its last result has left, and at most ``depth`` are,
    so no FIFO overflows.

    Parameters
    ----------
    pes : int
        Processing elements, at least 2.
    depth : int
        Row results each PE's FIFO holds (groups in flight).

    Members
    -------
    start : In(1)
        Begin a layer (or a convolution's position) of ``rows`` rows (held for it).
    rows : In(COUNT_BITS)
    results : In(stream.Signature(RowResult, always_ready=True)).array(pes)
        PE ``p``'s row results (rows ``p``, ``p + P``, ..).
    group_start : In(1)
        The fetch stage takes a row group's first beat.
    room : Out(1)
        A group may start: fewer than ``depth`` are in flight.
    output : Out(stream.Signature(RowResult, always_ready=True))
        The results in row order.
    """

    def __init__(self, pes: int, depth: int = 4):
        _check_pes(pes)
        self._pes, self._depth = pes, depth
        super().__init__({
            "start": In(1),
            "rows": In(COUNT_BITS),
            "results": In(stream.Signature(RowResult, always_ready=True)).array(pes),
            "group_start": In(1),
            "room": Out(1),
            "output": Out(stream.Signature(RowResult, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        pes = self._pes
        queues = []
        for p in range(pes):
            m.submodules[f"queue{p}"] = q = fifo.SyncFIFOBuffered(width=RowResult.size, depth=self._depth)
            m.d.comb += [q.w_data.eq(self.results[p].payload), q.w_en.eq(self.results[p].valid)]
            queues.append(q)
        turn = Signal(range(pes))    # the PE whose result comes next
        base = Signal(COUNT_BITS)    # the first row of the group being gathered
        in_flight = Signal(range(self._depth + 1))
        popped = Signal()
        group_done = Signal()
        with m.Switch(turn):
            for p, q in enumerate(queues):
                with m.Case(p):
                    m.d.comb += [self.output.valid.eq(q.r_rdy), self.output.payload.eq(q.r_data),
                                 q.r_en.eq(1), popped.eq(q.r_rdy)]
        m.d.comb += group_done.eq(popped & ((turn == pes - 1) | (base + turn + 1 == self.rows)))
        with m.If(popped):
            m.d.sync += turn.eq(turn + 1)
            with m.If(group_done):
                m.d.sync += [turn.eq(0), base.eq(base + pes)]
        m.d.sync += in_flight.eq(in_flight + self.group_start - group_done)
        m.d.comb += self.room.eq(in_flight < self._depth)
        with m.If(self.start):
            m.d.sync += [turn.eq(0), base.eq(0), in_flight.eq(0)]
        return m
