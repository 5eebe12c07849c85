"""A network's energy under every scenario that applies to it, and its energy.json records.

All energies are in picojoules per inference (one input image).  Importing
this module registers the built-in scenarios, in report order: the dense
baselines, then those of codebook-VQ, PVQ and sparse Huffman-coded layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from sim.report.energy import baselines, codebook, pvq, sparse
from sim.report.energy.events import Event
from sim.report.energy.network import IO, NetworkData
from sim.report.energy.registry import Scenario, scenario_named, scenarios_for
from sim.report.energy.table import EnergyTable

#: The modules of the built-in scenarios, which register them when imported (above), in report order.
BUILTIN_SCENARIO_MODULES = (baselines, codebook, pvq, sparse)


@dataclass
class ScenarioEnergy:
    """A scenario's energy for one network.

    Parameters
    ----------
    scenario : Scenario
    parts : dict
        `LayerCost` per layer index, and for `IO` if the network has job-level counters.
    weights : int
        Weights in the network.
    """
    scenario: Scenario
    parts: dict
    weights: int

    def by_component(self, part: int | str | None = None) -> dict[str, float]:
        """Picojoules per component, for one layer (or `IO`) or, with None, the network."""
        costs = self.parts.values() if part is None else [self.parts[part]]
        out: dict[str, float] = {}
        for cost in costs:
            for e in cost.events:
                out[e.component] = out.get(e.component, 0.0) + e.pj
        return out

    def total(self, part: int | str | None = None) -> float:
        """Picojoules per inference, for one layer (or `IO`) or, with None, the network."""
        return sum(self.by_component(part).values())

    @property
    def bits_per_weight(self) -> float:
        """Weight bits (stream plus any per-inference codebook load) per weight of the network."""
        return sum(c.weight_bits for c in self.parts.values()) / self.weights

    def events(self) -> list[Event]:
        """Events summed over the network, merged by (component, what, basis)."""
        merged: dict[tuple, Event] = {}
        for cost in self.parts.values():
            for e in cost.events:
                key = (e.component, e.what, e.basis)
                prev = merged.get(key)
                merged[key] = e if prev is None else Event(e.component, e.what, prev.count + e.count,
                                                           e.pj_each, e.basis)
        return list(merged.values())


def network_energy(net: NetworkData, table: EnergyTable,
                   scenarios: Sequence[str] | None = None) -> dict[str, ScenarioEnergy]:
    """Energy of every scenario for one network.

    Parameters
    ----------
    net : NetworkData
    table : EnergyTable
    scenarios : sequence of str, optional
        Scenario keys; all that apply to the network (`scenarios_for`) if omitted.

    Returns
    -------
    dict of str to ScenarioEnergy
        Keyed by scenario, in registry order.

    Raises
    ------
    ValueError
        If a scenario is unknown or does not apply to the network's layer modes.
    """
    keys = scenarios_for(net) if scenarios is None else list(scenarios)
    out = {}
    for key in keys:
        sc = scenario_named(key)
        if not sc.applies(net):
            priced = sc.layer_modes
            modes = sorted({layer.mode for layer in net.layers if layer.has_rows} - set(priced))
            raise ValueError(f"scenario {key!r} does not apply to {net.name}: it prices {', '.join(sorted(priced))} "
                             f"layers, not {', '.join(modes)}")
        parts = {p: (sc.io_cost(net, table) if p == IO else sc.layer_cost(net, p, table)) for p in net.parts}
        out[key] = ScenarioEnergy(sc, parts, net.weights)
    return out


def reference_energy(results: Mapping[str, ScenarioEnergy]) -> ScenarioEnergy | None:
    """The scenario the others are compared against ("x engine"): the engine as measured, if it applies."""
    return next((r for r in results.values() if r.scenario.reference), None)


def energy_records(net: NetworkData, results: Mapping[str, ScenarioEnergy]) -> list[dict]:
    """energy.json records: ``{network, scenario, layer, component, pj}``.

    ``layer`` is the layer index, "io" for the job-level part (header, input,
    output), or "total" for the network's sum.

    Parameters
    ----------
    net : NetworkData
    results : mapping
        Output of `network_energy`.
    """
    records = []
    for key, res in results.items():
        for part in [*net.parts, None]:
            for comp, pj in res.by_component(part).items():
                records.append({"network": net.name, "scenario": key,
                                "layer": "total" if part is None else part,
                                "component": comp, "pj": pj})
    return records
