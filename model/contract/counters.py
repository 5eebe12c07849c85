"""The event counters: identical in the golden model and the RTL.

Most counters are described where their events happen (:mod:`model.contract.layout`).  Two of the
sparse layers' are defined here, as golden model and RTL must agree on them exactly:

``huffman_busy_cycles``
    The cycles in which the Huffman decoder decodes at least one symbol, or finds a stream error:
    its steps (:mod:`model.codecs.huffman`, *Decoding steps*).  A cycle in which it waits for a
    word, or for its output to be taken, is not busy.  A step takes two codes when
    ``huffman_max_len <= 16`` (a row's odd last symbol alone), so a row of ``n`` symbols is
    ``ceil(n / 2)`` busy cycles, whatever the stalls; ``huffman_symbols / huffman_busy_cycles`` is
    the decoder's rate.
``zero_skips``
    In sparse (``LayerMode.HUFFMAN``) layers, the stored non-zero weights (``idx != 0``) that met a
    zero input activation: the engine tests the activation it read and does not multiply, so such a
    weight counts here and not in ``macs``.  Per layer and image, ``zero_skips + macs`` is the layer's
    non-zero weights; the golden model counts it from the data, as the sum over the zero inputs
    ``x[p] == 0`` of the non-zero weights in column ``p``.  Dense layers skip nothing (0).
"""
from __future__ import annotations

#: Event counters, identical in the golden model and the RTL.
COUNTERS = (
    "dram_read_words", "dram_write_words", "sram_reads", "sram_writes", "rom_reads",
    "macs", "adds", "huffman_symbols", "huffman_bits", "huffman_busy_cycles",
    "weight_sram_reads", "weight_sram_writes", "zero_skips",
)


#: Counters only the RTL has: they depend on timing.
RTL_COUNTERS = ("cycles", "stall_cycles")


COUNTER_BITS = 48


def zero_counters() -> dict:
    """A counter dict with every event of :data:`COUNTERS` at zero."""
    return {name: 0 for name in COUNTERS}
