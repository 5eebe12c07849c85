"""Block offset: a product-VQ layer's ROM offset of the column block each beat falls in."""
from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS
from model.contract.layout import MODE_PARAM_BITS


class BlockOffset(wiring.Component):
    """The ROM offset of a beat's column-block codebook, ``(subvector >> log2_width) * size``, with no multiplier.

    A register holds the offset of the block the last taken beat fell in.  A beat
    that starts a row is in block 0 (offset 0); a later beat whose sub-vector is
    a multiple of the block width starts the next block (the offset plus
    ``size``); any other beat stays in the last one.  The beats of a row come in
    sub-vector order, which the index path guarantees (:mod:`model.contract.layout`,
    "Product VQ layers").  Golden twin: :func:`model.codecs.layers.pq.pq_weights`.

    Parameters
    ----------
    offset_bits : int
        Width of the offset (enough for the ROM's entries).

    Members
    -------
    first : In(1)
        The beat offered now starts a row.
    subvector : In(COUNT_BITS)
        Its sub-vector within the row.
    take : In(1)
        The beat is taken this cycle (the register moves to its block).
    log2_width : In(MODE_PARAM_BITS)
        The block width, ``2**log2_width`` sub-vectors (descriptor's ``MODE_PARAM``).
    size : In(16)
        Entries of each block's codebook (descriptor's ``codebook_size``).
    offset : Out(offset_bits)
        The offered beat's block offset, combinationally.
    """

    def __init__(self, offset_bits: int):
        self._bits = offset_bits
        super().__init__({
            "first": In(1), "subvector": In(COUNT_BITS), "take": In(1),
            "log2_width": In(MODE_PARAM_BITS), "size": In(16), "offset": Out(offset_bits),
        })

    def elaborate(self, platform):
        m = Module()
        last = Signal(self._bits)   # the block offset of the last beat taken
        within = self.subvector & ((Const(1, 1 << MODE_PARAM_BITS) << self.log2_width) - 1)
        m.d.comb += self.offset.eq(Mux(self.first, 0, Mux(within == 0, last + self.size, last)))
        with m.If(self.take):
            m.d.sync += last.eq(self.offset)
        return m
