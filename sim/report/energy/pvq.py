"""Scenarios of pyramid-VQ layers: (e) this engine's PVQ unit, and its entropy floor.

The layer kinds these price are those whose codec names them
(``model.codecs.layers.pvq.PvqCodec.scenarios``).
"""
from __future__ import annotations

from typing import Mapping

from model.contract.layout import WORD_BITS
from sim.report.energy.events import Event, LayerCost, mac_energy
from sim.report.energy.measured import engine_events, priced_at_entropy
from sim.report.energy.network import NetworkData
from sim.report.energy.registry import register_scenario
from sim.report.energy.table import EnergyTable


def pvq_engine_events(net: NetworkData, i: int, table: EnergyTable, c: Mapping[str, float]) -> list[Event]:
    """A PVQ layer's events: its counters, plus one scale multiply per sub-vector.

    The counters count one add per pulse and no MACs; the PVQ unit also
    multiplies each sub-vector's pulse sum by its 8-bit scale and adds it to
    the accumulator.  No counter records that, so it is derived from the
    shape (``out x ceil(in / lanes)`` per inference, times the output positions
    of a convolution, which applies every row at each) and priced as one int8
    MAC (assumption: an 8-bit scale times a sum of at most ``K`` int8 values).

    Parameters
    ----------
    net : NetworkData
    i : int
        Layer index.
    table : EnergyTable
    c : mapping
        The layer's counters per inference (as measured, or a scenario's changed copy).
    """
    pj, basis = mac_energy(table, "int8")
    return engine_events(net, i, table, c) + [
        Event("mac", "PVQ scale multiplies (one per sub-vector, derived from the shape)",
              net.layers[i].beats(net.lanes), pj, basis)]


@register_scenario(
    "pvq_engine", "(e) this engine, PVQ unit: adds, no codebook",
    "Pyramid VQ layers: the counters as measured (golden model; equal to the RTL's), priced with "
    "the counter mapping above: one 32-bit add per pulse (`adds`, K per sub-vector) instead of "
    "`lanes` MACs, no codebook ROM or SRAM, and row-stream entries of enumeration index plus 8-bit "
    "scale. Added: one scale multiply per sub-vector (`out x ceil(in/lanes)`, no counter records "
    "it; a convolution's at every output position), priced as an int8 MAC.", reference=True)
def _pvq_engine(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """Layer ``i``'s counters as measured on the PVQ unit, plus its scale multiplies."""
    layer = net.layers[i]
    return LayerCost(pvq_engine_events(net, i, table, net.counters(i)),
                     layer.index_stream_words(net.lanes) * WORD_BITS)


@register_scenario(
    "pvq_entropy_floor", "floor: (e) with entries at entropy",
    "The PVQ engine with each row-stream entry coded at the Shannon entropy of the layer's "
    "enumeration indices plus that of its scales (two per-layer static codes): `entries x H / 32` "
    "DRAM words (fractional, no padding, no decoder cost).")
def _pvq_entropy_floor(net: NetworkData, i: int, table: EnergyTable) -> LayerCost:
    """`_pvq_engine` with the layer's entries at their entropy."""
    return priced_at_entropy(net, i, lambda c: pvq_engine_events(net, i, table, c))
