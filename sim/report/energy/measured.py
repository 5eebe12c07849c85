"""The engine's counters priced as measured, or with the weight stream substituted.

Every scenario but the dense baselines starts from the engine's counters:
`engine_events` prices them (or a changed copy) with the part's cycles;
`weights_substituted` swaps the engine's index stream for another number of
words; `priced_at_entropy` prices a dense-row layer whose entries are coded
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


def weights_substituted(net: NetworkData, layer: int, stream_words: float) -> dict[str, float]:
    """The layer's counters with the engine's index stream replaced by ``stream_words``.

    Raises
    ------
    ValueError
        If the layer read fewer DRAM words than its index stream takes.
    """
    c = dict(net.counters(layer))
    engine_stream = net.layers[layer].index_stream_words(net.lanes)
    if c.get("dram_read_words", 0) < engine_stream:
        raise ValueError(f"{net.name} layer {layer}: {c.get('dram_read_words', 0)} DRAM words read per "
                         f"inference, fewer than its {engine_stream}-word index stream")
    c["dram_read_words"] = c["dram_read_words"] - engine_stream + stream_words
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
