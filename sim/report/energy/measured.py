"""The engine's counters priced as measured, or with the weight stream substituted.

Every scenario but the dense baselines starts from the engine's counters:
`engine_events` prices them (or a changed copy) with the part's cycles;
`weights_substituted` swaps the engine's index stream for another number of
words at each of its DRAM reads (`stream_dram_reads`: a streamed convolution
reads it at every output position); `engine_rowless_cost` prices a layer
without rows (pooling, the residual add); `priced_at_entropy` prices a dense-row layer whose entries are coded
at their entropy (the floors of `sim.report.energy.codebook` and
`sim.report.energy.pvq`); `sparse_code_bits` sets a sparse layer's measured
code bits beside their entropy (the floor of `sim.report.energy.sparse`).
"""
from __future__ import annotations

from typing import Callable, Mapping

from model.contract.layout import WORD_BITS
from sim.report.energy.events import Event, LayerCost, counter_events
from sim.report.energy.network import IO, NetworkData, part_cycles
from sim.report.energy.table import EnergyTable


def engine_events(net: NetworkData, part: int | str, table: EnergyTable,
                  counters: Mapping[str, float] | None = None) -> list[Event]:
    """One part's counters priced as the engine does (`counter_events`), with the part's cycles.

    Parameters
    ----------
    net : NetworkData
    part : int or str
        Layer index, or `IO`.
    table : EnergyTable
    counters : mapping, optional
        Counters per inference to price instead of the part's own (a scenario's changed copy).
    """
    c = net.counters(part) if counters is None else counters
    return counter_events(c, net.lanes, table, memories=net.memories, cycles=part_cycles(net, part)[0])


def engine_io_cost(net: NetworkData, table: EnergyTable) -> LayerCost:
    """The job-level counters (header, input load, output store) priced as the engine does.

    Parameters
    ----------
    net : NetworkData
    table : EnergyTable
    """
    return LayerCost(engine_events(net, IO, table), 0.0)


def engine_rowless_cost(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """A layer without rows (pooling) priced as the engine does: its counters as measured, no weights.

    Its counters are its descriptor's DRAM words and its activation-SRAM reads and writes (and average
    pooling's adds, one 32-bit add per lane per lane-word read); every
    scenario runs the same pooling, so this is every scenario's price of it but dense fp32's.
    """
    return LayerCost(engine_events(net, i, table), 0.0)


def stream_dram_reads(net: NetworkData, layer: int) -> float:
    """Times per inference layer ``layer``'s stream is read from DRAM, from its counters.

    A layer applies its rows ``positions`` times per image (a convolution at every output
    position, FC once), each time reading its whole stream; a resident layer takes all but the
    job's first read from the weight SRAM (``weight_sram_reads``, in stream lengths: ``stream_words``).
    Streamed: ``positions``; FC streamed: 1.
    """
    info = net.layers[layer]
    from_sram = net.counters(layer).get("weight_sram_reads", 0)
    if not from_sram or not info.stream_words:
        return float(info.positions)
    return info.positions - from_sram / info.stream_words


def weights_substituted(net: NetworkData, layer: int, stream_words: float) -> dict[str, float]:
    """The layer's counters with the engine's index stream replaced by ``stream_words`` at each of its DRAM
    reads (`stream_dram_reads`: once per inference for FC, once per output position for a streamed
    convolution).

    Raises
    ------
    ValueError
        If the layer read fewer DRAM words than its index stream takes at those reads.
    """
    c = dict(net.counters(layer))
    reads = stream_dram_reads(net, layer)
    engine_stream = net.layers[layer].index_stream_words(net.lanes) * reads
    if c.get("dram_read_words", 0) < engine_stream:
        raise ValueError(f"{net.name} layer {layer}: {c.get('dram_read_words', 0)} DRAM words read per "
                         f"inference, fewer than its {engine_stream}-word index stream")
    c["dram_read_words"] = c["dram_read_words"] - engine_stream + stream_words * reads
    return c


def priced_at_entropy(net: NetworkData, i: int,
                      price: Callable[[Mapping[str, float]], list[Event]]) -> LayerCost:
    """Layer ``i`` with its stream coded at its entropy (bits, no padding), priced by ``price(counters)``.

    Raises
    ------
    ValueError
        If the layer has no index histogram.
    """
    layer = net.layers[i]
    if not layer.index_histogram:
        raise ValueError(f"{net.name} layer {i}: no index histogram, cannot compute the entropy floor")
    bits = layer.indices(net.lanes) * layer.entropy_bits()
    return LayerCost(price(weights_substituted(net, i, bits / WORD_BITS)), bits)


def sparse_code_bits(net: NetworkData, i: int) -> tuple[float, float]:
    """(measured Huffman code bits, the same symbols at the joint-symbol entropy) per inference of layer ``i``."""
    layer = net.layers[i]
    return net.counters(i).get("huffman_bits", 0.0), layer.symbols * layer.entropy_bits()
