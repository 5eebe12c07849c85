"""Priced events, and how the engine's counters map to them.

An `Event` is a kind of event, how often it happens per inference and what
each costs; `counter_events` turns one layer's counters into the engine's
events, as `COUNTER_MAPPING` (printed in the report) describes.  SRAM and ROM
accesses are priced from the table's 32-bit entries, linear in width (an
assumption the table's own 64-bit SRAM entry agrees with).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from model.contract.layout import WORD_BITS
from sim.report.energy.table import EnergyTable

#: Bits in one byte-wide lane (activations and codebook entries are int8).
LANE_BITS = 8
#: Bits of one fp32 activation, for the dense fp32 baseline's activation SRAM.
FP32_BITS = 32

#: Table entry of one 32-bit SRAM access (activations, codebook SRAM, Huffman tables).
SRAM_32B = "sram_8kb_32b"
#: Table entry of one 32-bit ROM read (the codebook ROM).
ROM_32B = "rom_32b"
#: Table entries whose sum is one multiply-accumulate, by arithmetic.
MAC_ENTRIES = {"int8": ("int8_mult", "int32_add"), "fp32": ("fp32_mult", "fp32_add")}

#: Bar segments, in plotting order.
COMPONENTS = ("dram", "sram", "rom", "codebook_sram", "mac", "add", "huffman", "control")
#: Each bar segment's name in tables and legends.
COMPONENT_TITLES = {
    "dram": "DRAM", "sram": "activation SRAM", "rom": "codebook ROM",
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


def access_energy(table: EnergyTable, entry: str, width_bits: int) -> tuple[float, str]:
    """Energy of one memory access ``width_bits`` wide, from the table's 32-bit ``entry``.

    An assumption: access energy is linear in width.

    Parameters
    ----------
    table : EnergyTable
    entry : str
        The memory's 32-bit entry (`SRAM_32B`, `ROM_32B`).
    width_bits : int
        Access width.

    Returns
    -------
    (float, str)
        Picojoules, and how they follow from the table.
    """
    return table.pj(entry) * width_bits / WORD_BITS, f"{entry} x {width_bits}/{WORD_BITS} bits"


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


def counter_events(c: Mapping[str, float], lanes: int, table: EnergyTable, *,
                   cycles: float, act_bits: int = LANE_BITS, mac: str = "int8") -> list[Event]:
    """Map one layer's counters to priced events: the engine's mapping.

    Parameters
    ----------
    c : mapping
        Counters per inference.
    lanes : int
        Lanes; SRAM and ROM accesses are ``lanes`` values wide.
    table : EnergyTable
    cycles : float
        Clock cycles per inference, for the control overhead.
    act_bits : int
        Bits per activation in SRAM (8; 32 for the fp32 baseline).
    mac : {"int8", "fp32"}
        Arithmetic of a multiply-accumulate.

    Returns
    -------
    list of Event
    """
    dram = table.pj("dram_32b")
    sram_pj, sram_basis = access_energy(table, SRAM_32B, lanes * act_bits)
    rom_pj, rom_basis = access_energy(table, ROM_32B, lanes * LANE_BITS)
    mac_pj, mac_basis = mac_energy(table, mac)
    table_pj, table_basis = access_energy(table, SRAM_32B, WORD_BITS)
    get = lambda k: c.get(k, 0)  # noqa: E731 - a counter a backend lacks is zero
    return [
        Event("dram", "DRAM 32-bit words read", get("dram_read_words"), dram, "dram_32b"),
        Event("dram", "DRAM 32-bit words written", get("dram_write_words"), dram, "dram_32b"),
        Event("sram", f"activation SRAM reads ({lanes * act_bits} bits)", get("sram_reads"),
              sram_pj, sram_basis),
        Event("sram", f"activation SRAM writes ({lanes * act_bits} bits)", get("sram_writes"),
              sram_pj, sram_basis),
        Event("rom", f"codebook ROM reads ({lanes * LANE_BITS} bits)", get("rom_reads"), rom_pj, rom_basis),
        Event("mac", f"{mac} multiply-accumulates", get("macs"), mac_pj, mac_basis),
        Event("add", "adds (PVQ pulses, other)", get("adds"), table.pj("int32_add"), "int32_add"),
        Event("huffman", "Huffman symbols (one 32-bit table read each)", get("huffman_symbols"),
              table_pj, table_basis),
        Event("control", "clock cycles", cycles, table.pj("control_per_cycle"), "control_per_cycle"),
    ]


#: How each counter is priced in the engine scenario (shown in the report).
COUNTER_MAPPING = (
    ("dram_read_words, dram_write_words", "one DRAM 32-bit access each", "dram_32b"),
    ("sram_reads, sram_writes", "one activation-SRAM access of `lanes` x 8 bits",
     "sram_8kb_32b x lanes*8/32 (assumption: energy linear in width; matches the table's "
     "8 KB 32-bit and 64-bit entries)"),
    ("rom_reads", "one codebook-ROM read of `lanes` x 8 bits", "rom_32b x lanes*8/32 (assumption)"),
    ("macs", "one int8 multiply and one 32-bit accumulate",
     "int8_mult + int32_add (assumption: the accumulator is 32-bit)"),
    ("adds", "one 32-bit add", "int32_add"),
    ("huffman_symbols", "one 32-bit Huffman-table SRAM read per decoded symbol", "sram_8kb_32b (assumption)"),
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
