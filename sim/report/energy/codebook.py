"""Scenarios of codebook-VQ layers: (c) the codebook in SRAM, (d) this engine, and its entropy floor.

The layer kinds these price are those whose codec names them
(``model.codecs.layers.vq.VqCodec.scenarios``).
"""
from __future__ import annotations

from model.contract.ints import ceil_div
from model.contract.layout import WORD_BITS, WORD_BYTES
from sim.report.energy.events import LANE_BITS, Event, LayerCost, memory_access_energy
from sim.report.energy.measured import engine_events, priced_at_entropy
from sim.report.energy.network import LayerInfo, NetworkData
from sim.report.energy.registry import register_scenario
from sim.report.energy.table import EnergyTable


def codebook_words(layer: LayerInfo, lanes: int) -> int:
    """DRAM words of the layer's codebook: ``codebook_size`` codewords of ``lanes`` int8 values."""
    return ceil_div(layer.codebook_size * lanes, WORD_BYTES)


@register_scenario(
    "vq_sram", "(c) VQ, per-layer codebook in SRAM",
    "Traditional VQ: the same index stream, MACs and activation traffic as the engine (its counters as "
    "measured, the program with no weight SRAM: a convolution reads its index stream from DRAM at every "
    "output position, as the engine does), but each "
    "layer's codebook (`K` codewords of `lanes` bytes) is read from DRAM once per inference "
    "(`ceil(K x lanes / 4)` words) and written into a codebook SRAM (`K` lane-wide writes); every "
    "engine ROM read becomes a lane-wide read of that SRAM. Modelled, not counted: a convolution loads its "
    "codebook once per image and keeps it while the window slides. Pooling layers as measured. The "
    "codebook SRAM holds the largest codebook "
    "the engine allows (`codebook_depth x lanes` bytes) and is priced at that capacity.")
def _vq_sram(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i`` with its codebook loaded from DRAM into a codebook SRAM each inference."""
    layer = net.layers[i]
    c = dict(net.counters(i))
    load = codebook_words(layer, net.lanes)
    c["dram_read_words"] = c.get("dram_read_words", 0) + load
    reads = c.pop("rom_reads", 0)
    width = net.lanes * LANE_BITS
    pj, basis = memory_access_energy(table, net.memories.codebook_sram_bytes, width)
    events = engine_events(net, i, table, c)
    events += [Event("codebook_sram", f"codebook SRAM writes ({width} bits)", layer.codebook_size, pj, basis),
               Event("codebook_sram", f"codebook SRAM reads ({width} bits)", reads, pj, basis)]
    bits = (layer.index_stream_words(net.lanes) + load) * WORD_BITS
    return LayerCost(events, bits)


@register_scenario(
    "engine", "(d) this engine, codebook in ROM",
    "The counters as measured (golden model; equal to the RTL's), priced with the counter mapping "
    "above.", reference=True)
def _engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i``'s counters as measured: the engine, codebook in ROM."""
    layer = net.layers[i]
    return LayerCost(engine_events(net, i, table), layer.index_stream_words(net.lanes) * WORD_BITS)


@register_scenario(
    "entropy_floor", "floor: (d) with indices at entropy",
    "The engine with its index stream coded at the Shannon entropy `H` of each layer's index "
    "distribution: `indices x H / 32` DRAM words (fractional, no padding, no decoder cost) at each read "
    "of the stream from DRAM (every output position of a streamed convolution). A lower "
    "bound for any lossless coding of the same indices with a per-layer static code.")
def _entropy_floor(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i`` as measured but with its index stream at its entropy."""
    return priced_at_entropy(net, i, lambda c: engine_events(net, i, table, c))
