"""Several processing elements: a dense layer's stream dealt to them, their row results gathered in row order.

The engine with ``pes > 1`` (:class:`model.contract.config.EngineConfig`) gives each processing
element (PE) its own index path, ROM port and MAC lanes; these two blocks sit on either side of
them.  The stream layout they follow is :mod:`model.contract.layout`, "Processing elements".
"""
from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, RowResult
from model.contract.ints import ceil_div
from model.contract.layout import WORD_BITS, WSRAM_ADDR_BITS


def _check_pes(pes: int) -> None:
    if not isinstance(pes, int) or pes < 2:
        raise ValueError(f"the PE blocks are for two processing elements or more, not {pes!r}")


class WordDistributor(wiring.Component):
    """Deals a dense layer's stream words to the PEs in the order the stream is laid out for them.

    Row group ``g`` (the rows ``g*P`` to ``g*P + n - 1``, ``n = min(P, rows - g*P)``) is
    ``n * row_words`` words, word ``w`` of its row ``i`` at ``w * n + i``: the distributor hands
    the group's words to PEs ``0, 1, .., n - 1, 0, 1, ..`` in turn.  From ``words`` (DRAM, one a
    cycle) it deals one word a cycle; from ``wide`` (the weight SRAM's banks, up to ``P`` a cycle)
    as many as the PEs left in the round (one word to each of the group's PEs) take, so a
    resident layer feeds every PE in the same cycle.  Each PE has a FIFO of ``depth`` words, so a
    PE that takes its words in bursts (a row's header words, then one entry word every few
    cycles) does not hold back the others.

    Parameters
    ----------
    pes : int
        Processing elements, at least 2.
    depth : int
        Words each PE's FIFO holds.
    queued : bool
        Say which PEs' FIFOs hold a word (``queued``: the sparse row paths' ``dry``).

    Members
    -------
    start : In(1)
        Begin a stream of ``rows`` rows of ``row_words`` words (held for the stream).
    rows, row_words : In(COUNT_BITS)
    words : In(stream.Signature(32))
        The stream from DRAM; words after its rows are taken and dropped.
    from_wide : In(1)
        The stream comes on ``wide`` instead (held for the stream).
    wide : In(WideWordsSignature(pes))
        Up to ``P`` consecutive stream words a cycle (:class:`WeightBanks`).
    outs : Out(stream.Signature(32)).array(pes)
        PE ``p``'s words.
    busy : Out(1)
        A word is still in a PE's FIFO.
    queued : Out(pes)
        Bit ``p``: a word is in PE ``p``'s FIFO (its ``outs[p].valid`` rises a cycle after a word
        enters); only with ``queued``.
    """

    def __init__(self, pes: int, depth: int = 4, queued: bool = False):
        _check_pes(pes)
        self._pes, self._depth = pes, depth
        super().__init__({
            "start": In(1),
            "rows": In(COUNT_BITS),
            "row_words": In(COUNT_BITS),
            "words": In(stream.Signature(unsigned(WORD_BITS))),
            "from_wide": In(1),
            "wide": In(WideWordsSignature(pes)),
            "outs": Out(stream.Signature(unsigned(WORD_BITS))).array(pes),
            "busy": Out(1),
            **({"queued": Out(pes)} if queued else {}),
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
        # The words offered now, the first one to PE ``turn``: from DRAM one, from the banks up to P.
        avail = Signal(range(pes + 1))
        offered = Signal(data.ArrayLayout(WORD_BITS, pes))
        m.d.comb += [avail.eq(Mux(self.from_wide, self.wide.avail, self.words.valid)),
                     offered.eq(Mux(self.from_wide, self.wide.words, self.words.payload))]
        # Word j goes to PE turn + j, within the round (no PE gets two) and while every PE up to it has room.
        takes = [Signal(name=f"take{j}") for j in range(pes)]
        for j in range(pes):
            target = Signal(range(pes), name=f"target{j}")
            m.d.comb += target.eq(turn + j)
            room = Signal(name=f"room{j}")
            with m.Switch(target):
                for p, q in enumerate(queues):
                    with m.Case(p):
                        m.d.comb += room.eq(q.w_stream.ready)
            m.d.comb += takes[j].eq((j < avail) & (turn + j < group) & room & (takes[j - 1] if j else 1) & dealing)
        taken = Signal(range(pes + 1))
        m.d.comb += taken.eq(sum(takes))
        for p, q in enumerate(queues):
            j = Signal(range(pes), name=f"word_of{p}")
            m.d.comb += j.eq(p - turn)   # modulo P: the offered word PE p would get
            with m.Switch(j):
                for k in range(pes):
                    with m.Case(k):
                        m.d.comb += [q.w_stream.payload.eq(offered[k]), q.w_stream.valid.eq(takes[k])]
        m.d.comb += [self.words.ready.eq(~self.from_wide & (takes[0] | ~dealing)),
                     self.wide.taken.eq(Mux(self.from_wide, taken, 0))]
        with m.If(taken != 0):
            with m.If(turn + taken == group):
                m.d.sync += turn.eq(0)
                with m.If(word == self.row_words - 1):
                    m.d.sync += [word.eq(0), rows_left.eq(rows_left - group)]
                with m.Else():
                    m.d.sync += word.eq(word + 1)
            with m.Else():
                m.d.sync += turn.eq(turn + taken)
        with m.If(self.start):
            m.d.sync += [rows_left.eq(self.rows), word.eq(0), turn.eq(0)]
        m.d.comb += self.busy.eq(reduce(or_, [q.level != 0 for q in queues]))
        if hasattr(self, "queued"):
            m.d.comb += self.queued.eq(Cat(q.level != 0 for q in queues))
        return m


class WideWordsSignature(wiring.Signature):
    """Up to ``P`` consecutive stream words a cycle, of which the consumer takes a prefix.

    Members
    -------
    words : Out(ArrayLayout(32, P))
        Stream words ``i .. i + P - 1`` (the first ``avail`` valid).
    avail : Out(range(P + 1))
    taken : In(range(P + 1))
        How many of them the consumer takes this cycle (at most ``avail``).
    """

    def __init__(self, pes: int):
        super().__init__({"words": Out(data.ArrayLayout(WORD_BITS, pes)), "avail": Out(range(pes + 1)),
                          "taken": In(range(pes + 1))})


class WeightBanks(wiring.Component):
    """The weight SRAM of an engine with ``P`` PEs: ``P`` banks, word ``a`` in bank ``a mod P``.

    The address space is the one-PE weight SRAM's (:mod:`model.contract.layout`, weight SRAM), so
    placement and counters do not change; the banks make ``P`` consecutive words readable in one
    cycle, from any address, so a resident layer's stream reaches the PEs at up to ``P`` words a
    cycle (:class:`WordDistributor`).  Words are written one a cycle (image 0 fills them from DRAM).

    Parameters
    ----------
    pes : int
        Banks, at least 2.
    words : int
        Capacity in 32-bit words.

    Members
    -------
    start : In(1)
        Read ``count`` words from ``addr`` (a stream: this cycle's ``addr`` and ``count``).
    addr : In(WSRAM_ADDR_BITS), count : In(2 * COUNT_BITS)
    out : Out(WideWordsSignature(pes))
        The words read, ``P`` at a time.
    busy : Out(1)
        Words of the read remain to be taken.
    wr_addr : In(WSRAM_ADDR_BITS), wr_data : In(32), wr_en : In(1)
        The write port.
    """

    def __init__(self, pes: int, words: int):
        _check_pes(pes)
        self._pes, self._words = pes, words
        super().__init__({
            "start": In(1), "addr": In(WSRAM_ADDR_BITS), "count": In(2 * COUNT_BITS),
            "out": Out(WideWordsSignature(pes)), "busy": Out(1),
            "wr_addr": In(WSRAM_ADDR_BITS), "wr_data": In(WORD_BITS), "wr_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        pes = self._pes
        bits = pes.bit_length() - 1   # pes is a power of two
        depth = ceil_div(self._words, pes)
        ports = []
        for b in range(pes):
            m.submodules[f"bank{b}"] = mem = memory.Memory(shape=unsigned(WORD_BITS), depth=depth, init=[])
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [wr.addr.eq(self.wr_addr >> bits), wr.data.eq(self.wr_data),
                         wr.en.eq(self.wr_en & (self.wr_addr[:bits] == b))]
            ports.append(rd)
        ptr = Signal(WSRAM_ADDR_BITS)   # the address of the first word on the ports
        left = Signal(2 * COUNT_BITS)   # words of the read not yet taken, from ptr
        primed = Signal()               # the ports hold the words from ptr
        nxt = Signal(WSRAM_ADDR_BITS)   # the address the ports read for next cycle
        m.d.comb += nxt.eq(Mux(primed, ptr + self.out.taken, ptr))
        for b, rd in enumerate(ports):
            # Bank b holds the word of the next P from nxt whose address is b modulo P.
            offset = Signal(range(pes), name=f"offset{b}")
            m.d.comb += [offset.eq(b - nxt[:bits]), rd.addr.eq((nxt + offset) >> bits), rd.en.eq(1)]
        # Word j on the output is bank (ptr + j) mod P's.
        for j in range(pes):
            bank = Signal(range(pes), name=f"bank_of{j}")
            m.d.comb += bank.eq(ptr[:bits] + j)
            with m.Switch(bank):
                for b, rd in enumerate(ports):
                    with m.Case(b):
                        m.d.comb += self.out.words[j].eq(rd.data)
        m.d.comb += [self.out.avail.eq(Mux(primed, Mux(left >= pes, pes, left), 0)), self.busy.eq(left != 0)]
        with m.If(primed):
            m.d.sync += [ptr.eq(nxt), left.eq(left - self.out.taken)]
        with m.Elif(left != 0):
            m.d.sync += primed.eq(1)
        with m.If(self.start):
            m.d.sync += [ptr.eq(self.addr), left.eq(self.count), primed.eq(0)]
        return m


class ResultMerger(wiring.Component):
    """Gathers the PEs' row results and hands them on in row order, one per cycle.

    In a dense layer the PEs of a row group finish their rows in the same cycle; each result
    waits in its PE's FIFO of ``depth`` until the merger reaches it (PE 0's first, then 1, ..
    ``n - 1``, then the next group's).  ``room`` says whether another group may start: a group
    is *in flight* from its first beat (``group_start``) until its last result has left, and at
    most ``depth`` are, so no FIFO overflows.  In a sparse layer the PEs run on their own (a
    row's length is its own); ``rooms[p]`` says whether PE ``p`` may start another row: a row is
    in flight from its first beat (``row_starts[p]``) until its result has left PE ``p``'s FIFO.

    Parameters
    ----------
    pes : int
        Processing elements, at least 2.
    depth : int
        Row groups of a dense layer in flight.
    queue_depth : int or None
        Row results each PE's FIFO holds (default ``depth``).  An engine with sparse layers gives
        each PE room for all its rows of the largest layer: PEs then never wait for each other's
        results, so one PE's long rows cannot stop the word distributor that feeds the others
        (with fewer, a PE ``queue_depth`` rows ahead would wait for a PE that waits for words
        stuck behind its own).

    Members
    -------
    start : In(1)
        Begin a layer of ``rows`` rows per position (held for it): a convolution's positions follow one
        another, each ``rows`` results.
    rows : In(COUNT_BITS)
    results : In(stream.Signature(RowResult, always_ready=True)).array(pes)
        PE ``p``'s row results (rows ``p``, ``p + P``, ..).
    group_start : In(1)
        The fetch stage takes a row group's first beat.
    room : Out(1)
        A group may start: fewer than ``depth`` are in flight.
    row_starts : In(pes)
        Bit ``p``: PE ``p`` takes a row's first beat (only with ``queue_depth``, for a sparse layer).
    rooms : Out(pes)
        Bit ``p``: PE ``p`` may start a row: fewer than ``queue_depth`` of its rows are in flight
        (only with ``queue_depth``).
    output : Out(stream.Signature(RowResult, always_ready=True))
        The results in row order.
    """

    def __init__(self, pes: int, depth: int = 4, queue_depth: int | None = None):
        _check_pes(pes)
        self._pes, self._depth = pes, depth
        self._queue_depth = depth if queue_depth is None else queue_depth
        if self._queue_depth < depth:
            raise ValueError(f"queue_depth {queue_depth} holds fewer results than {depth} groups in flight")
        super().__init__({
            "start": In(1),
            "rows": In(COUNT_BITS),
            "results": In(stream.Signature(RowResult, always_ready=True)).array(pes),
            "group_start": In(1),
            "room": Out(1),
            **({"row_starts": In(pes), "rooms": Out(pes)} if queue_depth is not None else {}),
            "output": Out(stream.Signature(RowResult, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        pes = self._pes
        queues = []
        for p in range(pes):
            m.submodules[f"queue{p}"] = q = fifo.SyncFIFOBuffered(width=RowResult.size, depth=self._queue_depth)
            m.d.comb += [q.w_data.eq(self.results[p].payload), q.w_en.eq(self.results[p].valid)]
            queues.append(q)
        turn = Signal(range(pes))    # the PE whose result comes next
        base = Signal(COUNT_BITS)    # the first row of the group being gathered
        in_flight = Signal(range(self._depth + 1))
        popped = Signal()
        group_done = Signal()
        per_pe = hasattr(self, "rooms")
        pops = Signal(pes) if per_pe else None   # bit p: PE p's result leaves
        with m.Switch(turn):
            for p, q in enumerate(queues):
                with m.Case(p):
                    m.d.comb += [self.output.valid.eq(q.r_rdy), self.output.payload.eq(q.r_data),
                                 q.r_en.eq(1), popped.eq(q.r_rdy), *([pops[p].eq(q.r_rdy)] if per_pe else [])]
        for p in range(pes if per_pe else 0):
            rows_in_flight = Signal(range(self._queue_depth + 1), name=f"rows_in_flight{p}")
            m.d.sync += rows_in_flight.eq(rows_in_flight + self.row_starts[p] - pops[p])
            m.d.comb += self.rooms[p].eq(rows_in_flight < self._queue_depth)
            with m.If(self.start):
                m.d.sync += rows_in_flight.eq(0)
        m.d.comb += group_done.eq(popped & ((turn == pes - 1) | (base + turn + 1 == self.rows)))
        with m.If(popped):
            m.d.sync += turn.eq(turn + 1)
            with m.If(group_done):   # the next group, or the first of the next convolution position
                m.d.sync += [turn.eq(0), base.eq(Mux(base + pes >= self.rows, 0, base + pes))]
        m.d.sync += in_flight.eq(in_flight + self.group_start - group_done)
        m.d.comb += self.room.eq(in_flight < self._depth)
        with m.If(self.start):
            m.d.sync += [turn.eq(0), base.eq(0), in_flight.eq(0)]
        return m
