"""Residual add: two lane-words added lane-wise, each lane's sum requantized to int8."""
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import lane_word
from hw.requantizer import Requantizer
from model.contract.fixedpoint import ACT_BITS, ACT_PARAM_BITS, MULT_BITS, SHIFT_BITS


class ResidualAdd(wiring.Component):
    """Adds the input vector's and the skip buffer's lane-words lane-wise, then requantizes every lane.

    Each cycle with ``valid`` takes one lane-word of each operand (``a``, the
    layer's input, and ``b``, the skip buffer).  Each lane's ``ACT_BITS + 1``-bit
    sum goes into its own :class:`hw.requantizer.Requantizer` (the rows'
    arithmetic, so the rounding is the golden model's), with the layer's
    ``mult``, ``shift``, ``act``, ``relu`` and ``floor``;
    ``Requantizer.LATENCY`` cycles later ``done`` is high and ``result`` holds
    the int8 lanes, those not in ``keep`` (past the vector's end) zero.  One
    lane-word per cycle.  Golden twin: :func:`model.golden.windows.residual_add`.

    Parameters
    ----------
    lanes : int

    Members
    -------
    valid : In(1)
    a, b : In(lane_word(lanes))
    keep : In(lanes)
        The lanes inside the vector (lane ``i`` is bit ``i``); the others are written as zero.
    mult : In(MULT_BITS)
    shift : In(SHIFT_BITS)
    act : In(signed(ACT_PARAM_BITS))
    relu, floor : In(1)
        The layer's requantization and activation (descriptor words 1 and 3), held for the layer.
    done : Out(1)
    result : Out(lane_word(lanes))
    busy : Out(1)
        A lane-word is in the requantizers, its ``result`` not out yet.
    """

    def __init__(self, lanes: int):
        self._lanes = lanes
        super().__init__({"valid": In(1), "a": In(lane_word(lanes)), "b": In(lane_word(lanes)), "keep": In(lanes),
                          "mult": In(MULT_BITS), "shift": In(SHIFT_BITS), "act": In(signed(ACT_PARAM_BITS)),
                          "relu": In(1), "floor": In(1),
                          "done": Out(1), "result": Out(lane_word(lanes)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        outputs = []
        for i in range(self._lanes):
            m.submodules[f"requantizer{i}"] = rq = Requantizer()
            total = Signal(signed(ACT_BITS + 1), name=f"sum{i}")
            m.d.comb += total.eq(self.a[i] + self.b[i])
            r = rq.result.payload
            m.d.comb += [rq.result.valid.eq(self.valid), r.acc.eq(total), r.mult.eq(self.mult),
                         r.shift.eq(self.shift), r.act.eq(self.act), rq.relu.eq(self.relu), rq.floor.eq(self.floor)]
            outputs.append(rq.output)
        # The keep mask and the lane-words in flight ride along the requantizers' stages.
        keeps = [Signal(self._lanes, name=f"keep{stage}") for stage in range(Requantizer.LATENCY)]
        in_flight = Signal(Requantizer.LATENCY)
        m.d.sync += [keeps[0].eq(self.keep), in_flight.eq(Cat(self.valid, in_flight[:-1]))]
        m.d.sync += [later.eq(earlier) for earlier, later in zip(keeps, keeps[1:])]
        kept = keeps[-1]
        m.d.comb += [self.done.eq(outputs[0].valid),
                     self.result.eq(Cat(Mux(kept[i], o.payload, 0) for i, o in enumerate(outputs))),
                     self.busy.eq(self.valid | (in_flight[:-1] != 0))]
        return m
