"""Priced events, and how the engine's counters map to them.

An `Event` is a kind of event, how often it happens per inference and what
each costs; `counter_events` turns one layer's counters into the engine's
events, as `COUNTER_MAPPING` (printed in the report) describes.  SRAM and ROM
accesses are priced by `memory_access_energy` from the memory's capacity and
access width (`sim.report.energy.table.CAPACITY_RULE`, an assumption).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from model.contract.fixedpoint import ACT_BITS
from model.contract.layout import WORD_BITS
from sim.report.energy.memories import OnChipMemories
from sim.report.energy.table import KIB, SRAM_CAPACITY_ANCHORS, EnergyTable

#: Bits in one byte-wide lane (activations and codebook entries are int8).
LANE_BITS = ACT_BITS
#: Bits of one fp32 activation, for the dense fp32 baseline's activation SRAM.
FP32_BITS = 32

#: Table entry of one 32-bit access to an 8 KB SRAM (activations, weights, codebook SRAM, Huffman tables).
SRAM_32B = "sram_8kb_32b"
#: Table entry of one 32-bit read of an 8 KB ROM (the codebook ROM).
ROM_32B = "rom_32b"
#: Table entries whose sum is one multiply-accumulate, by arithmetic.
MAC_ENTRIES = {"int8": ("int8_mult", "int32_add"), "fp32": ("fp32_mult", "fp32_add")}

#: Bar segments, in plotting order.
COMPONENTS = ("dram", "weight_sram", "sram", "rom", "codebook_sram", "mac", "add", "huffman", "control")
#: Each bar segment's name in tables and legends.
COMPONENT_TITLES = {
    "dram": "DRAM", "weight_sram": "weight SRAM", "sram": "activation SRAM", "rom": "codebook ROM",
    "codebook_sram": "codebook SRAM", "mac": "MAC", "add": "add", "huffman": "Huffman tables",
    "control": "control",
}


@dataclass(frozen=True)
class Event:
    """A kind of event, how often it happens per inference, and what each costs.

    Parameters
    ----------
    component : str
        Bar segment (one of `COMPONENTS`).
    what : str
        The event, in words.
    count : float
        Events per inference.
    pj_each : float
        Picojoules per event.
    basis : str
        How ``pj_each`` follows from the table.
    """
    component: str
    what: str
    count: float
    pj_each: float
    basis: str

    @property
    def pj(self) -> float:
        """Picojoules per inference: ``count`` x ``pj_each``."""
        return self.count * self.pj_each


def _size_text(capacity_bytes: int) -> str:
    """A capacity as the report prints it: "576 B", "2 KiB", "1 MiB"."""
    for unit, size in (("MiB", KIB * KIB), ("KiB", KIB)):
        if capacity_bytes >= size:
            return f"{capacity_bytes / size:.3g} {unit}"
    return f"{capacity_bytes} B"


def memory_access_energy(table: EnergyTable, capacity_bytes: int | None, width_bits: int,
                         entry: str = SRAM_32B) -> tuple[float, str]:
    """Energy of one access ``width_bits`` wide to an on-chip memory of ``capacity_bytes``: the capacity rule.

    The table's 64-bit SRAM reads at several capacities (`SRAM_CAPACITY_ANCHORS`)
    are interpolated linearly in log2(capacity): the smallest anchor's value at
    or below its capacity, the last segment extended above the largest.  That
    value relative to the smallest anchor multiplies ``entry``, the memory's
    32-bit access at the smallest anchor's capacity (8 KB), and the result
    scales linearly in width.  An assumption (`sim.report.energy.table.CAPACITY_RULE`).

    Parameters
    ----------
    table : EnergyTable
    capacity_bytes : int or None
        The memory's capacity; None if not known (priced at the smallest anchor's capacity, 8 KB).
    width_bits : int
        Access width.
    entry : str
        The memory's 32-bit entry at 8 KB: `SRAM_32B`, or `ROM_32B` for the codebook ROM.

    Returns
    -------
    (float, str)
        Picojoules, and how they follow from the table.

    Raises
    ------
    ValueError
        If ``capacity_bytes`` is negative or ``width_bits`` is not positive.
    """
    if capacity_bytes is not None and capacity_bytes < 0:
        raise ValueError(f"memory capacity must not be negative, got {capacity_bytes} bytes")
    if width_bits < 1:
        raise ValueError(f"access width must be positive, got {width_bits} bits")
    width = f"{width_bits}/{WORD_BITS} bits"
    smallest_name, smallest_bytes = SRAM_CAPACITY_ANCHORS[0]
    if capacity_bytes is None or capacity_bytes <= smallest_bytes:
        where = "capacity unknown" if capacity_bytes is None else _size_text(capacity_bytes)
        return (table.pj(entry) * width_bits / WORD_BITS,
                f"{entry} x {width} ({where}: priced as {_size_text(smallest_bytes)})")
    anchors = [(math.log2(size), table.pj(name)) for name, size in SRAM_CAPACITY_ANCHORS]
    x = math.log2(capacity_bytes)
    # The segment the capacity falls in; above the largest anchor, the last segment extended.
    (x0, e0), (x1, e1) = next(((a, b) for a, b in zip(anchors, anchors[1:]) if x <= b[0]), anchors[-2:])
    t = (x - x0) / (x1 - x0)
    # (1 - t) e0 + t e1, not e0 + t (e1 - e0): exact at both ends of a segment, so every anchor is hit exactly.
    factor = ((1 - t) * e0 + t * e1) / table.pj(smallest_name)
    return (table.pj(entry) * factor * width_bits / WORD_BITS,
            f"{entry} x {factor:.3g} x {width} ({_size_text(capacity_bytes)}, by capacity)")


def mac_energy(table: EnergyTable, arithmetic: str) -> tuple[float, str]:
    """Energy of one multiply-accumulate: a multiply plus an add of ``arithmetic`` ("int8" or "fp32").

    Raises
    ------
    ValueError
        If ``arithmetic`` is not one of `MAC_ENTRIES`.
    """
    if arithmetic not in MAC_ENTRIES:
        raise ValueError(f"unknown MAC arithmetic {arithmetic!r}")
    mult, add = MAC_ENTRIES[arithmetic]
    return table.pj(mult) + table.pj(add), f"{mult} + {add}"


def counter_events(c: Mapping[str, float], lanes: int, table: EnergyTable, *, memories: OnChipMemories,
                   cycles: float, act_bits: int = LANE_BITS, mac: str = "int8") -> list[Event]:
    """Map one layer's counters to priced events: the engine's mapping.

    Parameters
    ----------
    c : mapping
        Counters per inference.
    lanes : int
        Lanes; activation-SRAM and ROM accesses are ``lanes`` values wide.
    table : EnergyTable
    memories : OnChipMemories
        Capacities of the on-chip memories, which set their energy per access (`memory_access_energy`).
    cycles : float
        Clock cycles per inference, for the control overhead.
    act_bits : int
        Bits per activation in SRAM (8; 32 for the fp32 baseline, whose SRAM holds the same values in
        ``act_bits / 8`` times the bytes).
    mac : {"int8", "fp32"}
        Arithmetic of a multiply-accumulate.

    Returns
    -------
    list of Event
    """
    dram = table.pj("dram_32b")
    act_width = lanes * act_bits
    sram_pj, sram_basis = memory_access_energy(table, memories.activation_bytes(act_bits), act_width)
    rom_pj, rom_basis = memory_access_energy(table, memories.rom_bytes, lanes * LANE_BITS, ROM_32B)
    weights_pj, weights_basis = memory_access_energy(table, memories.weight_sram_bytes, WORD_BITS)
    mac_pj, mac_basis = mac_energy(table, mac)
    table_bits = memories.huffman_symbol_bits or WORD_BITS
    table_pj, table_basis = memory_access_energy(table, memories.huffman_table_bytes, table_bits)
    get = lambda k: c.get(k, 0)  # noqa: E731 - a counter a backend lacks is zero
    return [
        Event("dram", "DRAM 32-bit words read", get("dram_read_words"), dram, "dram_32b"),
        Event("dram", "DRAM 32-bit words written", get("dram_write_words"), dram, "dram_32b"),
        Event("weight_sram", f"weight SRAM reads ({WORD_BITS} bits)", get("weight_sram_reads"),
              weights_pj, weights_basis),
        Event("weight_sram", f"weight SRAM writes ({WORD_BITS} bits)", get("weight_sram_writes"),
              weights_pj, weights_basis),
        Event("sram", f"activation SRAM reads ({act_width} bits)", get("sram_reads"), sram_pj, sram_basis),
        Event("sram", f"activation SRAM writes ({act_width} bits)", get("sram_writes"), sram_pj, sram_basis),
        Event("rom", f"codebook ROM reads ({lanes * LANE_BITS} bits)", get("rom_reads"), rom_pj, rom_basis),
        Event("mac", f"{mac} multiply-accumulates", get("macs"), mac_pj, mac_basis),
        Event("add", "adds (PVQ pulses, other)", get("adds"), table.pj("int32_add"), "int32_add"),
        Event("mac", "zero activations tested, multiply skipped (sparse layers)", get("zero_skips"),
              table.pj("zero_test"), "zero_test"),
        Event("huffman", f"Huffman symbols (one {table_bits}-bit table read each)", get("huffman_symbols"),
              table_pj, table_basis),
        Event("control", "clock cycles", cycles, table.pj("control_per_cycle"), "control_per_cycle"),
    ]


#: How a memory access is priced, for the mapping below.
_BY_CAPACITY = "at the memory's capacity and access width (capacity rule: assumption)"
#: Why a write costs what a read does.
_WRITE_AS_READ = "writes priced as reads (assumption: the table's capacity anchors are reads)"

#: How each counter is priced in the engine scenario (shown in the report).
COUNTER_MAPPING = (
    ("dram_read_words, dram_write_words", "one DRAM 32-bit access each", "dram_32b"),
    ("weight_sram_reads, weight_sram_writes",
     "one 32-bit weight-SRAM access (capacity `weight_sram_words` x 4 bytes)",
     f"sram_8kb_32b {_BY_CAPACITY}; {_WRITE_AS_READ}"),
    ("sram_reads, sram_writes",
     "one activation-SRAM access of `lanes` x 8 bits (capacity: both halves, 2 x `max_features` bytes)",
     f"sram_8kb_32b {_BY_CAPACITY}; {_WRITE_AS_READ}"),
    ("rom_reads", "one codebook-ROM read of `lanes` x 8 bits (capacity: entries x `lanes` bytes)",
     f"rom_32b (assumption) {_BY_CAPACITY}"),
    ("macs", "one int8 multiply and one 32-bit accumulate",
     "int8_mult + int32_add (assumption: the accumulator is 32-bit)"),
    ("adds", "one 32-bit add", "int32_add"),
    ("huffman_symbols", "one Huffman-table SRAM read of `symbol_bits` bits per decoded symbol (capacity: the "
     "decoder's symbol memory, 2^`symbol_bits` x `symbol_bits` bits; the RTL reads one entry per symbol, "
     "`hw/huffman.py`)",
     f"sram_8kb_32b {_BY_CAPACITY}; 32 bits wide when the engine's `symbol_bits` is not known (an upper bound)"),
    ("zero_skips", "one zero test of an int8 activation; the multiply-accumulate it saves is not in `macs`",
     "zero_test (assumption: an 8-bit add)"),
    ("huffman_bits", "not priced: the coded bits are already counted as DRAM words", "-"),
    ("huffman_busy_cycles", "not priced: the cycles are already in the control overhead", "-"),
    ("cycles", "control and register overhead per cycle: the RTL's per-layer cycle counts if given, "
     "else its total split across layers by ideal cycles, else the ideal cycles (MACs / lanes, plus one per "
     "PVQ pulse)", "control_per_cycle (assumption)"),
    ("stall_cycles", "not priced separately: stalls are part of `cycles`", "-"),
)
#: Every counter name the mapping above covers.  A counter outside this set is
#: refused rather than silently left out of the energy.
MAPPED_COUNTERS = frozenset(name.strip() for row in COUNTER_MAPPING for name in row[0].split(","))


@dataclass(frozen=True)
class LayerCost:
    """A scenario's events for one layer (or the job-level part) and the bits its weight stream takes.

    Parameters
    ----------
    events : list of Event
    weight_bits : float
        Bits of weight data (stream plus any per-inference codebook load).
    """
    events: list
    weight_bits: float
