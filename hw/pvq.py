"""PVQ dot-product unit: decodes a PVQ index one pulse per cycle and accumulates with adds only."""
from functools import reduce
from operator import or_
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from hw.accumulator import RowAccumulator
from hw.layouts import DotProductSignature, lane_word, row_marked
from model.codecs.pvq import pvq_bits, pvq_count, pvq_table, pvq_walk_thresholds
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
    register values as :func:`model.codecs.pvq.pvq_decode_steps`), one pulse
    per cycle, and forms ``<y, x>`` with additions as the walk goes: one add of
    an activation per pulse into the open coordinate's magnitude sum, and one
    add of ``+-`` that sum into the vector sum when the coordinate's sign is
    found, in the same cycle (:mod:`model.golden.pvq`).  Then one multiply by
    the scale (the only multiplier) and a 32-bit accumulate
    (:class:`hw.accumulator.RowAccumulator`):
    ``acc = wrap32(bias + sum over the row's vectors of scale * <y, x>)``,
    with bias and ``mult``/``shift`` from ``params`` exactly as in ``MacLanes``.

    **Walk.**  Registers: pulses left ``k``, magnitude to test ``m`` (0: no
    coordinate open), the open coordinate's row (one-hot) and the remainder
    ``r``.  A :class:`~amaranth.lib.memory.Memory` ROM
    (:func:`model.codecs.pvq.pvq_walk_thresholds`) holds, per word, the
    thresholds ``(lo, mid, hi)`` of every row: the word of column ``k`` when a
    step opens a coordinate, of column ``k - m`` when it continues one.  Its
    read is synchronous with an address formed from the *next* registers, so
    the word is ready at the start of every step.  A step opening a coordinate
    finds its row as a thermometer of ``r >= lo`` over rows ``1 .. n-1`` (the
    zero coordinates before it cost nothing).  Then, with ``t`` the magnitude
    tested (1 when opening, else ``m``), ``r < mid`` resolves ``+t``, ``r < hi``
    resolves ``-t``, else the coordinate stays open, and ``r`` drops by
    ``lo``, ``mid`` or ``hi``.

    **Cycles.**  A vector is busy for exactly ``K`` cycles (one pulse each,
    whatever ``n`` and ``y`` are; a ``K = 0`` vector for one cycle).  Whether a
    cycle is a vector's last depends on registers only (``k == 1`` with no
    coordinate open, or ``k == m``), so the next vector is taken in it and
    vectors stream back to back at one pulse per cycle; an idle unit takes
    one cycle to load a vector.  A row's result is valid 3 cycles after its
    last busy cycle (:data:`model.golden.pvq.RESULT_LATENCY`).  Over whole
    lenet300 jobs (Verilator, 2 images) the engine's ``adds / cycles`` is 0.998
    at 4 lanes with K = 3 and 0.994 at 8 lanes with K = 2, 1, 1; the rest is
    per-layer and per-image overhead outside the unit.

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
        ``busy``: a vector is being decoded.
        ``step``: the walker made a step (one table read), ``len(pvq_decode_steps)`` = ``K`` per vector.
        ``add``: one add of an activation for one pulse; ``K`` per vector
        (the engine's ``adds`` counter).
        ``merge``: a coordinate's magnitude sum was added with its sign into
        the vector sum (one per non-zero coordinate).
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
        # The walk's thresholds (pvq_walk_thresholds; at most V(n, k_max) where the walk reads them).
        self._t_bits = max(1, max(x for half in pvq_walk_thresholds(n, k_max) for col in half for row in col
                                  for x in row).bit_length())
        super().__init__(DotProductSignature(operands=vector_layout(n, index_bits, scale_bits),
                                             config=config_layout(k_max), events=PvqEvents))
        # The walker's state as pvq_decode_steps reports it, named so tests can compare them
        # cycle by cycle (not ports): registers k and r, and what the step decides.
        self.walker = SimpleNamespace(
            row=Signal(range(n), name="walk_row"),            # n - 1 - coordinate of this step's pulse
            mag=Signal(range(k_max + 1), name="walk_t"),      # t, the magnitude tested
            pulses=Signal(range(k_max + 1), name="walk_k"),   # k
            rem=Signal(self._r_bits, name="walk_r"),          # r
            block=Signal(self._t_bits, name="walk_b"),        # b = V(row, k - t)
            resolve=Signal(name="walk_resolve"),              # y_i is emitted this step
            negative=Signal(name="walk_negative"),            # ... and is negative
        )

    def elaborate(self, platform):
        m = Module()
        n, k_max, rb, tb, sb = self.n, self.k_max, self._r_bits, self._t_bits, self.sum_bits
        w = self.walker
        vin = self.operands.payload
        k_in = self.config.k

        # --- tables ------------------------------------------------------------------------
        # Word (find, column): (lo, mid, hi) for every row, row 0 lowest, at address Cat(column, find):
        # a power-of-two half keeps the address a concatenation.
        col_bits = k_max.bit_length()
        cont, opening = pvq_walk_thresholds(n, k_max)
        word = data.ArrayLayout(data.ArrayLayout(unsigned(tb), 3), n)
        init = [0] * (2 << col_bits)
        for c_ in range(k_max + 1):
            for half, cols in ((0, cont), (1, opening)):
                init[half << col_bits | c_] = sum(x << tb * (3 * r_ + j) for r_, row in enumerate(cols[c_])
                                                  for j, x in enumerate(row))
        m.submodules.table = table = Memory(shape=unsigned(word.size), depth=2 << col_bits, init=init)
        rd = table.read_port()
        thresholds = data.View(word, rd.data)
        # V(n, K) for the range check, read combinationally so K needs no setup cycle.
        # Codes of K above k_max read a limit of 0, so every index is out of range.
        limits = [int(pvq_table(n, k_max)[n, K]) for K in range(k_max + 1)]
        m.submodules.limit_rom = limit_rom = Memory(shape=unsigned(max(limits).bit_length()),
                                                    depth=1 << len(k_in), init=limits)
        limit = limit_rom.read_port(domain="comb")
        m.d.comb += limit.addr.eq(k_in)

        # --- vector registers --------------------------------------------------------------
        k = Signal(range(k_max + 1))             # pulses not yet given to a resolved coordinate
        mag = Signal(range(k_max + 1))           # magnitude to test on the open coordinate; 0: none open
        rem = Signal(rb)                         # r
        open_row = Signal(n)                     # the open coordinate's row, one-hot
        acts = Signal(lane_word(n))
        scale = Signal(self.scale_bits)
        first, last = Signal(), Signal()
        mag_sum = Signal(signed(sb))             # p: the open coordinate's activation, once per pulse so far
        vec_sum = Signal(signed(sb))             # S: the signed coordinates resolved so far
        m.d.comb += [w.pulses.eq(k), w.rem.eq(rem)]

        walking, idle = Signal(), Signal()
        finding = mag == 0
        load = Signal()
        finish = Signal()                        # the vector's last busy cycle
        step = Signal()                          # a walk step: one pulse
        m.d.comb += [
            # From registers only: the last pulse is the first of a coordinate when one pulse is left,
            # or an open coordinate's k-th.
            finish.eq(walking & Mux(finding, k <= 1, k == mag)),
            step.eq(walking & (k != 0)),
            self.operands.ready.eq(~self.clear & (idle | finish)),
            load.eq(self.operands.valid & self.operands.ready),
            self.events.busy.eq(walking),
            self.events.step.eq(step),
        ]
        bad = vin.index >= limit.data

        # --- one walk step -----------------------------------------------------------------
        # The row of this step's pulse.  Opening a coordinate: the lowest row whose zero block r is
        # not past, i.e. the thermometer of r >= V(row, k) (row 0 always; V grows with the row)
        # turned one-hot.  Continuing: the open one.
        past = Cat(Const(1, 1), *[rem >= thresholds[r_][0] for r_ in range(1, n)], Const(0, 1))
        row = Signal(n)
        m.d.comb += row.eq(Mux(finding, past[:n] & ~past[1:], open_row))

        def pick(values):
            """The value of ``row`` (one-hot): an AND-OR multiplexer, cheaper than a binary one here."""
            return reduce(or_, [Mux(row[r_], v, 0) for r_, v in enumerate(values)])
        lo, mid, hi = (Signal(tb, name=f"walk_{name}") for name in ("lo", "mid", "hi"))
        x = Signal(signed(len(acts[0])))
        m.d.comb += [lo.eq(pick([thresholds[r_][0] for r_ in range(n)])),
                     mid.eq(pick([thresholds[r_][1] for r_ in range(n)])),
                     hi.eq(pick([thresholds[r_][2] for r_ in range(n)])),
                     x.eq(pick([acts[n - 1 - r_].as_unsigned() for r_ in range(n)]))]
        t = Mux(finding, 1, mag)
        resolve, negative = w.resolve, w.negative
        m.d.comb += [resolve.eq(step & (rem < hi)), negative.eq(resolve & (rem >= mid)),
                     w.row.eq(reduce(or_, [Mux(row[r_], r_, 0) for r_ in range(n)])),   # the probe only
                     w.mag.eq(t), w.block.eq(mid - lo)]
        kt = Signal(range(k_max + 1))            # k - t
        m.d.comb += kt.eq(k - t)
        with m.If(step):
            m.d.sync += [rem.eq(rem - Mux(resolve, Mux(negative, mid, lo), hi)), open_row.eq(row)]
            with m.If(resolve):
                m.d.sync += [k.eq(kt), mag.eq(0)]
            with m.Else():
                m.d.sync += mag.eq(t + 1)
        # The next step's word: opening at column k - t after a resolve, else continuing at k - (t + 1).
        # Read only what the next step uses: table reads = walk steps.
        m.d.comb += [rd.addr.eq(Mux(resolve, Cat(kt, Const(1, 1)), Cat((kt - 1)[:col_bits], Const(0, 1)))),
                     rd.en.eq(step & ~finish)]

        # --- additions ---------------------------------------------------------------------
        pulse = Signal(signed(sb))               # q = p + x_i
        vec_next = Signal(signed(sb))
        m.d.comb += [
            pulse.eq(mag_sum + x),
            vec_next.eq(Mux(resolve, vec_sum + Mux(negative, -pulse, pulse), vec_sum)),
            self.events.add.eq(step),
            self.events.merge.eq(resolve),
        ]
        m.d.sync += vec_sum.eq(vec_next)
        with m.If(step):
            m.d.sync += mag_sum.eq(Mux(resolve, 0, pulse))

        # --- taking a vector (after the walk's updates, so it wins) ------------------------
        with m.If(load):
            m.d.comb += [rd.addr.eq(Cat(k_in, Const(1, 1))), rd.en.eq(k_in != 0)]
            m.d.sync += [
                k.eq(k_in), mag.eq(0), rem.eq(vin.index[:rb]),
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
                with m.If(finish):
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
