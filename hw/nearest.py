"""The nearest-prototype unit: squared Euclidean distances of VQ-coded prototypes, their argmin's label."""
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring

from hw.layouts import COUNT_BITS, DotProductSignature, operands_layout
from hw.mac import adder_tree
from model.contract.fixedpoint import ACT_BITS, ACT_MAX, SQUARE_BITS, distance_bits

#: The unit's layer configuration: how many rows (prototypes) the layer has.
NearestConfig = data.StructLayout({"rows": unsigned(COUNT_BITS)})


class NearestPrototype(wiring.Component):
    """``lanes`` squared differences per beat, a distance per row, and the label of the nearest row.

    A dot-product unit (:class:`hw.layouts.DotProductSignature`) for ``NEAREST``
    layers (:mod:`model.contract.layout`, "Nearest-prototype layers").  A
    two-stage pipeline that never stalls: stage 1 forms each lane's 9-bit
    difference ``x - p`` and squares it (a 9 x 9-bit multiplier per lane,
    ``SQUARE_BITS``-bit unsigned squares); stage 2 sums the squares (an adder
    tree) onto the row's distance, ``distance_bits(max_features)`` wide.  At a
    row's last beat the distance is compared with the best so far: the first
    row, or a strictly smaller distance, wins, so ties keep the lowest row.  The
    row's label is its ``params.bias`` (the row header's word 0), consumed with
    its last beat; a label outside 0..``ACT_MAX`` sets ``error``.  One cycle
    after the layer's last row, ``result`` carries the winning label with
    ``mult`` 1 and ``shift`` 0, so the requantizer passes it unchanged.
    Golden twin: :func:`model.golden.nearest.nearest_labels`.

    Parameters
    ----------
    lanes : int
        Lanes (the codeword dimension): squares per beat.
    max_features : int
        Longest input vector (the engine's activation SRAM): sets the distance's width.

    Members
    -------
    config : In(NearestConfig)
        ``rows``: the layer's prototypes (its ``out_features``), held for the layer.
    clear : In(1)
        Abandon the layer in progress (the next beat starts row 0) and clear ``error``.
    operands : In(stream.Signature(operands_layout(lanes), always_ready=True))
        A prototype's codeword and the input's lane-word, with row marks.
    params : In(stream.Signature(RowParams))
        The row's header: its label in ``bias``; consumed at its last beat.
    result : Out(stream.Signature(RowResult, always_ready=True))
        One transfer per layer: the nearest row's label.
    error : Out(1)
        A row's label was outside 0..``ACT_MAX`` (the engine's ``BAD_INDEX``); held until ``clear``.
    events : zero-width
        The engine counts the unit's squares and differences per beat it reads.
    """

    def __init__(self, lanes: int, max_features: int):
        self._lanes = lanes
        self._distance_bits = distance_bits(max_features)
        super().__init__(DotProductSignature(operands=operands_layout(lanes), config=NearestConfig,
                                             always_ready=True))

    def elaborate(self, platform):
        m = Module()
        ops = self.operands.payload
        # Stage 1: the lanes' squared differences.
        squares = [Signal(unsigned(SQUARE_BITS), name=f"square{i}") for i in range(self._lanes)]
        valid, first, last = Signal(), Signal(), Signal()
        m.d.sync += [valid.eq(self.operands.valid), first.eq(ops.first), last.eq(ops.last)]
        for i, sq in enumerate(squares):
            diff = Signal(signed(ACT_BITS + 1), name=f"diff{i}")
            m.d.comb += diff.eq(ops.activations[i] - ops.codeword[i])
            m.d.sync += sq.eq(diff * diff)
        # Stage 2: the row's distance, and the argmin at its last beat.
        dist, best = (Signal(unsigned(self._distance_bits), name=n) for n in ("distance", "best"))
        dist_next = Signal(unsigned(self._distance_bits))
        best_label = Signal(unsigned(ACT_BITS))
        row = Signal(COUNT_BITS)
        m.d.comb += dist_next.eq(Mux(first, 0, dist) + adder_tree(squares))
        label = self.params.payload.bias
        row_end = valid & last
        better = (row == 0) | (dist_next < best)
        last_row = row == self.config.rows - 1
        m.d.comb += self.params.ready.eq(row_end)
        m.d.sync += self.result.valid.eq(0)
        with m.If(valid):
            m.d.sync += dist.eq(dist_next)
        with m.If(row_end):
            m.d.sync += row.eq(Mux(last_row, 0, row + 1))
            with m.If(better):
                m.d.sync += [best.eq(dist_next), best_label.eq(label)]
            with m.If((label < 0) | (label > ACT_MAX)):
                m.d.sync += self.error.eq(1)
            with m.If(last_row):
                m.d.sync += [self.result.valid.eq(1), self.result.payload.acc.eq(Mux(better, label, best_label)),
                             self.result.payload.mult.eq(1), self.result.payload.shift.eq(0),
                             self.result.payload.act.eq(0)]
        with m.If(self.clear):
            m.d.sync += [row.eq(0), self.error.eq(0)]
        return m
