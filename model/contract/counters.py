"""The event counters: identical in the golden model and the RTL."""
from __future__ import annotations

#: Event counters, identical in the golden model and the RTL.
COUNTERS = (
    "dram_read_words", "dram_write_words", "sram_reads", "sram_writes", "rom_reads",
    "macs", "adds", "huffman_symbols", "huffman_bits", "huffman_busy_cycles",
    "weight_sram_reads", "weight_sram_writes",
)


#: Counters only the RTL has: they depend on timing.
RTL_COUNTERS = ("cycles", "stall_cycles")


COUNTER_BITS = 48


def zero_counters() -> dict:
    """A counter dict with every event of :data:`COUNTERS` at zero."""
    return {name: 0 for name in COUNTERS}
