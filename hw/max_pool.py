"""Max pooling: the lane-wise maximum of a window's lane-words."""
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import lane_word
from model.contract.fixedpoint import ACT_MIN


class MaxPool(wiring.Component):
    """Reduces a row of lane-words (one per tap) to their lane-wise maximum.

    Each cycle with ``valid`` takes one tap's lane-word (``data``, ignored
    when not ``inside``: padding); the row starts at ``first`` and, at
    ``last``, ``result`` holds the maximum (``ACT_MIN`` in every lane when no
    tap was inside) and ``done`` is high.  Golden twin:
    :func:`model.golden.windows.max_pool`.

    Parameters
    ----------
    lanes : int

    Members
    -------
    valid, first, last, inside : In(1)
    data : In(lane_word(lanes))
    done : Out(1)
    result : Out(lane_word(lanes))
    """

    def __init__(self, lanes: int):
        self._lanes = lanes
        super().__init__({"valid": In(1), "first": In(1), "last": In(1), "inside": In(1),
                          "data": In(lane_word(lanes)), "done": Out(1), "result": Out(lane_word(lanes))})

    def elaborate(self, platform):
        m = Module()
        best = Signal(lane_word(self._lanes))
        lanes_now = []
        for i in range(self._lanes):
            prev = Mux(self.first, ACT_MIN, best[i])
            tap = self.data[i]
            lanes_now.append(Mux(self.inside & (tap > prev), tap, prev))
        now = Cat(*lanes_now)
        m.d.comb += [self.result.eq(now), self.done.eq(self.valid & self.last)]
        with m.If(self.valid):
            m.d.sync += best.as_value().eq(now)
        return m
