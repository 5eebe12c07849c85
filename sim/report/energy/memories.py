"""The engine's on-chip memories as the energy model sizes them: capacities in bytes, from the engine's config.

Per-access energy depends on a memory's capacity
(`sim.report.energy.table.CAPACITY_RULE`), so the pricing needs each
memory's size.  `OnChipMemories.of_engine` reads them from the program's
`model.contract.config.EngineConfig`; a network built without one (by hand,
in tests) leaves them unknown (None), and an unknown memory is priced as
8 KB, the flat figure the report used before capacities were known.
"""
from __future__ import annotations

from dataclasses import dataclass

from model.contract.config import EngineConfig
from model.contract.fixedpoint import ACT_BITS
from model.contract.ints import ceil_div
from model.contract.layout import E8P_DIM, E8P_TABLE_BITS, WORD_BYTES

#: Halves of the double-buffered activation SRAM: a layer reads one and writes the other.
ACTIVATION_SRAM_HALVES = 2
#: Bits in one byte.
BYTE_BITS = 8


@dataclass(frozen=True)
class OnChipMemories:
    """Capacity in bytes of each on-chip memory the energy model prices; None where not known.

    Parameters
    ----------
    activation_sram_bytes : int or None
        The activation SRAM, both halves, holding int8 activations
        (``2 x max_features`` bytes).  A dense baseline with wider
        activations holds the same values in more bytes (`activation_bytes`).
    rom_bytes : int or None
        The codebook ROM: ``entries x lanes`` int8 values, plus the E8P lattice table's 2,048 bytes on an
        engine with ``lattice`` (its reads are ``rom_reads`` too).
    codebook_sram_bytes : int or None
        The codebook SRAM of traditional VQ (scenario (c)), sized for the
        largest codebook a layer may use: ``codebook_depth x lanes`` bytes.
    huffman_table_bytes : int or None
        The Huffman decoder's symbol memory: ``2**symbol_bits`` symbols of
        ``symbol_bits`` bits (0 on an engine without the decoder).
    huffman_symbol_bits : int or None
        Width of that memory, and so of each read (one per decoded symbol):
        ``symbol_bits``.  None if not known (priced as a 32-bit read, an upper bound).
    weight_sram_bytes : int or None
        The weight SRAM: ``weight_sram_words`` 32-bit words (0 on an engine without one).
    """
    activation_sram_bytes: int | None = None
    rom_bytes: int | None = None
    codebook_sram_bytes: int | None = None
    huffman_table_bytes: int | None = None
    huffman_symbol_bits: int | None = None
    weight_sram_bytes: int | None = None

    @classmethod
    def of_engine(cls, config: EngineConfig) -> OnChipMemories:
        """The memories of an engine built with ``config`` (the RTL's sizes, `hw/memories.py`, `hw/huffman.py`)."""
        symbol_bits = config.huffman_symbol_bits if config.huffman_max_len else 0
        # Activations and codeword values are int8: one byte each.
        return cls(activation_sram_bytes=ACTIVATION_SRAM_HALVES * config.max_features,
                   # The E8P lattice table (256 x 8 bytes) is read as a ROM is, one entry per rom_reads:
                   # priced as one memory of the ROM's and the table's bytes (only the table without a ROM).
                   rom_bytes=config.rom_entries * config.lanes + (E8P_DIM << E8P_TABLE_BITS if config.lattice else 0),
                   codebook_sram_bytes=config.codebook_depth * config.lanes,
                   huffman_table_bytes=ceil_div((1 << symbol_bits) * symbol_bits, BYTE_BITS),
                   huffman_symbol_bits=symbol_bits or None,
                   weight_sram_bytes=config.weight_sram_words * WORD_BYTES)

    def activation_bytes(self, act_bits: int) -> int | None:
        """Capacity of an activation SRAM holding the same activations at ``act_bits`` each (None if unknown).

        The dense fp32 baseline keeps the engine's activations as fp32, so its SRAM is four times the bytes.
        """
        if self.activation_sram_bytes is None:
            return None
        return self.activation_sram_bytes * act_bits // ACT_BITS
