"""The engine's elaboration parameters, shared by the RTL and the golden model."""
from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd

from model.contract.layout import (DENSE_MODES, E8P_DIM, E8P_INDEX_BITS, FIELD16, HUFFMAN_MAX_LEN_LIMIT, HUFFMAN_SYMBOL_BITS_MAX,
                                   MAX_FEATURES_LIMIT, PES, REL_BITS, RVQ_STAGES_MAX, WORD_BITS, WORD_BYTES, LayerKind,
                                   LayerMode, vector_align)
from model.contract.pyramid import pvq_entry_bits

#: Lane counts the engine is built for (the sub-vector dimension).
LANES = (1, 2, 4, 8, 16)
#: Words in one KiB of weight SRAM (the CLI's unit).
WORDS_PER_KIB = 1024 // WORD_BYTES
#: Default weight SRAM of ``vqe compress`` and ``vqe verilog``, in KiB: it holds every zoo network
#: the engine runs, compressed (LeNet-300-100 with k-means, the largest, needs 72 KiB).
DEFAULT_WEIGHT_SRAM_KIB = 128
#: Largest weight SRAM (16 MiB): its addresses fit the descriptor's 24-bit field.
WEIGHT_SRAM_WORDS_MAX = 1 << 22
#: Largest memory of the column unit (a column word's 16-bit ``start`` addresses a slot's entries).
COLUMN_SIZE_MAX = 1 << 16


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
    weight_sram_words : int
        Capacity of the on-chip weight SRAM in 32-bit words (0: none).  A
        layer placed in it (resident) is read from DRAM once per job and from
        the weight SRAM for every later image (:mod:`model.contract.layout`).
    windows : bool
        The engine runs the windowed layer kinds, convolution and max pooling
        (their address generators and the pooling unit); without, only FC layers.
    avgpool : bool
        The engine has the average-pooling unit (a sum and a requantizer per
        lane) for ``AVGPOOL`` layers; only with ``windows``.
    residual : bool
        The engine has the skip buffer (``max_features`` values) and the add
        unit (a requantizer per lane): ``ADD`` layers and ``FLAG_SAVE``
        (:mod:`model.contract.layout`, "Skip buffer").
    rvq_stages_max : int
        Most residual-VQ stages a layer may use (``RVQ`` layers, :mod:`model.contract.layout`):
        the ROM gets that many read ports and the codewords' lane-wise adder, and the MAC lanes
        take ``stage_sum_bits(rvq_stages_max)``-bit weights; 0 leaves the RVQ unit out.
    pq : bool
        The engine runs product-VQ layers (``PQ``: a codebook per block of columns), with the
        block-offset register in the codebook lookup.
    nearest_prototype : bool
        The engine has the nearest-prototype unit (``NEAREST`` layers, :mod:`model.contract.layout`:
        a squared distance per VQ row, ``lanes`` squares per cycle, and the argmin's label).
    lattice : bool
        The engine has the E8P lattice codebook (``E8P`` layers, :mod:`model.contract.layout`: a
        fixed 256-entry table and the sign and shift decoder, 16-bit entries); 8 lanes only.  It
        needs no ROM (``rom`` may be empty).
    pes : int
        Processing elements (:data:`model.contract.layout.PES`): dense layers' rows interleaved over
        them, activations broadcast, row streams laid out for them (:mod:`model.contract.layout`,
        "Processing elements").  With a Huffman decoder, each PE has its own (sparse layers' rows
        interleaved as well, each PE reading its own sub-stream).  Above 1, the engine has no PVQ
        unit or nearest-prototype unit (their layers run on one PE).
    column_entries, column_columns, column_rows, column_centroids : int
        The column unit (``COLUMNS`` layers, :mod:`model.contract.layout`, "Column-wise sparse
        layers"; :class:`hw.sparse_columns.SparseColumns` with ``lanes`` slots): per slot, its entry
        memory, column table and local rows (accumulators and biases), and its centroid table, each
        holding every resident COLUMNS layer of a job.  All 0: no column unit; else all positive,
        and one PE.
    """
    lanes: int = 4
    codebook_depth: int = 256
    rom: tuple = field(default=(), repr=False)
    max_features: int = 1024
    pvq_k_max: int = 0
    huffman_max_len: int = 0
    huffman_symbol_bits: int = 0
    weight_sram_words: int = 0
    windows: bool = False
    avgpool: bool = False
    residual: bool = False
    rvq_stages_max: int = 0
    pq: bool = False
    nearest_prototype: bool = False
    lattice: bool = False
    pes: int = 1
    column_entries: int = 0
    column_columns: int = 0
    column_rows: int = 0
    column_centroids: int = 0

    #: The column unit's sizes, by field name.
    COLUMN_FIELDS = ("column_entries", "column_columns", "column_rows", "column_centroids")

    def __post_init__(self):
        if self.lanes not in LANES:
            raise ValueError(f"lanes must be one of {', '.join(map(str, LANES))}, got {self.lanes}")
        if self.codebook_depth < 2 or self.codebook_depth & (self.codebook_depth - 1):
            raise ValueError(f"codebook depth must be a power of two >= 2, got {self.codebook_depth}")
        if self.max_features % vector_align(self.lanes) or not 0 < self.max_features <= MAX_FEATURES_LIMIT:
            raise ValueError(f"max_features must be a multiple of {vector_align(self.lanes)}, at most "
                             f"{MAX_FEATURES_LIMIT}")
        if not self.rom and not self.pvq_k_max and not self.lattice and not self.column_entries:
            raise ValueError("the engine has neither a codebook ROM nor a PVQ unit nor the lattice codebook "
                             "nor the column unit")
        if self.lattice and self.lanes != E8P_DIM:
            raise ValueError(f"the E8P lattice codebook has dimension {E8P_DIM}: lattice needs {E8P_DIM} lanes, "
                             f"got {self.lanes}")
        if not 0 <= self.pvq_k_max <= FIELD16:
            raise ValueError(f"pvq_k_max must be 0..{FIELD16}")
        if self.huffman_max_len:
            if not 1 <= self.huffman_max_len <= HUFFMAN_MAX_LEN_LIMIT:
                raise ValueError(f"huffman_max_len must be 0..{HUFFMAN_MAX_LEN_LIMIT}, got {self.huffman_max_len}")
            if not REL_BITS < self.huffman_symbol_bits <= HUFFMAN_SYMBOL_BITS_MAX:
                raise ValueError(f"huffman_symbol_bits must be {REL_BITS + 1}..{HUFFMAN_SYMBOL_BITS_MAX}, "
                                 f"got {self.huffman_symbol_bits}")
            if not self.rom:
                raise ValueError("a Huffman engine needs a ROM for its centroids")
        elif self.huffman_symbol_bits:
            raise ValueError("huffman_symbol_bits without huffman_max_len")
        if not 0 <= self.rvq_stages_max <= RVQ_STAGES_MAX:
            raise ValueError(f"rvq_stages_max must be 0..{RVQ_STAGES_MAX}, got {self.rvq_stages_max}")
        if (self.rvq_stages_max or self.pq) and not self.rom:
            raise ValueError("residual and product VQ layers read their codewords from the ROM: the engine needs one")
        if self.nearest_prototype and not self.rom:
            raise ValueError("the nearest-prototype unit reads its prototypes' codewords from the ROM: the engine needs one")
        if self.avgpool and not self.windows:
            raise ValueError("the average-pooling unit walks windows: avgpool needs windows")
        if not 0 <= self.weight_sram_words <= WEIGHT_SRAM_WORDS_MAX:
            raise ValueError(f"weight SRAM capacity must be 0..{WEIGHT_SRAM_WORDS_MAX} words, "
                             f"got {self.weight_sram_words}")
        if self.pes not in PES:
            raise ValueError(f"pes must be one of {', '.join(map(str, PES))}, got {self.pes}")
        if self.pes > 1:
            units = [name for name, on in (("PVQ unit", self.pvq_k_max),
                                           ("nearest-prototype unit", self.nearest_prototype)) if on]
            if units:
                raise ValueError(f"{' and '.join(units)} run on one processing element only: pes must be 1, "
                                 f"got {self.pes}")
        sizes = [getattr(self, name) for name in self.COLUMN_FIELDS]
        if any(sizes):
            if min(sizes) < 1 or max(sizes) > COLUMN_SIZE_MAX:
                raise ValueError(f"the column unit's {', '.join(self.COLUMN_FIELDS)} must all be 1.."
                                 f"{COLUMN_SIZE_MAX}, or all 0 (no column unit); got {', '.join(map(str, sizes))}")
            if self.pes != 1:
                raise ValueError(f"the column unit runs on one processing element: pes must be 1, got {self.pes}")
        for cw in self.rom:
            if len(cw) != self.lanes:
                raise ValueError(f"ROM codeword has dimension {len(cw)}, the engine has {self.lanes} lanes")

    def supports_mode(self, mode: int) -> bool:
        """Whether this engine has the datapath of a layer mode (else the descriptor is ``BAD_MODE``)."""
        if mode not in LayerMode.__members__.values():
            return False
        return {LayerMode.PVQ: bool(self.pvq_k_max), LayerMode.HUFFMAN: bool(self.huffman_max_len),
                LayerMode.RVQ: bool(self.rvq_stages_max), LayerMode.PQ: self.pq,
                LayerMode.E8P: self.lattice, LayerMode.COLUMNS: self.columns}.get(mode, True)

    def supports_kind(self, kind: int, mode: int) -> bool:
        """Whether this engine runs a layer of ``kind`` in ``mode`` (else ``BAD_MODE``).

        A convolution's rows are dense (``DENSE_MODES``: VQ, PVQ, RVQ, PQ); a nearest-prototype layer's are
        VQ; a pooling or add layer has no rows and its mode is not read.
        """
        if kind == LayerKind.FC:
            return self.supports_mode(mode)
        if kind == LayerKind.CONV:
            return self.windows and mode in DENSE_MODES and self.supports_mode(mode)
        if kind == LayerKind.NEAREST:   # prototypes are VQ rows
            return self.nearest_prototype and mode == LayerMode.VQ
        return {LayerKind.MAXPOOL: self.windows, LayerKind.AVGPOOL: self.avgpool,
                LayerKind.ADD: self.residual}.get(kind, False)

    @property
    def columns(self) -> bool:
        """The engine has the column unit (``COLUMNS`` layers)."""
        return self.column_entries > 0

    @property
    def index_bits(self) -> int:
        return self.codebook_depth.bit_length() - 1

    @property
    def rom_entries(self) -> int:
        return len(self.rom)

    def pvq_entry_bits(self, k: int) -> int:
        """Width of a PVQ row-stream entry for K pulses (index, then scale)."""
        return pvq_entry_bits(self.lanes, k)

    @property
    def max_entry_bits(self) -> int:
        """Widest row-stream entry the index path must unpack."""
        widths = [self.index_bits]
        if self.pvq_k_max:
            widths.append(self.pvq_entry_bits(self.pvq_k_max))
        if self.rvq_stages_max:   # an RVQ entry is one index per stage
            widths.append(self.rvq_stages_max * self.index_bits)
        if self.lattice:
            widths.append(E8P_INDEX_BITS)
        return max(widths)

    @property
    def entry_bits_unit(self) -> int:
        """The largest power of two dividing the stream word and every row-stream entry width the index
        path may unpack: the bits it holds stay a multiple of it, so its shifters move whole units."""
        widths = [self.index_bits, *(self.pvq_entry_bits(k) for k in range(1, self.pvq_k_max + 1)),
                  *(s * self.index_bits for s in range(1, self.rvq_stages_max + 1)),
                  *([E8P_INDEX_BITS] if self.lattice else [])]
        return gcd(WORD_BITS, *widths)

    @property
    def huffman_k_max(self) -> int:
        """Most centroids a HUFFMAN layer may have: its index and a run must fit one symbol."""
        return 1 << (self.huffman_symbol_bits - REL_BITS) if self.huffman_max_len else 0

    @property
    def sram_words(self) -> int:
        """Lane-words in each half of the double-buffered activation SRAM."""
        return self.max_features // self.lanes
