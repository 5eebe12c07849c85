"""Payload layouts and port signatures shared between the engine's blocks."""
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.contract.fixedpoint import ACC_BITS, ACT_BITS, MULT_BITS, SHIFT_BITS
from model.contract.counters import COUNTER_BITS, COUNTERS, RTL_COUNTERS
from model.contract.layout import FIELD16, WORD_BITS

#: Width of feature counts, row counts and per-row word counts in descriptors.
COUNT_BITS = FIELD16.bit_length()

Act = signed(ACT_BITS)


def lane_word(lanes: int) -> data.ArrayLayout:
    """``lanes`` int8 values side by side: one SRAM word, one codeword."""
    return data.ArrayLayout(Act, lanes)


RowParams = data.StructLayout({
    "bias": signed(ACC_BITS),
    "mult": unsigned(MULT_BITS),
    "shift": unsigned(SHIFT_BITS),
})

RowResult = data.StructLayout({
    "acc": signed(ACC_BITS),
    "mult": unsigned(MULT_BITS),
    "shift": unsigned(SHIFT_BITS),
})


def beat_layout(index_bits: int) -> data.StructLayout:
    """One codebook lookup: which codeword, which activation sub-vector, row boundaries."""
    return data.StructLayout({
        "index": unsigned(index_bits),
        "subvector": unsigned(COUNT_BITS),
        "first": 1,
        "last": 1,
    })


def operands_layout(lanes: int) -> data.StructLayout:
    return data.StructLayout({
        "codeword": lane_word(lanes),
        "activations": lane_word(lanes),
        "first": 1,
        "last": 1,
    })


CounterLayout = data.StructLayout({name: unsigned(COUNTER_BITS) for name in COUNTERS + RTL_COUNTERS})


def dram_read_signature(addr_width: int) -> wiring.Signature:
    """Pipelined DRAM reads: addresses go out, words come back in request order."""
    return wiring.Signature({
        "req": Out(stream.Signature(unsigned(addr_width))),
        "resp": In(stream.Signature(unsigned(WORD_BITS))),
    })


def dram_write_signature(addr_width: int) -> stream.Signature:
    """Posted DRAM writes: a write is done when its transfer is accepted."""
    return stream.Signature(data.StructLayout({"addr": addr_width, "data": WORD_BITS}))


def sram_write_layout(addr_width: int, lanes: int) -> data.StructLayout:
    return data.StructLayout({"addr": addr_width, "data": lane_word(lanes)})
