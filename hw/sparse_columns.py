"""Column-wise sparse layers, EIE's dataflow: non-zero activations broadcast, each slot scatters into its rows."""
from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import lane_word
from model.contract.fixedpoint import ACC_BITS, ACT_BITS

#: Columns a slot's pointer stage holds ready for its walker, so that a run of
#: one-entry columns still issues an entry every cycle (one column in flight
#: through the column-table read, one waiting, one being taken).
READY_COLUMNS = 3


class LoadTarget(enum.Enum, shape=2):
    """What a ``load`` transfer writes."""
    COLUMN = 0     #: a slot's column-table entry: where a column's entries start, and how many
    ENTRY = 1      #: a slot's entry: local row and centroid index of a kept weight
    CENTROID = 2   #: the centroid table (shared by the slots): the weight of a centroid index
    BIAS = 3       #: a slot's bias of a local row (32 bits, added to its sum in the output phase)


def column_layout(entries: int, rows: int) -> data.StructLayout:
    """A column-table entry: the column's first entry in the slot's entry memory, and its entry count."""
    return data.StructLayout({"start": range(entries), "count": range(rows + 1)})


def entry_layout(rows: int, index_bits: int) -> data.StructLayout:
    """A kept weight: the accumulator (local row) it adds to, and its centroid index."""
    return data.StructLayout({"row": range(rows), "index": unsigned(index_bits)})


class SparseColumns(wiring.Component):
    """A sparse layer, column by column, on ``slots`` multipliers (:mod:`model.codecs.sparse_columns`).

    Each slot owns some of the layer's rows (their accumulators, in a memory
    of ``rows`` words) and, for every column, the kept weights of its rows in
    that column.  After ``start``, the scanner takes the layer's activations a
    lane-word at a time and broadcasts each non-zero one, with its column,
    into every slot's queue (one a cycle, when every queue has room); a zero
    activation costs nothing beyond its share of the lane-word.  Each slot,
    independently:

    * its pointer stage pops a column from the queue and reads the column's
      entries' start and count from the slot's column table (columns with no
      entries in the slot stop here);
    * its walker issues one entry a cycle, the columns back to back;
    * the entry's centroid weight times the activation is added into the
      entry's accumulator two cycles later (read and write in one cycle; the
      read sees the previous cycle's write, so consecutive entries of one row
      need no stall).

    When every activation has been scanned and every slot has drained, the
    output phase streams the accumulators out, each plus its bias, one
    lane-word (local row ``t`` of every slot) per transfer, and clears each as
    it goes, ready for the next image.  Golden twin:
    :func:`model.golden.sparse_columns.column_sums`.

    The column tables, entries, biases and centroids are written through
    ``load`` between layers; a layer's column table starts at
    ``config.column_base``, its biases at ``config.row_base`` and its
    centroids at ``config.centroid_base``, and its entries may sit anywhere in
    the entry memory (the table holds absolute starts), so several layers
    stay resident together.

    Parameters
    ----------
    lanes : int
        Activations per lane-word on ``acts``.
    slots : int
        Multipliers (lanes x PEs in an engine).
    columns : int
        Column-table depth per slot (the columns of every resident layer).
    entries : int
        Entry-memory depth per slot.
    rows : int
        Accumulators and biases per slot (the local rows of every resident layer).
    index_bits : int
        Centroid index width.
    centroids : int
        Centroid-table depth (every resident layer's); default ``2**index_bits``.
    max_words : int
        Most lane-words of a layer's input (padding included); default ``ceil(columns / lanes)``.
    queue_depth : int
        Each slot's queue of broadcast activations.
    weight_bits : int
        Width of a centroid weight.

    Members
    -------
    config : In(layout)
        ``words`` (activation lane-words of the layer), ``column_base``, ``rows``
        (local rows, the output transfers), ``row_base``, ``centroid_base``; held from
        ``start`` to the end of the layer.
    start : In(1)
        Begin a layer (only while not ``busy``).
    acts : In(stream.Signature(lane_word(lanes)))
        The layer's activations, ``words`` lane-words.
    sums : Out(stream.Signature(data.ArrayLayout(signed(ACC_BITS), slots)))
        ``config.rows`` transfers after the scan; lane ``s`` of transfer ``t``
        is slot ``s``'s local row ``t`` (0 past a slot's rows).
    load : In(stream.Signature(load_layout, always_ready=True))
        ``target`` (:class:`LoadTarget`), ``slot``, ``addr``, ``data``; only while not ``busy``.
    busy : Out(1)
        From ``start`` to the last ``sums`` transfer.
    events : Out(layout)
        Per cycle: ``macs`` (entries multiplied), ``zero_skips`` (zero
        activations in the lane-word the scanner takes) and ``column_reads``
        (slots reading their column table).
    """

    def __init__(self, lanes: int, slots: int, *, columns: int, entries: int, rows: int, index_bits: int,
                 centroids: int | None = None, max_words: int | None = None, queue_depth: int = 16,
                 weight_bits: int = ACT_BITS):
        centroids = 1 << index_bits if centroids is None else centroids
        max_words = -(-columns // lanes) if max_words is None else max_words
        for name, value in (("lanes", lanes), ("slots", slots), ("columns", columns), ("entries", entries),
                            ("rows", rows), ("index_bits", index_bits), ("centroids", centroids),
                            ("max_words", max_words),
                            ("queue_depth", queue_depth),
                            ("weight_bits", weight_bits)):
            if not isinstance(value, int) or value < 1:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self.lanes, self.slots, self.columns, self.entries, self.rows = lanes, slots, columns, entries, rows
        self.index_bits, self.queue_depth, self.weight_bits = index_bits, queue_depth, weight_bits
        self.centroids, self.max_words = centroids, max_words
        self.column_layout = column_layout(entries, rows)
        self.entry_layout = entry_layout(rows, index_bits)
        widest = max(self.column_layout.size, self.entry_layout.size, weight_bits, ACC_BITS)
        self.load_layout = data.StructLayout({
            "target": LoadTarget, "slot": range(slots),
            "addr": range(max(columns, entries, rows, centroids)), "data": unsigned(widest)})
        self.config_layout = data.StructLayout({
            "words": range(max_words + 1), "column_base": range(columns), "rows": range(rows + 1),
            "row_base": range(rows), "centroid_base": range(centroids)})
        self.events_layout = data.StructLayout({"macs": range(slots + 1), "zero_skips": range(lanes + 1),
                                                "column_reads": range(slots + 1)})
        super().__init__({
            "config": In(self.config_layout),
            "start": In(1),
            "acts": In(stream.Signature(lane_word(lanes))),
            "sums": Out(stream.Signature(data.ArrayLayout(signed(ACC_BITS), slots))),
            "load": In(stream.Signature(self.load_layout, always_ready=True)),
            "busy": Out(1),
            "events": Out(self.events_layout),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, cfg = self.lanes, self.config
        load = self.load.payload
        act_shape = signed(ACT_BITS)
        queued = data.StructLayout({"column": range(self.columns), "act": act_shape})
        ready_layout = data.StructLayout({"start": range(self.entries), "count": range(self.rows + 1),
                                          "act": act_shape})

        centroids = Array(Signal(signed(self.weight_bits), name=f"centroid{i}") for i in range(self.centroids))
        with m.If(self.load.valid & (load.target == LoadTarget.CENTROID)):
            m.d.sync += centroids[load.addr].eq(load.data[:self.weight_bits])

        # --- scanner: the held lane-word's pending non-zero lanes, lowest first ---------------------------
        word = Signal(lane_word(lanes))
        pending = Signal(lanes)
        base = Signal(range((self.max_words + 1) * lanes))   # column of the held word's lane 0
        next_base = Signal.like(base)
        words_left = Signal.like(cfg.words)
        running = Signal()                               # scanning or draining (not yet the output phase)
        lowest = Signal(lanes)                           # one-hot: the pending lane sent next
        lane = Signal(range(lanes))
        for i in reversed(range(lanes)):
            with m.If(pending[i]):
                m.d.comb += [lowest.eq(1 << i), lane.eq(i)]
        rest = pending & ~lowest

        slots = [self._slot(m, s, queued, ready_layout, centroids) for s in range(self.slots)]
        zero_skips = Signal.like(self.events.zero_skips)
        send = Signal()
        m.d.comb += send.eq(running & pending.any() & Cat(q.w_rdy for q, _ in slots).all())
        exhausted = ~pending.any() | (send & ~rest.any())
        take = running & exhausted & (words_left != 0)
        nonzero = Cat(self.acts.payload[i] != 0 for i in range(lanes))
        m.d.comb += self.acts.ready.eq(take)
        for q, _ in slots:
            m.d.comb += [q.w_en.eq(send), q.w_data.column.eq(base + lane), q.w_data.act.eq(word[lane])]
        with m.If(send):
            m.d.sync += pending.eq(rest)
        with m.If(take & self.acts.valid):
            m.d.sync += [word.eq(self.acts.payload), pending.eq(nonzero), base.eq(next_base),
                         next_base.eq(next_base + lanes), words_left.eq(words_left - 1)]
            m.d.comb += zero_skips.eq(lanes - sum(nonzero[i] for i in range(lanes)))
        # One assignment of the whole ``events`` (see hw.column_unit: no bit of it driven alone).
        m.d.comb += self.events.eq(Cat(sum(s["stage_a"] for _, s in slots).as_unsigned()[:len(self.events.macs)],
                                       zero_skips,
                                       sum(s["pop"] for _, s in slots).as_unsigned()[:len(self.events.column_reads)]))

        # --- control: scan, drain, then the output phase ------------------------------------------------
        drained = (words_left == 0) & ~pending.any() & Cat(s["idle"] for _, s in slots).all()
        t = Signal(range(self.rows + 1))
        with m.FSM(name="columns_fsm") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [words_left.eq(cfg.words), pending.eq(0), next_base.eq(0), running.eq(1)]
                    m.next = "SCAN"
            with m.State("SCAN"):
                with m.If(drained):
                    m.d.sync += [running.eq(0), t.eq(0)]
                    for _, s in slots:
                        m.d.comb += [s["output"].eq(1), s["out_addr"].eq(0)]   # the first output word, read now
                    m.next = "OUT"
                    with m.If(cfg.rows == 0):
                        m.next = "IDLE"
            with m.State("OUT"):
                give = self.sums.ready
                m.d.comb += self.sums.valid.eq(1)
                for i, (_, s) in enumerate(slots):
                    m.d.comb += [self.sums.payload[i].eq(s["acc_data"] + s["bias_data"]), s["output"].eq(1),
                                 s["out_addr"].eq(Mux(give, t + 1, t)), s["clear"].eq(give), s["clear_addr"].eq(t)]
                with m.If(give):
                    m.d.sync += t.eq(t + 1)
                    with m.If(t + 1 == cfg.rows):
                        m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _slot(self, m, s: int, queued, ready_layout, centroids):
        """Slot ``s``'s queue, pointer stage, walker, multiplier and accumulators; returns its queue and taps."""
        cfg, load = self.config, self.load.payload
        taps = {"out_addr": Signal(range(self.rows), name=f"out_addr{s}"), "output": Signal(name=f"output{s}"),
                "clear": Signal(name=f"clear{s}"), "clear_addr": Signal(range(self.rows), name=f"clear_addr{s}")}
        loading = self.load.valid & (load.slot == s)

        m.submodules[f"queue{s}"] = q = fifo.SyncFIFO(width=queued.size, depth=self.queue_depth)
        m.submodules[f"ready{s}"] = ready = fifo.SyncFIFO(width=ready_layout.size, depth=READY_COLUMNS)
        m.submodules[f"column_table{s}"] = table = memory.Memory(shape=self.column_layout, depth=self.columns, init=[])
        m.submodules[f"entry_memory{s}"] = entry_mem = memory.Memory(shape=self.entry_layout, depth=self.entries,
                                                                     init=[])
        m.submodules[f"accumulators{s}"] = accs = memory.Memory(shape=signed(ACC_BITS), depth=self.rows, init=[])
        m.submodules[f"biases{s}"] = biases = memory.Memory(shape=signed(ACC_BITS), depth=self.rows, init=[])
        for mem, target in ((table, LoadTarget.COLUMN), (entry_mem, LoadTarget.ENTRY), (biases, LoadTarget.BIAS)):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(load.addr), wp.data.eq(load.data), wp.en.eq(loading & (load.target == target))]
        q_head = data.View(queued, q.r_data)
        q_in = data.View(queued, q.w_data)

        # Pointer stage: a column leaves the queue only when the ready columns have room for it.
        table_read = table.read_port()
        in_flight = Signal(name=f"table_read{s}")
        in_flight_act = Signal(signed(ACT_BITS), name=f"table_read_act{s}")
        pop = q.r_rdy & (ready.r_level + in_flight < READY_COLUMNS)
        m.d.comb += [q.r_en.eq(pop), table_read.addr.eq(cfg.column_base + q_head.column)]
        m.d.sync += [in_flight.eq(pop), in_flight_act.eq(q_head.act)]
        found = data.View(ready_layout, ready.w_data)
        m.d.comb += [found.start.eq(table_read.data.start), found.count.eq(table_read.data.count),
                     found.act.eq(in_flight_act), ready.w_en.eq(in_flight & (table_read.data.count != 0))]

        # Walker: the current column's next entry, else the next ready column's first, each cycle.
        head = data.View(ready_layout, ready.r_data)
        addr = Signal(range(self.entries), name=f"walk_addr{s}")
        left = Signal(range(self.rows + 1), name=f"walk_left{s}")
        act = Signal(signed(ACT_BITS), name=f"walk_act{s}")
        walking = left != 0
        entry_read = entry_mem.read_port()
        issue = walking | ready.r_rdy
        m.d.comb += entry_read.addr.eq(Mux(walking, addr, head.start))
        with m.If(walking):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
            with m.If((left == 1) & ready.r_rdy):
                m.d.comb += ready.r_en.eq(1)
                m.d.sync += [addr.eq(head.start), left.eq(head.count), act.eq(head.act)]
        with m.Elif(ready.r_rdy):
            m.d.comb += ready.r_en.eq(1)
            m.d.sync += [addr.eq(head.start + 1), left.eq(head.count - 1), act.eq(head.act)]

        # Stage M: the entry arrives; its weight times the activation, and its accumulator is read.
        # Stage A: the sum is written back.  The read port is transparent to the write port, so an
        # entry of the row written this cycle reads the new sum.
        stage_m = Signal(name=f"stage_m{s}")
        stage_m_act = Signal(signed(ACT_BITS), name=f"stage_m_act{s}")
        m.d.sync += [stage_m.eq(issue), stage_m_act.eq(Mux(walking, act, head.act))]
        entry = entry_read.data
        acc_write = accs.write_port()
        acc_read = accs.read_port(transparent_for=(acc_write,))
        stage_a = Signal(name=f"stage_a{s}")
        stage_a_row = Signal(range(self.rows), name=f"stage_a_row{s}")
        product = Signal(signed(self.weight_bits + ACT_BITS), name=f"product{s}")
        m.d.sync += [stage_a.eq(stage_m), stage_a_row.eq(entry.row),
                     product.eq(centroids[cfg.centroid_base + entry.index] * stage_m_act)]
        m.d.comb += [
            acc_read.addr.eq(Mux(taps["output"], taps["out_addr"], entry.row)),
            acc_write.addr.eq(Mux(taps["clear"], taps["clear_addr"], stage_a_row)),
            acc_write.data.eq(Mux(taps["clear"], 0, acc_read.data + product)),
            acc_write.en.eq(taps["clear"] | stage_a),
        ]
        # The bias of the output phase's local row, read with its accumulator.
        bias_read = biases.read_port()
        m.d.comb += bias_read.addr.eq(cfg.row_base + taps["out_addr"])
        idle = Signal(name=f"idle{s}")
        m.d.comb += idle.eq(~q.r_rdy & ~in_flight & ~ready.r_rdy & ~walking & ~stage_m & ~stage_a)
        taps.update(acc_data=acc_read.data, bias_data=bias_read.data, stage_a=stage_a, idle=idle, pop=pop)
        return _QueueTaps(q, q_in), taps


class _QueueTaps:
    """A slot's queue as the scanner sees it: ``w_rdy``, ``w_en`` and a view of ``w_data``."""

    def __init__(self, q, view):
        self.w_rdy, self.w_en, self.w_data = q.w_rdy, q.w_en, view
