"""MAC lanes: the dot-product unit of codebook layers, ``lanes`` int8 multiplies per beat."""
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring

from hw.accumulator import RowAccumulator
from hw.layouts import DotProductSignature, operands_layout
from model.contract.fixedpoint import ACT_BITS


def adder_tree(values):
    """Pairwise sum, so the depth is log2(lanes) adders rather than lanes."""
    values = list(values)
    while len(values) > 1:
        values = [a + b for a, b in zip(values[0::2], values[1::2])] + values[len(values) & ~1:]
    return values[0]


class MacLanes(wiring.Component):
    """``lanes`` int8 multiplies, an adder tree and a 32-bit row accumulator.

    A two-stage pipeline that never stalls: stage 1 multiplies, stage 2 sums
    and accumulates in a :class:`hw.accumulator.RowAccumulator`, which starts
    each row at the row's bias (from ``params``), wraps modulo 2**32 as the
    golden model does, and consumes the row's parameters with its last beat.
    Its signature is ``DotProductSignature(operands=operands_layout(lanes, weight_bits),
    always_ready=True)``.

    Parameters
    ----------
    lanes : int
        Multipliers, and the codeword dimension.
    weight_bits : int
        Width of a codeword lane (``ACT_BITS``; wider in engines with the residual-VQ unit, whose
        codewords are sums of stages: :func:`model.contract.fixedpoint.stage_sum_bits`).

    Members
    -------
    operands : In(stream.Signature(operands_layout(lanes, weight_bits), always_ready=True))
        Codeword and activation sub-vector pairs, with row boundaries.
    params : In(stream.Signature(RowParams))
        The current row's bias and requantization, read at its first beat and
        consumed at its last.
    result : Out(stream.Signature(RowResult, always_ready=True))
        One accumulator per row, 2 cycles after its last beat.
    config, events : zero-width
        The unit needs no configuration and has no strobes to count (the
        engine counts MACs per lookup, as only it knows which lanes are useful).
    clear : In(1)
        Ignored: the engine clears at a start, when nothing is in the pipeline,
        and every row starts from its bias anyway.
    error : Out(1)
        Always 0: every codeword is a valid operand.
    """

    def __init__(self, lanes: int, weight_bits: int = ACT_BITS):
        self._lanes, self._weight_bits = lanes, weight_bits
        super().__init__(DotProductSignature(operands=operands_layout(lanes, weight_bits), always_ready=True))

    def elaborate(self, platform):
        m = Module()
        m.submodules.accumulator = accumulator = RowAccumulator()
        ops = self.operands.payload
        products = [Signal(signed(ACT_BITS + self._weight_bits), name=f"product{i}") for i in range(self._lanes)]
        term = accumulator.terms
        m.d.sync += [term.valid.eq(self.operands.valid), term.payload.first.eq(ops.first),
                     term.payload.last.eq(ops.last)]
        for i, p in enumerate(products):
            m.d.sync += p.eq(ops.codeword[i] * ops.activations[i])
        m.d.comb += term.payload.value.eq(adder_tree(products))
        wiring.connect(m, wiring.flipped(self.params), accumulator.params)
        wiring.connect(m, accumulator.result, wiring.flipped(self.result))
        m.d.comb += self.error.eq(0)
        return m
