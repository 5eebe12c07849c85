"""A small hand-checkable network for the energy and report tests: its counters and :class:`NetworkData`."""
from __future__ import annotations

from sim.report.energy.network import LayerInfo, NetworkData

# A one-layer "program": 8 inputs, 2 outputs, 4 lanes, 4-bit indices into 16
# codewords.  Each row has ceil(8/4) = 2 indices of 4 bits = 1 word, so the
# index stream is 2 words.  Counters per inference (the golden model would
# give them; here they are chosen by hand), over 2 images.
SMALL = dict(dram_read_words=20, dram_write_words=1, sram_reads=4, sram_writes=3,
             rom_reads=4, macs=16, adds=0, huffman_symbols=0, huffman_bits=0, huffman_busy_cycles=0)


IMAGES = 2


def small_net(lanes=4, counters=SMALL, histogram=(2, 2) + (0,) * 14, **kw) -> NetworkData:
    layer = LayerInfo(in_features=8, out_features=2, index_bits=4, codebook_size=16,
                      index_histogram=histogram, name="fc")
    totals = {k: v * IMAGES for k, v in counters.items()}
    return NetworkData("small", lanes, [layer], [totals], IMAGES, **kw)


# Job-level counters of the small network over its 2 images: the job header
# (8 words, once) and 2 input vectors of 2 words; 2 output vectors of 1 word;
# 2 lane-words of input written into SRAM and 1 of output read, per image.
IO_COUNTERS = dict(dram_read_words=8 + 2 * 2, dram_write_words=2 * 1, sram_writes=2 * 2, sram_reads=2 * 1)
