"""The engine's contract: DRAM image layout, layer descriptors, error codes, counters.

The hardware (``hw/``) and the golden model (``model/golden.py``) both read the
DRAM image laid out here; nothing else is shared between them.  All addresses
are in 32-bit words.

DRAM image
==========
``JOB_WORDS`` words of job header at address 0:

====  ==============================================================
word  contents
====  ==============================================================
0     ``JOB_MAGIC``
1     ``n_layers`` [15:0], ``n_images`` [31:16]
2     address of the descriptor table
3     address of image 0's input vector
4     ``input_features`` (must equal layer 0's ``in_features``)
5     address of image 0's output vector
6, 7  reserved, zero
====  ==============================================================

Then ``n_layers`` descriptors of ``DESC_WORDS`` words:

====  ==============================================================
word  contents
====  ==============================================================
0     ``in_features`` [15:0], ``out_features`` [31:16]
1     VQ: ``codebook_base`` [15:0] (ROM entry), ``codebook_size`` [31:16];
      PVQ: ``K`` [15:0] (pulses per sub-vector), ``entry_bits`` [31:16]
2     address of the layer's row stream
3     ``row_words`` [15:0], flags [31:16]: bit 0 ReLU, bits 4..7 mode
====  ==============================================================

A row stream holds, for each of ``out_features`` rows, ``row_words`` words:
the bias (int32), the requantization word (``mult`` [15:0], ``shift``
[21:16]), then one entry per sub-vector, packed LSB-first as one continuous
bit string padded to a whole word.  A VQ entry is a codebook index of
``index_bits``; a PVQ entry is the sub-vector's enumeration index in its low
``pvq_bits(lanes, K)`` bits and its unsigned scale in the top
``PVQ_SCALE_BITS`` (``entry_bits = pvq_bits(lanes, K) + PVQ_SCALE_BITS``).

Vectors (inputs, outputs) are int8, four to a word, little-endian, zero-padded
to a multiple of ``vector_align(lanes)`` bytes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

WORD_BITS = 32
WORD_BYTES = WORD_BITS // 8
JOB_MAGIC = 0x31455156  # b"VQE1" little-endian
JOB_WORDS = 8
DESC_WORDS = 4
ROW_HEADER_WORDS = 2  # bias, requantization word
FIELD16 = 0xFFFF

FLAG_RELU = 1 << 0
MODE_SHIFT = 4
MODE_MASK = 0xF


class LayerMode(enum.IntEnum):
    """How a layer's rows are coded."""
    VQ = 0   #: dense rows of fixed-width codebook indices
    PVQ = 2  #: dense rows of pyramid-VQ enumeration indices and scales (no codebook)


#: Width of a PVQ sub-vector's unsigned scale.
PVQ_SCALE_BITS = 8

class EngineError(enum.IntEnum):
    """Values of the engine's ``error`` status (0 = no error)."""
    NONE = 0
    BAD_JOB = 1       #: job header magic wrong, or zero layers or images
    BAD_SHAPE = 2     #: a feature count is zero or exceeds ``max_features``
    BAD_CHAIN = 3     #: ``in_features`` differs from the previous layer's output
    BAD_CODEBOOK = 4  #: codebook size zero, above ``codebook_depth``, or past the ROM's end;
                      #: PVQ: K zero or above ``pvq_k_max``, or entry width wrong for K
    BAD_STREAM = 5    #: ``row_words`` disagrees with the shape and index width
    BAD_MODE = 6      #: unknown layer mode
    BAD_INDEX = 7     #: a codebook index at or above the layer's codebook size (PVQ: >= V(lanes, K))


ERROR_BITS = 4

#: Event counters, identical in the golden model and the RTL.
COUNTERS = (
    "dram_read_words", "dram_write_words", "sram_reads", "sram_writes", "rom_reads",
    "macs", "adds", "huffman_symbols", "huffman_bits", "huffman_busy_cycles",
)
#: Counters only the RTL has: they depend on timing.
RTL_COUNTERS = ("cycles", "stall_cycles")
COUNTER_BITS = 48


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    return ceil_div(a, b) * b


def vector_align(lanes: int) -> int:
    """Vectors are padded to this many bytes so DRAM words and SRAM lane-words both tile them."""
    return max(WORD_BYTES, lanes)


def vector_words(features: int, lanes: int) -> int:
    """DRAM words one int8 vector of ``features`` occupies."""
    return round_up(features, vector_align(lanes)) // WORD_BYTES


def index_words_per_row(in_features: int, lanes: int, entry_bits: int) -> int:
    return ceil_div(ceil_div(in_features, lanes) * entry_bits, WORD_BITS)


def row_words(in_features: int, lanes: int, entry_bits: int) -> int:
    return ROW_HEADER_WORDS + index_words_per_row(in_features, lanes, entry_bits)


@dataclass(frozen=True)
class EngineConfig:
    """Elaboration parameters of the engine, shared by RTL and golden model.

    Parameters
    ----------
    lanes : int
        Multiply-accumulate lanes, and the sub-vector dimension of the codebook.
    codebook_depth : int
        Largest codebook a layer may use; a power of two.  Indices are
        ``log2(codebook_depth)`` bits wide.
    rom : tuple of tuples of int
        ROM contents: one codeword (``lanes`` int8 values) per entry.
    max_features : int
        Capacity of each half of the activation SRAM, in int8 values.
    pvq_k_max : int
        Largest PVQ K a layer may use; 0 leaves the PVQ unit out.
    """
    lanes: int = 4
    codebook_depth: int = 256
    rom: tuple = field(default=(), repr=False)
    max_features: int = 1024
    pvq_k_max: int = 0

    def __post_init__(self):
        if self.lanes not in (1, 2, 4, 8, 16):
            raise ValueError(f"lanes must be 1, 2, 4, 8 or 16, got {self.lanes}")
        if self.codebook_depth < 2 or self.codebook_depth & (self.codebook_depth - 1):
            raise ValueError(f"codebook depth must be a power of two >= 2, got {self.codebook_depth}")
        if self.max_features % vector_align(self.lanes) or self.max_features > FIELD16:
            raise ValueError(f"max_features must be a multiple of {vector_align(self.lanes)} and < 65536")
        if not self.rom and not self.pvq_k_max:
            raise ValueError("the engine has neither a codebook ROM nor a PVQ unit")
        if not 0 <= self.pvq_k_max <= FIELD16:
            raise ValueError(f"pvq_k_max must be 0..{FIELD16}")
        for cw in self.rom:
            if len(cw) != self.lanes:
                raise ValueError(f"ROM codeword has dimension {len(cw)}, the engine has {self.lanes} lanes")

    @property
    def index_bits(self) -> int:
        return self.codebook_depth.bit_length() - 1

    @property
    def rom_entries(self) -> int:
        return len(self.rom)

    def pvq_entry_bits(self, k: int) -> int:
        """Width of a PVQ row-stream entry for K pulses (index, then scale)."""
        from .pvq import pvq_bits
        return pvq_bits(self.lanes, k) + PVQ_SCALE_BITS

    @property
    def max_entry_bits(self) -> int:
        """Widest row-stream entry the index path must unpack."""
        widths = [self.index_bits]
        if self.pvq_k_max:
            widths.append(self.pvq_entry_bits(self.pvq_k_max))
        return max(widths)

    @property
    def sram_words(self) -> int:
        """Lane-words in each half of the double-buffered activation SRAM."""
        return self.max_features // self.lanes
