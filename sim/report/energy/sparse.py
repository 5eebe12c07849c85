"""Scenarios of sparse layers (Deep Compression): (f) this engine with Huffman-coded rows, its entropy floor, and
(g) this engine with column-wise layers in the column unit.

The layer kinds these price are those whose codec names them
(``model.codecs.layers.huffman.HuffmanCodec.scenarios``).
"""
from __future__ import annotations

from model.contract.layout import WORD_BITS
from sim.report.energy.events import LayerCost
from sim.report.energy.measured import engine_events, sparse_code_bits
from sim.report.energy.network import NetworkData
from sim.report.energy.registry import register_scenario
from sim.report.energy.table import EnergyTable


@register_scenario(
    "deepcomp_engine", "(f) this engine, sparse Huffman-coded rows",
    "Deep Compression layers: the counters as measured (golden model; equal to the RTL's), priced "
    "with the counter mapping above. The DRAM words are the layer's whole stream: size and "
    "requantization words, Huffman table, one header word per row and the codes. One MAC, one "
    "activation-SRAM read and one ROM read (the scalar centroid's lane-word) per stored non-zero "
    "weight; a filler costs only its decode. Each decoded symbol is priced as one Huffman-table "
    "SRAM read; the cycles are one per symbol plus the measured overheads.", reference=True)
def _deepcomp_engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i``'s counters as measured: sparse Huffman-coded rows, the whole stream from DRAM."""
    layer = net.layers[i]
    return LayerCost(engine_events(net, i, table), layer.stream_words * WORD_BITS)


@register_scenario(
    "deepcomp_entropy_floor", "floor: (f) with codes at entropy",
    "The sparse engine with each layer's codes at the Shannon entropy `H` of its joint (run, index) "
    "symbols: the measured stream less the Huffman code bits plus `symbols x H` bits, in fractional "
    "words (headers, tables and padding kept, decoder cost kept). How far the length-limited "
    "canonical code is from the best static code of the same symbols.")
def _deepcomp_entropy_floor(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """`_deepcomp_engine` with the layer's codes at the entropy of its joint symbols."""
    layer = net.layers[i]
    measured, floor = sparse_code_bits(net, i)
    c = dict(net.counters(i))
    c["dram_read_words"] = c["dram_read_words"] - (measured - floor) / WORD_BITS
    return LayerCost(engine_events(net, i, table, c), layer.stream_words * WORD_BITS - measured + floor)


@register_scenario(
    "columns_engine", "(g) this engine, column-wise sparse layers in the column unit",
    "Deep Compression layers run column-wise (`--sparse-format columns`): the counters as measured "
    "(golden model; equal to the RTL's), priced with the counter mapping above. The layer's stream is "
    "read from DRAM once per job, in image 0, and written into the column unit (`weight_sram_writes`); "
    "every image reads one activation lane-word per input lane-word, one column-table entry per slot "
    "and non-zero activation, and one entry per MAC (`weight_sram_reads`, each priced as a 32-bit SRAM "
    "access although entries are 16 bits: an assumption that overstates them). A kept weight whose "
    "activation is zero costs nothing (`zero_skips`).", reference=True)
def _columns_engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i``'s counters as measured, as for Huffman rows (its counters say the stream is read once per job)."""
    return _deepcomp_engine(net, i, table)
