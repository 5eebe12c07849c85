"""PVQ dot-product unit: decodes a PVQ index one step per cycle and accumulates with adds only."""
from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from hw.accumulator import RowAccumulator
from hw.layouts import DotProductSignature, lane_word, row_marked
from model.codecs.pvq import pvq_bits, pvq_count, pvq_table
from model.contract.fixedpoint import ACT_BITS
from model.contract.layout import PVQ_SCALE_BITS
from model.contract.pyramid import PVQ_MAX_LANES, pvq_sum_bits

#: The unit's strobes (``events``): see :class:`PvqDotProduct`.
PvqEvents = data.StructLayout({"busy": 1, "step": 1, "add": 1, "merge": 1, "mul": 1})


def vector_layout(n: int, index_bits: int, scale_bits: int = PVQ_SCALE_BITS) -> data.StructLayout:
    """One PVQ weight sub-vector with the activation sub-vector it meets, and row boundaries."""
    return row_marked({"index": unsigned(index_bits), "scale": unsigned(scale_bits), "activations": lane_word(n)})


def config_layout(k_max: int) -> data.StructLayout:
    """The unit's layer configuration: the layer's ``K``."""
    return data.StructLayout({"k": range(k_max + 1)})


class PvqDotProduct(wiring.Component):
    """Multiplier-free PVQ dot products; the same :class:`hw.layouts.DotProductSignature` as :class:`hw.mac.MacLanes`.

    Each transfer on ``operands`` is one weight sub-vector, coded as a PVQ index
    of ``P(n, K)`` and an unsigned scale, with the activation sub-vector ``x``
    it meets.  The unit decodes the index with the walk of
    :mod:`model.codecs.pvq` (module docstring, *Hardware decode*; the same per-cycle
    register values as :func:`model.codecs.pvq.pvq_decode_steps`) and forms
    ``<y, x>`` with additions as the walk goes: one signed add of an
    activation per pulse, and one add of ``+-p`` per non-zero coordinate
    other than the last to apply its sign (:mod:`model.golden.pvq`).  Then one
    multiply by the scale (the only multiplier) and a 32-bit accumulate
    (:class:`hw.accumulator.RowAccumulator`):
    ``acc = wrap32(bias + sum over the row's vectors of scale * <y, x>)``,
    with bias and ``mult``/``shift`` from ``params`` exactly as in ``MacLanes``.

    **Walk.**  Registers: table row ``n-1-i`` (coordinate ``i``), pulses left
    ``k``, magnitude under test ``m``, table column ``k - m`` and remainder
    ``r``.  The table entry ``b = V(n-1-i, k-m)`` comes from a
    :class:`~amaranth.lib.memory.Memory` ROM with a synchronous read whose
    address is formed from the *next* row and column, so ``b`` is ready at
    the start of every step: one walk step per cycle.  ``r < b`` and
    ``r < 2b`` are the borrows of ``r - b`` and ``r - 2b``, which are also the
    new remainders.

    **Cycles.**  A vector is busy for ``steps + max(a - 1, 0)`` cycles, with
    ``steps = n + K - a`` the walk length and ``a = |y_{n-1}|``: the last
    coordinate is resolved in one step but its ``a`` pulses are added one per
    cycle.  The next vector is taken in the last busy cycle, so vectors
    stream back to back; an idle unit takes one cycle to load a vector.  A
    row's result is valid 3 cycles after its last busy cycle
    (:data:`model.golden.pvq.RESULT_LATENCY`).

    **Range check.**  ``index >= V(n, K)`` (read from a second, small ROM) is
    found in the cycle the vector is taken: the vector is dropped, ``error``
    rises the next cycle, ``operands.ready`` stays low and nothing more is
    decoded until ``clear``.  Vectors that finished before it still deliver
    their pipeline's results; the failed row gets no result and its params
    are not consumed.

    Its signature is ``DotProductSignature(operands=vector_layout(n, index_bits,
    scale_bits), config=config_layout(k_max), events=PvqEvents)``.

    Parameters
    ----------
    n : int
        PVQ dimension = the engine's lanes, ``1 .. 16``.
    k_max : int
        Largest ``K`` a layer may use, ``>= 1``.
    index_bits : int
        Width of the index field, ``>= pvq_bits(n, k_max)``.
    scale_bits : int
        Width of the unsigned per-vector scale.

    Members
    -------
    operands : In(stream.Signature(vector_layout(n, index_bits, scale_bits)))
        ``index``, ``scale``, ``activations`` (int8 x n) and ``first``/``last``
        row marks; one transfer per sub-vector.  ``ready`` is high when the
        unit is idle or in a vector's last busy cycle (it depends on registers
        and ``clear`` only, never on ``valid``).
    config : In(config_layout(k_max))
        ``k``: the layer's ``K``, sampled with each vector's transfer.  A value
        above ``k_max`` makes every index out of range.
    params : In(stream.Signature(RowParams))
        The current row's bias and requantization, read when the row's first
        vector reaches the accumulator and consumed when its last one does.
        Like ``MacLanes``, the unit assumes it is valid then (the engine's
        row-parameter FIFO runs ahead).
    result : Out(stream.Signature(RowResult, always_ready=True))
        One accumulator per row, with the row's ``mult``/``shift``.
    clear : In(1)
        Abandon the vector being decoded and any result in the pipeline,
        clear ``error`` and go idle.  The next vector must start a row.
    error : Out(1)
        An index was out of range; stays set until ``clear``.
    events : Out(PvqEvents)
        ``busy``: a vector is being decoded (walk or tail cycles).
        ``step``: the walker made a step (one table read), ``len(pvq_decode_steps)`` per vector.
        ``add``: one signed add of an activation for one pulse; ``K`` per vector
        (the engine's ``adds`` counter).
        ``merge``: a coordinate's magnitude sum was added with its sign into
        the vector sum (non-zero coordinates but the last).
        ``mul``: the scale multiply of one vector.
    """

    def __init__(self, n: int, k_max: int, index_bits: int | None = None, scale_bits: int = PVQ_SCALE_BITS):
        if not 1 <= n <= PVQ_MAX_LANES:
            raise ValueError(f"n must be 1..{PVQ_MAX_LANES}, got {n}")
        if k_max < 1:
            raise ValueError(f"k_max must be >= 1, got {k_max}")
        need = pvq_bits(n, k_max)
        index_bits = need if index_bits is None else index_bits
        if index_bits < need:
            raise ValueError(f"index_bits={index_bits} cannot hold the {pvq_count(n, k_max)} indices of "
                             f"P({n}, {k_max}): need >= {need}")
        if scale_bits < 1:
            raise ValueError(f"scale_bits must be >= 1, got {scale_bits}")
        self.n, self.k_max, self.index_bits, self.scale_bits = n, k_max, index_bits, scale_bits
        self.sum_bits = pvq_sum_bits(k_max)
        # Remainders and table entries are below V(n, k_max); the range limit can equal it.
        self._r_bits = max(1, (pvq_count(n, k_max) - 1).bit_length())
        super().__init__(DotProductSignature(operands=vector_layout(n, index_bits, scale_bits),
                                             config=config_layout(k_max), events=PvqEvents))
        # The walker's registers, named so tests can compare them with
        # model.codecs.pvq.pvq_decode_steps cycle by cycle (not ports).
        self.walker = SimpleNamespace(
            row=Signal(range(n), name="walk_row"),            # n - 1 - i
            mag=Signal(range(k_max + 1), name="walk_mag"),    # m
            pulses=Signal(range(k_max + 1), name="walk_k"),   # k
            rem=Signal(self._r_bits, name="walk_r"),          # r
            block=Signal(self._r_bits, name="walk_b"),        # b = V(n-1-i, k-m)
            resolve=Signal(name="walk_resolve"),              # y_i is emitted this step
            negative=Signal(name="walk_negative"),            # ... and is negative
        )

    def elaborate(self, platform):
        m = Module()
        n, k_max, rb, sb = self.n, self.k_max, self._r_bits, self.sum_bits
        w = self.walker
        row, mag, pulses, rem, b = w.row, w.mag, w.pulses, w.rem, w.block
        vin = self.operands.payload
        k = self.config.k

        # --- tables ------------------------------------------------------------------------
        # V(row, col) at address Cat(col, row): a power-of-two row stride keeps
        # the address a concatenation (a stride of k_max + 1 would need a multiply).
        col_bits = k_max.bit_length()
        v = pvq_table(n, k_max)
        init = [0] * (n << col_bits)
        for r_ in range(n):
            for c_ in range(k_max + 1):
                init[(r_ << col_bits) | c_] = int(v[r_, c_])
        m.submodules.table = table = Memory(shape=unsigned(rb), depth=n << col_bits, init=init)
        rd = table.read_port()
        # V(n, K) for the range check, read combinationally so K needs no setup cycle.
        # Codes of K above k_max read a limit of 0, so every index is out of range.
        limits = [int(v[n, K]) for K in range(k_max + 1)]
        m.submodules.limit_rom = limit_rom = Memory(shape=unsigned(max(limits).bit_length()),
                                                    depth=1 << len(k), init=limits)
        limit = limit_rom.read_port(domain="comb")
        m.d.comb += [limit.addr.eq(k), b.eq(rd.data)]

        # --- vector registers --------------------------------------------------------------
        col = Signal(range(k_max + 1))          # k - m: the table column
        acts = Signal(lane_word(n))              # shifted down a lane per coordinate: x_i is lane 0
        scale = Signal(self.scale_bits)
        first, last = Signal(), Signal()
        mag_sum = Signal(signed(sb))             # p: x_i once per pulse found so far
        vec_sum = Signal(signed(sb))             # S: the signed coordinates resolved so far
        tail_left = Signal(range(k_max + 1))     # last-coordinate pulses still to add
        tail_neg = Signal()
        x = acts[0]

        walking, tailing, idle = Signal(), Signal(), Signal()
        at_last = row == 0
        load = Signal()
        finish = Signal()                        # the vector's last busy cycle
        m.d.comb += [
            finish.eq((walking & at_last & (mag <= 1)) | (tailing & (tail_left == 1))),
            self.operands.ready.eq(~self.clear & (idle | finish)),
            load.eq(self.operands.valid & self.operands.ready),
            self.events.busy.eq(walking | tailing),
            self.events.step.eq(walking),
        ]
        bad = vin.index >= limit.data

        # --- one walk step -----------------------------------------------------------------
        diff1 = Signal(signed(rb + 1))           # r - b; its borrow is r < b
        diff2 = Signal(signed(rb + 2))           # r - 2b; its borrow is r < 2b
        below1, below2 = diff1 < 0, diff2 < 0
        advance = Signal()                       # |y_i| > m: one more pulse, m += 1
        m.d.comb += [diff1.eq(rem - b), diff2.eq(rem - (b << 1))]
        with m.If(walking):
            with m.If(mag == 0):
                m.d.comb += [w.resolve.eq(below1), advance.eq(~below1)]
            with m.Elif(at_last):
                # Only y = +k (r = 0) or -k (r = 1) is left: b = V(0, 0) = 1.
                m.d.comb += [w.resolve.eq(1), w.negative.eq(~below1)]
            with m.Else():
                m.d.comb += [w.resolve.eq(below2), w.negative.eq(~below1), advance.eq(~below2)]

        # Next table row/column, so the read for the next step is issued now.
        row_next, col_next = Signal.like(row), Signal.like(col)
        m.d.comb += [row_next.eq(row), col_next.eq(col)]
        m.d.sync += [row.eq(row_next), col.eq(col_next)]
        next_is_last = row == 1
        with m.If(advance):
            m.d.comb += col_next.eq(col - 1)
            # Skip the block(s) of magnitude m: the zero block, or the +m and -m blocks.
            m.d.sync += [rem.eq(Mux(mag == 0, diff1, diff2)), mag.eq(mag + 1)]
        with m.Elif(w.resolve & ~at_last):
            m.d.comb += [row_next.eq(row - 1),
                         # The last coordinate starts at m = k, so it reads V(0, 0).
                         col_next.eq(Mux(next_is_last, 0, col))]
            m.d.sync += [pulses.eq(col), mag.eq(Mux(next_is_last, col, 0)),
                         acts.eq(acts.as_value() >> ACT_BITS)]
            with m.If(w.negative):
                m.d.sync += rem.eq(diff1)
        with m.Elif(w.resolve & w.negative):     # last coordinate, y = -k: r -= b leaves 0
            m.d.sync += rem.eq(diff1)
        # Read only what the next step uses: table reads = walk steps.
        m.d.comb += [rd.addr.eq(Cat(col_next, row_next)), rd.en.eq(load | (walking & ~at_last))]

        # --- additions ---------------------------------------------------------------------
        last_pulse = walking & at_last & (mag != 0)            # first of the last coordinate's pulses
        merging = walking & w.resolve & ~at_last & (mag != 0)  # apply y_i's sign to p
        sign = Mux(tailing, tail_neg, w.negative)
        operand = Mux(merging, mag_sum, x)
        vec_next = Signal(signed(sb))
        m.d.comb += [
            self.events.add.eq(advance | last_pulse | tailing),
            self.events.merge.eq(merging),
            vec_next.eq(vec_sum),
        ]
        with m.If(merging | last_pulse | tailing):
            m.d.comb += vec_next.eq(vec_sum + Mux(sign, -operand, operand))
        m.d.sync += vec_sum.eq(vec_next)
        with m.If(advance):
            m.d.sync += mag_sum.eq(mag_sum + x)
        with m.Elif(w.resolve):
            m.d.sync += mag_sum.eq(0)
        with m.If(walking & at_last):
            m.d.sync += [tail_left.eq(mag - 1), tail_neg.eq(w.negative)]
        with m.If(tailing):
            m.d.sync += tail_left.eq(tail_left - 1)

        # --- taking a vector (after the walk's updates, so it wins) ------------------------
        with m.If(load):
            m.d.comb += [row_next.eq(n - 1), col_next.eq(0 if n == 1 else k)]
            m.d.sync += [
                pulses.eq(k), mag.eq(k if n == 1 else 0), rem.eq(vin.index[:rb]),
                acts.eq(vin.activations), scale.eq(vin.scale), first.eq(vin.first), last.eq(vin.last),
                mag_sum.eq(0), vec_sum.eq(0),
            ]

        error = Signal()
        m.d.comb += self.error.eq(error)

        def on_clear():
            """``clear`` wins from any state (called last in each state)."""
            with m.If(self.clear):
                m.d.sync += error.eq(0)
                m.next = "IDLE"

        def take_next():
            """Leave a vector's last busy cycle (or idle): take the next vector if one is offered."""
            with m.If(load):
                with m.If(bad):
                    m.d.sync += error.eq(1)
                    m.next = "ERROR"
                with m.Else():
                    m.next = "WALK"
            with m.Else():
                m.next = "IDLE"

        with m.FSM(name="pvq_fsm"):
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(load):
                    take_next()
                on_clear()
            with m.State("WALK"):
                m.d.comb += walking.eq(1)
                with m.If(at_last):
                    with m.If(mag >= 2):     # more pulses than the resolving step adds
                        m.next = "TAIL"
                    with m.Else():
                        take_next()
                on_clear()
            with m.State("TAIL"):
                m.d.comb += tailing.eq(1)
                with m.If(tail_left == 1):
                    take_next()
                on_clear()
            with m.State("ERROR"):
                on_clear()

        # --- scale multiply and row accumulator --------------------------------------------
        # Stage 1: the finished vector sum; stage 2: the one multiply; stage 3: accumulate.
        v1, first1, last1 = Signal(), Signal(), Signal()
        sum1 = Signal(signed(sb))
        scale1 = Signal(self.scale_bits)
        m.d.sync += [v1.eq(finish & ~self.clear), sum1.eq(vec_next), scale1.eq(scale),
                     first1.eq(first), last1.eq(last)]
        v2, first2, last2 = Signal(), Signal(), Signal()
        product = Signal(signed(self.scale_bits + sb))
        m.d.sync += [v2.eq(v1 & ~self.clear), product.eq(scale1 * sum1), first2.eq(first1), last2.eq(last1)]
        m.d.comb += self.events.mul.eq(v1)

        # A clear drops the term in this stage too: its row is abandoned.
        m.submodules.accumulator = accumulator = RowAccumulator()
        term = accumulator.terms
        m.d.comb += [term.valid.eq(v2 & ~self.clear), term.payload.value.eq(product),
                     term.payload.first.eq(first2), term.payload.last.eq(last2)]
        wiring.connect(m, wiring.flipped(self.params), accumulator.params)
        wiring.connect(m, accumulator.result, wiring.flipped(self.result))
        return m
