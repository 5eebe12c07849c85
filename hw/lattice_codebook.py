"""The E8P lattice codebook: 2**16 eight-lane codewords decoded from a 256-entry table, signs and a shift."""
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import lane_word
from hw.memories import pack_lane_word
from model.codecs.e8p import PARITY_BIT, e8p_table
from model.contract.fixedpoint import ACT_BITS
from model.contract.layout import E8P_DIM, E8P_INDEX_BITS, E8P_SHIFT_BIT, E8P_SIGN_BITS, E8P_TABLE_BITS


class LatticeCodebook(wiring.Component):
    """The E8P codebook (:mod:`model.contract.layout`, "E8P lattice layers"), read like a ROM in one cycle.

    A fixed memory of 256 source vectors (``lanes`` 8-bit values each, the lattice's absolute
    values at scale 4: :func:`model.codecs.e8p.e8p_table`) is read at the index's low 8 bits; the
    index's 7 sign bits and its shift bit are registered beside the read.  The next cycle ``data``
    is the codeword: lane ``i`` is the table value, negated when its sign bit is set (lane 7: when
    the seven sign bits' parity differs from the source's, the XOR of bit 2 of its values), plus 1
    when the shift bit is set, else minus 1.  Golden twin: :func:`model.codecs.e8p.e8p_decode`.

    Parameters
    ----------
    lanes : int
        Codeword dimension; must be 8 (the E8 lattice's).

    Members
    -------
    addr : In(16)
        The codeword index: table entry [7:0], signs of lanes 0..6 [14:8], shift [15].
    en : In(1)
        Read enable; ``data`` holds while it is low.
    data : Out(lane_word(lanes))
        The codeword of last enabled cycle's ``addr`` (odd int8 values in [-11, 11]).
    """

    def __init__(self, lanes: int = E8P_DIM):
        if lanes != E8P_DIM:
            raise ValueError(f"the E8P lattice codebook has {E8P_DIM} lanes, not {lanes}")
        self._lanes = lanes
        super().__init__({"addr": In(E8P_INDEX_BITS), "en": In(1), "data": Out(lane_word(lanes))})

    def request(self, entry, en) -> list:
        """Statements reading codeword index ``entry`` (``data`` holds it next cycle) when ``en``."""
        return [self.addr.eq(entry), self.en.eq(en)]

    def elaborate(self, platform):
        m = Module()
        init = [pack_lane_word(row, self._lanes) for row in e8p_table().tolist()]
        m.submodules.e8p_table = table = memory.Memory(shape=unsigned(ACT_BITS * self._lanes), depth=len(init),
                                                       init=init)
        port = table.read_port()
        signs = Signal(E8P_SIGN_BITS)
        shift = Signal()
        m.d.comb += [port.addr.eq(self.addr[:E8P_TABLE_BITS]), port.en.eq(self.en)]
        with m.If(self.en):
            m.d.sync += [signs.eq(self.addr[E8P_TABLE_BITS:E8P_TABLE_BITS + E8P_SIGN_BITS]),
                         shift.eq(self.addr[E8P_SHIFT_BIT])]
        mags = [port.data.word_select(i, ACT_BITS).as_signed() for i in range(self._lanes)]
        parity = Signal()        # the seven sign bits' parity against the source's (bit 2 of each lane)
        m.d.comb += parity.eq(signs.xor() ^ Cat(mag[PARITY_BIT] for mag in mags).xor())
        negative = [signs[i] for i in range(E8P_SIGN_BITS)] + [parity]
        offset = Mux(shift, 1, -1)
        for i, (mag, neg) in enumerate(zip(mags, negative)):
            m.d.comb += self.data[i].eq(Mux(neg, -mag, mag) + offset)
        return m

