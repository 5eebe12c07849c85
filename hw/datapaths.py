"""The engine's datapaths: for each layer mode, the blocks that run its layers and how they are joined."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal

from hw.block_offset import BlockOffset
from hw.descriptor_check import log2, subvectors
from hw.index_path import IndexPath
from hw.layouts import MODE_PARAM_BIT
from hw.lattice_codebook import LatticeCodebook
from hw.mac import MacLanes
from hw.memories import CodebookRom, StagedCodebookRom
from hw.nearest import NearestPrototype
from hw.pvq import PvqDotProduct
from hw.sparse_rows import SparseRowPath
from model.contract.config import EngineConfig
from model.contract.fixedpoint import stage_sum_bits
from model.contract.layout import (COMPACT_ROW_HEADER_WORDS, E8P_INDEX_BITS, MODE_MASK, MODE_PARAM_BITS,
                                   PVQ_SCALE_BITS, ROW_HEADER_WORDS, LayerMode)


def dense_rows(index_path, desc, lanes: int, width, check, stages=1) -> list:
    """The index path's configuration for a dense layer of ``width``-bit entries (VQ, PVQ, RVQ, PQ);
    ``stages``: the indices an entry holds, for an index path that checks several (residual VQ)."""
    c = index_path.config
    header = Mux(desc.compact, COMPACT_ROW_HEADER_WORDS, ROW_HEADER_WORDS)
    return [c.rows.eq(desc.out_features), c.subvectors.eq(subvectors(desc.in_features, lanes)),
            c.index_words.eq(desc.row_words - header), c.codebook_size.eq(desc.codebook_size),
            c.width.eq(width), c.check.eq(check), c.compact.eq(desc.compact), c.shift.eq(desc.compact_shift),
            c.act.eq(desc.compact_act), c.bias_shift.eq(desc.compact_bias_shift),
            *([c.stages.eq(stages)] if hasattr(c, "stages") else [])]


def mode_param(desc):
    """The descriptor's ``MODE_PARAM`` bits (RVQ's stages - 1, PQ's log2 block width).  Read as bits of the
    descriptor, not a field of `DescriptorLayout`: a field would add a wire to every engine's Verilog."""
    return desc.as_value()[MODE_PARAM_BIT:MODE_PARAM_BIT + MODE_PARAM_BITS]


class Datapath:
    """One layer mode's way through the engine.

    A row source (:class:`hw.layouts.RowSourceSignature`) reads the layer's
    stream; for each of its beats the engine's fetch stage reads an activation
    lane-word from the SRAM (and, for a codebook mode, an entry from the ROM);
    the next cycle, a dot-product unit (:class:`hw.layouts.DotProductSignature`)
    takes them as one operand.  Everything that differs between the modes is
    here; the engine selects the running layer's datapath and connects it
    through the shared signatures.

    Parameters
    ----------
    source : wiring.Component
        The row source, with a :class:`~hw.layouts.RowSourceSignature`.
    dot : wiring.Component
        The dot-product unit, with a :class:`~hw.layouts.DotProductSignature`.
    rom : CodebookRom or None
        The codebook ROM, for the modes whose weights come from it.
    lanes : int
        Engine lanes.

    Attributes
    ----------
    sized : bool
        The layer's stream starts with a size word, which says how long the
        rest is; the engine reads it first (:mod:`model.contract.layout`).
    """
    sized = False

    def __init__(self, source, dot, rom, lanes: int):
        self.source, self.dot, self.rom, self.lanes = source, dot, rom, lanes

    def configure(self, desc) -> list:
        """The source's and the unit's configuration for the layer that ``desc`` describes."""
        raise NotImplementedError

    def lookup(self, beat) -> tuple:
        """What a beat reads: (ROM entry after the layer's codebook base, SRAM lane-word, whether it reads)."""
        raise NotImplementedError

    def read_rom(self, desc, entry, enable, beat, take) -> list:
        """Statements addressing the ROM for the beat offered now: ``entry`` (from :meth:`lookup`) after the
        layer's codebook base, read when ``enable``; ``take``: the fetch stage takes the beat this cycle."""
        return self.rom.request(desc.codebook_base + entry, enable)

    def weights(self, held, desc) -> list:
        """The weight fields of the unit's operand, from the beat ``held`` that the fetch stage took last cycle."""
        raise NotImplementedError

    def read_steps(self, reading) -> dict:
        """Counter name -> this cycle's step, for a beat that reads the memories (``reading``)."""
        return {}

    def event_steps(self) -> dict:
        """Counter name -> this cycle's step, for the counters the blocks' own events move."""
        return {}


class CodebookDatapath(Datapath):
    """``LayerMode.VQ``: index path -> a codeword from the ROM -> MAC lanes."""

    def __init__(self, source, dot, rom, lanes: int, index_bits: int):
        super().__init__(source, dot, rom, lanes)
        self.index_bits = index_bits

    def configure(self, desc):
        return dense_rows(self.source, desc, self.lanes, self.index_bits, 1)

    def lookup(self, beat):
        return beat.index, beat.subvector, 1

    def weights(self, held, desc):
        return [self.dot.operands.payload.codeword.eq(self.rom.data)]

    def read_steps(self, reading):
        return {"rom_reads": reading, "macs": Mux(reading, self.lanes, 0)}


class NearestDatapath(CodebookDatapath):
    """``LayerKind.NEAREST`` (VQ rows): index path -> a codeword from the ROM -> the nearest-prototype unit.

    Selected by the kind, not the mode: the engine runs it under :data:`NEAREST_PATH`.  Per beat one ROM
    read, ``lanes`` squares (``macs``) and ``lanes`` differences (``adds``).
    """

    def configure(self, desc):
        return super().configure(desc) + [self.dot.config.rows.eq(desc.out_features)]

    def read_steps(self, reading):
        return {**super().read_steps(reading), "adds": Mux(reading, self.lanes, 0)}


#: The engine's datapath key of ``NEAREST`` layers: a value of the 4-bit mode field no layer mode has
#: (a NEAREST layer's rows are VQ; its kind picks the unit).
NEAREST_PATH = MODE_MASK


class ResidualDatapath(CodebookDatapath):
    """``LayerMode.RVQ``: index path -> the stages' codewords from the staged ROM, summed lane-wise -> MAC lanes.

    An entry holds one ``index_bits`` index per stage; stage ``s`` reads entry
    ``codebook_base + s * codebook_size + index_s`` on the ROM's port ``s``, all in
    the beat's cycle (:mod:`model.contract.layout`, "Residual VQ layers").
    """

    def __init__(self, source, dot, rom, lanes: int, index_bits: int, stages_max: int):
        super().__init__(source, dot, rom, lanes, index_bits)
        self.stages_max = stages_max
        self.stages = Signal(range(stages_max + 1), name="rvq_stages")   # the running layer's S

    def configure(self, desc):
        return [self.stages.eq(mode_param(desc) + 1),
                *dense_rows(self.source, desc, self.lanes, self.stages * self.index_bits, 1, self.stages)]

    def read_rom(self, desc, entry, enable, beat, take):
        ib = self.index_bits
        addr = [self.rom.addr[s].eq(desc.codebook_base + s * desc.codebook_size + entry[s * ib:(s + 1) * ib])
                for s in range(self.stages_max)]
        return addr + [self.rom.active.eq(Cat(self.stages > s for s in range(self.stages_max))),
                       self.rom.en.eq(enable)]

    def read_steps(self, reading):
        # S ROM reads, lanes multiplies and (S - 1) x lanes adds (the codewords' sums) per entry.
        return {"rom_reads": Mux(reading, self.stages, 0), "macs": Mux(reading, self.lanes, 0),
                "adds": Mux(reading, (self.stages - 1) * self.lanes, 0)}


class ProductDatapath(CodebookDatapath):
    """``LayerMode.PQ``: index path -> a codeword of the beat's column block's codebook -> MAC lanes.

    The block's ROM offset comes from a :class:`hw.block_offset.BlockOffset` (no
    multiplier): entry ``codebook_base + offset + index`` (:mod:`model.contract.layout`,
    "Product VQ layers").
    """

    def __init__(self, source, dot, rom, lanes: int, index_bits: int, blocks):
        super().__init__(source, dot, rom, lanes, index_bits)
        self.blocks = blocks

    def read_rom(self, desc, entry, enable, beat, take):
        b = self.blocks
        return [b.first.eq(beat.first), b.subvector.eq(beat.subvector), b.take.eq(take),
                b.log2_width.eq(mode_param(desc)), b.size.eq(desc.codebook_size),
                *self.rom.request(desc.codebook_base + b.offset + entry, enable)]


class LatticeDatapath(Datapath):
    """``LayerMode.E8P``: index path -> a codeword decoded by the E8P lattice codebook -> MAC lanes.

    An entry is a 16-bit codeword index; the lattice codebook (:class:`hw.lattice_codebook.LatticeCodebook`)
    reads its table in the beat's cycle and applies the signs and the shift in the next, as the MAC
    lanes take the operand (:mod:`model.contract.layout`, "E8P lattice layers").  Every index is a
    codeword, so the index path checks none; descriptor word 1 is not read.
    """

    def configure(self, desc):
        return dense_rows(self.source, desc, self.lanes, E8P_INDEX_BITS, 0)

    def lookup(self, beat):
        return beat.index, beat.subvector, 1

    def read_rom(self, desc, entry, enable, beat, take):
        return self.rom.request(entry, enable)

    def weights(self, held, desc):
        codeword = self.dot.operands.payload.codeword    # lane-wise: the MAC lanes may be wider (RVQ)
        return [codeword[i].eq(self.rom.data[i]) for i in range(self.lanes)]

    def read_steps(self, reading):
        return {"rom_reads": reading, "macs": Mux(reading, self.lanes, 0)}   # one table read per entry


class PvqDatapath(Datapath):
    """``LayerMode.PVQ``: index path -> the PVQ unit, which decodes each entry itself (no codebook)."""

    def configure(self, desc):
        return dense_rows(self.source, desc, self.lanes, desc.entry_bits, 0) + [self.dot.config.k.eq(desc.pvq_k)]

    def lookup(self, beat):
        return None, beat.subvector, 1

    def weights(self, held, desc):
        # An entry is the enumeration index in its low bits and the scale in the top PVQ_SCALE_BITS.
        entry, ops = held.index, self.dot.operands.payload
        index_bits = Signal(range(len(entry) + 1), name="pvq_index_bits")
        return [index_bits.eq(desc.entry_bits - PVQ_SCALE_BITS),
                ops.index.eq(entry & ((Const(1, len(entry) + 1) << index_bits) - 1)),
                ops.scale.eq(entry >> index_bits)]

    def event_steps(self):
        return {"adds": self.dot.events.add}


class SparseDatapath(Datapath):
    """``LayerMode.HUFFMAN``: sparse row path -> one centroid from the ROM -> MAC lanes.

    A symbol's weight is centroid lane ``idx % lanes`` of ROM entry ``base +
    idx // lanes``, placed in the lane of its activation (``position % lanes``)
    with zeros in the others: one useful multiply.  Fillers read nothing.  A
    weight whose activation is zero is not multiplied (its lane gets a zero
    weight, so the multiplier's operands do not toggle): it counts in
    ``zero_skips`` instead of ``macs`` (:mod:`model.contract.counters`).  The
    activation is known only when the fetch stage's SRAM read returns, so the
    skip saves the multiply-accumulate, not the cycle or the reads.
    """
    sized = True

    def __init__(self, source, dot, rom, lanes: int):
        super().__init__(source, dot, rom, lanes)
        self.multiply = Signal(name="sparse_multiply")    # the held weight meets a non-zero activation
        self.skip = Signal(name="sparse_zero_skip")       # the held weight meets a zero activation

    def configure(self, desc):
        c = self.source.config
        return [c.rows.eq(desc.out_features), c.in_features.eq(desc.in_features), c.k.eq(desc.codebook_size),
                c.table_words.eq(desc.table_words)]

    def lookup(self, beat):
        lane_bits = log2(self.lanes)
        return beat.index >> lane_bits, beat.position >> lane_bits, ~beat.filler

    def weights(self, held, desc):
        lane_bits = log2(self.lanes)
        centroid = self.rom.data[held.index[:lane_bits]] if self.lanes > 1 else self.rom.data[0]
        ops = self.dot.operands
        lane = held.position[:lane_bits] if self.lanes > 1 else 0
        weight = ops.valid & ~held.filler
        zero = ops.payload.activations[lane] == 0
        return [self.multiply.eq(weight & ~zero), self.skip.eq(weight & zero),
                *(ops.payload.codeword[i].eq(Mux(self.multiply & (lane == i), centroid, 0))
                  for i in range(self.lanes))]

    def read_steps(self, reading):
        return {"rom_reads": reading}

    def event_steps(self):
        events = self.source.events
        return {"huffman_symbols": events.symbol, "huffman_bits": events.bits,
                "huffman_busy_cycles": events.decode, "macs": self.multiply, "zero_skips": self.skip}


def datapaths(m: Module, cfg: EngineConfig, suffix: str = "") -> dict:
    """The layer modes an engine runs, each with its :class:`Datapath`, its blocks added to ``m``; with the
    nearest-prototype unit, the ``NEAREST`` kind's path too, under :data:`NEAREST_PATH`.

    A block two modes use (the index path, the MAC lanes, the ROM) is built once.  An engine with the
    residual-VQ unit has the staged ROM (a read port per stage and their sum) and MAC lanes as wide as
    that sum, which its other codebook modes use through stage 0.  ``suffix`` is added to the blocks'
    names: processing element ``p > 0`` of an engine with several has its own blocks, ``_pe{p}``.
    """
    sub = m.submodules
    stages = cfg.rvq_stages_max
    sub[f"index_path{suffix}"] = index_path = IndexPath(cfg.max_entry_bits, *((stages, cfg.index_bits) if stages > 1
                                                                           else (1, 0)), unit=cfg.entry_bits_unit)
    paths = {}
    if cfg.rom:   # a Huffman engine has one too (EngineConfig checks)
        if stages:
            sub[f"rom{suffix}"] = rom = StagedCodebookRom(cfg.lanes, cfg.rom, stages)
            sub[f"mac{suffix}"] = mac = MacLanes(cfg.lanes, stage_sum_bits(stages))
        else:
            sub[f"rom{suffix}"] = rom = CodebookRom(cfg.lanes, cfg.rom)
            sub[f"mac{suffix}"] = mac = MacLanes(cfg.lanes)
        paths[LayerMode.VQ] = CodebookDatapath(index_path, mac, rom, cfg.lanes, cfg.index_bits)
    if stages:
        paths[LayerMode.RVQ] = ResidualDatapath(index_path, mac, rom, cfg.lanes, cfg.index_bits, stages)
    if cfg.pq:
        sub[f"block_offset{suffix}"] = blocks = BlockOffset(max(1, len(cfg.rom).bit_length()) + 1)
        paths[LayerMode.PQ] = ProductDatapath(index_path, mac, rom, cfg.lanes, cfg.index_bits, blocks)
    if cfg.pvq_k_max:
        sub[f"pvq{suffix}"] = pvq = PvqDotProduct(cfg.lanes, cfg.pvq_k_max, scale_bits=PVQ_SCALE_BITS)
        paths[LayerMode.PVQ] = PvqDatapath(index_path, pvq, None, cfg.lanes)
    if cfg.nearest_prototype:
        sub[f"nearest{suffix}"] = nearest = NearestPrototype(cfg.lanes, cfg.max_features)
        paths[NEAREST_PATH] = NearestDatapath(index_path, nearest, rom, cfg.lanes, cfg.index_bits)
    if cfg.huffman_max_len:
        sub[f"sparse{suffix}"] = sparse = SparseRowPath(cfg.huffman_max_len, cfg.huffman_symbol_bits)
        paths[LayerMode.HUFFMAN] = SparseDatapath(sparse, mac, rom, cfg.lanes)
    if cfg.lattice:   # the E8P codebook: its own table, the MAC lanes of the ROM's modes (or its own)
        if not cfg.rom:
            sub[f"mac{suffix}"] = mac = MacLanes(cfg.lanes)
        sub[f"lattice{suffix}"] = lattice = LatticeCodebook(cfg.lanes)
        paths[LayerMode.E8P] = LatticeDatapath(index_path, mac, lattice, cfg.lanes)
    return paths
