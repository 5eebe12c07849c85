"""Average pooling: the lane-wise sum of a window's lane-words, each lane requantized to int8."""
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import lane_word
from hw.requantizer import Requantizer
from model.contract.fixedpoint import ACT_PARAM_BITS, MULT_BITS, SHIFT_BITS
from model.contract.window import POOL_SUM_BITS


class AvgPool(wiring.Component):
    """Sums a row of lane-words (one per tap) lane-wise, then requantizes every lane's sum.

    Each cycle with ``valid`` takes one tap's lane-word (``data``, taken as
    zero when not ``inside``: padding counts as zero); the row starts at
    ``first``.  At ``last`` each lane's ``POOL_SUM_BITS``-wide sum goes into
    its own :class:`hw.requantizer.Requantizer` (the rows' arithmetic, so the
    rounding is the golden model's), with the layer's ``mult``, ``shift``,
    ``act``, ``relu`` and ``floor``; ``Requantizer.LATENCY`` cycles later
    ``done`` is high and ``result`` holds the int8 averages.  One row may end
    every cycle (a 1x1 kernel).  Golden twin: :func:`model.golden.windows.avg_pool`.

    Parameters
    ----------
    lanes : int
        Lanes of a tap's lane-word, each summed and requantized on its own.

    Members
    -------
    valid, first, last, inside : In(1); data : In(lane_word(lanes))
        The walked taps, one lane-word a cycle, as :class:`hw.max_pool.MaxPool` takes them.
    mult : In(MULT_BITS)
    shift : In(SHIFT_BITS)
    act : In(signed(ACT_PARAM_BITS))
    relu, floor : In(1)
        The layer's requantization and activation (descriptor words 1 and 3), held for the layer.
    done : Out(1)
    result : Out(lane_word(lanes))
    busy : Out(1)
        A row's sums are in the requantizers, its ``result`` not out yet.
    """

    def __init__(self, lanes: int):
        self._lanes = lanes
        super().__init__({"valid": In(1), "first": In(1), "last": In(1), "inside": In(1),
                          "data": In(lane_word(lanes)), "mult": In(MULT_BITS), "shift": In(SHIFT_BITS),
                          "act": In(signed(ACT_PARAM_BITS)), "relu": In(1), "floor": In(1),
                          "done": Out(1), "result": Out(lane_word(lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        ending = self.valid & self.last
        outputs = []
        for i in range(self._lanes):
            m.submodules[f"requantizer{i}"] = rq = Requantizer()
            total = Signal(signed(POOL_SUM_BITS), name=f"sum{i}")
            now = Signal(signed(POOL_SUM_BITS), name=f"now{i}")
            m.d.comb += now.eq(Mux(self.first, 0, total) + Mux(self.inside, self.data[i], 0))
            with m.If(self.valid):
                m.d.sync += total.eq(now)
            r = rq.result.payload
            m.d.comb += [rq.result.valid.eq(ending), r.acc.eq(now), r.mult.eq(self.mult), r.shift.eq(self.shift),
                         r.act.eq(self.act), rq.relu.eq(self.relu), rq.floor.eq(self.floor)]
            outputs.append(rq.output)
        m.d.comb += [self.done.eq(outputs[0].valid), self.result.eq(Cat(o.payload for o in outputs))]
        # Rows in the requantizers' stages: one bit per stage, shifted along with them.
        in_flight = Signal(Requantizer.LATENCY - 1)
        m.d.sync += in_flight.eq(Cat(ending, in_flight[:-1]))
        m.d.comb += self.busy.eq(ending | (in_flight != 0))
        return m

