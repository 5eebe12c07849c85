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
1     VQ, HUFFMAN: ``codebook_base`` [15:0] (ROM entry), ``codebook_size`` [31:16];
      PVQ: ``K`` [15:0] (pulses per sub-vector), ``entry_bits`` [31:16]
2     address of the layer's row stream
3     VQ, PVQ: ``row_words`` [15:0]; HUFFMAN: ``table_words`` [15:0];
      flags [31:16]: bit 0 ReLU, bits 4..7 mode (:class:`LayerMode`)
====  ==============================================================

A row stream holds, for each of ``out_features`` rows, ``row_words`` words:
the bias (int32), the requantization word (``mult`` [15:0], ``shift``
[21:16]), then one entry per sub-vector, packed LSB-first as one continuous
bit string padded to a whole word.  A VQ entry is a codebook index of
``index_bits``; a PVQ entry is the sub-vector's enumeration index in its low
``pvq_bits(lanes, K)`` bits and its unsigned scale in the top
``PVQ_SCALE_BITS`` (``entry_bits = pvq_bits(lanes, K) + PVQ_SCALE_BITS``).

Sparse Huffman-coded layers (``LayerMode.HUFFMAN``)
==================================================
Deep Compression / EIE style: weights are scalars, pruned positions are not
stored, and what is stored is entropy coded.

* **Centroids.**  The layer's ``codebook_size`` = ``k`` int8 scalar centroids
  are packed ``lanes`` to a ROM entry: centroid ``j`` is lane ``j % lanes`` of
  entry ``codebook_base + j // lanes`` (the last entry zero-padded).
  Centroid 0 is the exact zero used by filler symbols.  Indices are
  ``idx_bits = huffman_index_bits(k)`` = ``ceil(log2(k))`` bits wide.
* **Symbols.**  Each stored weight of a row is a symbol ``(run, idx)``: ``run``
  positions skipped (pruned) before it, ``idx`` its centroid.  The encoder
  keeps ``run < 2**REL_BITS``; a longer gap gets fillers ``(2**REL_BITS - 1,
  0)``, zero weights that advance the position (:mod:`model.sparse_rows`).
  The joint symbol is ``run << idx_bits | idx``, coded with one canonical
  Huffman table per layer (:mod:`model.huffman`) over
  ``huffman_symbol_bits``-bit symbols with codes of at most ``huffman_max_len``
  bits (both engine parameters).
* **Stream** at the descriptor's address:

  ======================  ====================================================
  word 0                  size word: ``cmd_rows`` [15:0], ``cmd_row_words``
                          [31:16]; the rest of the stream is exactly
                          ``cmd_rows * cmd_row_words`` words
  word 1                  the layer's requantization word (``mult`` [15:0],
                          ``shift`` [21:16]), shared by every row
  table                   the layer's Huffman table
                          (:meth:`model.huffman.HuffmanTable.to_words`), at
                          most ``table_words`` words (descriptor word 3); it
                          takes exactly its own words
  rows                    ``out_features`` rows, each one header word, the
                          bias [21:0] (signed, ``SPARSE_BIAS_BITS``) and
                          ``n_symbols - 1`` [31:22] (``SPARSE_COUNT_BITS``),
                          then the row's codes first bit first, LSB-first,
                          zero-padded to a whole word (the decoder takes
                          exactly the words holding them)
  padding                 zero words up to the size word's total, read and
                          discarded
  ======================  ====================================================

  The size word exists because rows vary in length: it lets the engine fetch
  the whole layer with one pipelined DRAM read and no over-fetch, so
  ``dram_read_words`` stays exact.  A row costs one header word: with the
  requantization per layer, a narrow bias and the symbol count beside it
  (the three words per row first planned, bias, requantization and
  ``n_symbols | n_words``, were 17 % of LeNet-300-100's storage and kept it
  below 40x).
* **Decoding** a row: the position ``p`` starts at 0; for each of the
  ``n_symbols`` symbols, ``p += run``, then ``acc += x[p] * centroid[idx]`` and
  ``p += 1``.  One symbol per cycle; pruned positions cost nothing.  The next
  row starts at the word after the row's last code bit.  A row holds 1 to
  ``SPARSE_MAX_SYMBOLS`` symbols; the table is loaded for each layer of each
  image, as the stream is read again.
* **Errors**, first in stream order wins: a word needed past the size word's
  total (codes included) is ``BAD_STREAM``; table and code errors are the
  ``HUFF_*`` codes (``HUFF_BASE + model.huffman.HuffmanStatus``; the codes of
  a row may take up to ``FIELD16`` words, so ``HUFF_TRUNCATED`` means a table
  longer than ``table_words``); a position at or past ``in_features`` is
  ``BAD_SPARSE``; an index at or above ``k`` is ``BAD_INDEX`` (a symbol's
  position is checked before its index).
* **Counters** per symbol: ``huffman_symbols`` 1, ``huffman_bits`` its code
  length, ``huffman_busy_cycles`` 1 (the decoder decodes one symbol in each
  cycle it has input and a free output, so this equals the symbols); and for
  a real weight (``idx != 0``; fillers read nothing) one ``rom_reads``, one
  ``sram_reads`` and one ``macs`` (one useful 8-bit multiply; the other lanes
  multiply by zero).  ``dram_read_words`` counts the descriptor, the size word
  and the size word's total, for each image.

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
    HUFFMAN = 1  #: sparse rows of Huffman-coded (run, index) symbols, scalar centroids
    PVQ = 2  #: dense rows of pyramid-VQ enumeration indices and scales (no codebook)


#: Width of a PVQ sub-vector's unsigned scale.
PVQ_SCALE_BITS = 8

#: Width of a sparse symbol's run field (zeros skipped before a weight), as in EIE.
REL_BITS = 4
#: Words of a HUFFMAN stream before its table: the size word and the requantization word.
SPARSE_LAYER_WORDS = 2
#: Words at the start of a HUFFMAN row: ``bias | (n_symbols - 1) << SPARSE_BIAS_BITS``.
SPARSE_ROW_HEADER_WORDS = 1
#: Width of a HUFFMAN row's signed bias in its header word.
SPARSE_BIAS_BITS = 22
#: Width of a HUFFMAN row's ``n_symbols - 1`` in its header word.
SPARSE_COUNT_BITS = WORD_BITS - SPARSE_BIAS_BITS
#: Most symbols a HUFFMAN row may have.
SPARSE_MAX_SYMBOLS = 1 << SPARSE_COUNT_BITS
#: Widest joint symbol the RTL decoder supports (its duplicate check keeps a flop per symbol).
HUFFMAN_SYMBOL_BITS_MAX = 10
#: Default code length limit of a HUFFMAN engine.
HUFFMAN_DEFAULT_MAX_LEN = 15


def huffman_index_bits(k: int) -> int:
    """Bits of a centroid index for ``k`` centroids: ``ceil(log2(k))`` (0 for one centroid)."""
    return max(0, (k - 1).bit_length())


class EngineError(enum.IntEnum):
    """Values of the engine's ``error`` status (0 = no error)."""
    NONE = 0
    BAD_JOB = 1       #: job header magic wrong, or zero layers or images
    BAD_SHAPE = 2     #: a feature count is zero or exceeds ``max_features``
    BAD_CHAIN = 3     #: ``in_features`` differs from the previous layer's output
    BAD_CODEBOOK = 4  #: codebook size zero, above ``codebook_depth``, or past the ROM's end;
                      #: PVQ: K zero or above ``pvq_k_max``, or entry width wrong for K;
                      #: HUFFMAN: k zero or above ``huffman_k_max``, or its entries past the ROM's end
    BAD_STREAM = 5    #: ``row_words`` disagrees with the shape and index width;
                      #: HUFFMAN: a word needed past the size word's total
    BAD_MODE = 6      #: unknown layer mode
    BAD_INDEX = 7     #: a codebook index at or above the layer's codebook size (PVQ: >= V(lanes, K))
    BAD_SPARSE = 8    #: HUFFMAN: a position at or past ``in_features``
    # HUFFMAN layers: the decoder's status, HUFF_BASE + model.huffman.HuffmanStatus.
    HUFF_OVERSUBSCRIBED = 9   #: table: Kraft sum above 1
    HUFF_INCOMPLETE = 10      #: table: Kraft sum below 1
    HUFF_LENGTH = 11          #: table: codes longer than the engine's ``huffman_max_len``
    HUFF_SYMBOL = 12          #: table: symbol repeated, or more symbols than the alphabet
    HUFF_NO_TABLE = 13        #: never raised: the engine always loads a table first
    HUFF_INVALID_CODE = 14    #: row codes: bits matching no code
    HUFF_TRUNCATED = 15       #: table longer than ``table_words`` (or a row's codes than ``FIELD16`` words)


#: ``EngineError`` of a Huffman decoder status ``s`` (``model.huffman.HuffmanStatus``) is ``HUFF_BASE + s``.
HUFF_BASE = EngineError.BAD_SPARSE


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
    huffman_max_len : int
        Longest Huffman code of a HUFFMAN layer; 0 leaves the Huffman decoder out.
    huffman_symbol_bits : int
        Width of the joint (run, index) symbols; a layer's ``REL_BITS +
        idx_bits`` must fit.  Only with ``huffman_max_len``.
    """
    lanes: int = 4
    codebook_depth: int = 256
    rom: tuple = field(default=(), repr=False)
    max_features: int = 1024
    pvq_k_max: int = 0
    huffman_max_len: int = 0
    huffman_symbol_bits: int = 0

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
        if self.huffman_max_len:
            from .huffman import MAX_LEN_LIMIT
            if not 1 <= self.huffman_max_len <= MAX_LEN_LIMIT:
                raise ValueError(f"huffman_max_len must be 0..{MAX_LEN_LIMIT}, got {self.huffman_max_len}")
            if not REL_BITS < self.huffman_symbol_bits <= HUFFMAN_SYMBOL_BITS_MAX:
                raise ValueError(f"huffman_symbol_bits must be {REL_BITS + 1}..{HUFFMAN_SYMBOL_BITS_MAX}, "
                                 f"got {self.huffman_symbol_bits}")
            if not self.rom:
                raise ValueError("a Huffman engine needs a ROM for its centroids")
        elif self.huffman_symbol_bits:
            raise ValueError("huffman_symbol_bits without huffman_max_len")
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
    def huffman_k_max(self) -> int:
        """Most centroids a HUFFMAN layer may have: its index and a run must fit one symbol."""
        return 1 << (self.huffman_symbol_bits - REL_BITS) if self.huffman_max_len else 0

    @property
    def sram_words(self) -> int:
        """Lane-words in each half of the double-buffered activation SRAM."""
        return self.max_features // self.lanes
