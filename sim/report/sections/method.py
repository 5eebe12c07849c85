"""The report's method sections: how counters become energy, the scenarios, the energy table, the assumptions."""
from __future__ import annotations

from typing import Iterable

from sim.report.energy.events import COUNTER_MAPPING
from sim.report.energy.network import LAYER_MODES
from sim.report.energy.registry import Scenario
from sim.report.energy.table import CAPACITY_RULE, EnergyTable
from sim.report.formatting import display_path, markdown_table, significant

#: What the scenarios have in common, before the list of them.
SCENARIOS_INTRO = (
    "All scenarios run the same network on the same inputs. The dense baselines (a) and (b) "
    "follow from the layer shapes alone, so every coding of one network (k-means VQ, PVQ) gets "
    "the same baselines; the others start from the engine's counters and share its cycle count "
    "(for the control overhead) and activation-SRAM accesses. Each scenario prices only the "
    "layer modes it names: a network is reported under every scenario that covers all its "
    "layers, so the codebook scenarios (c), (d) and their floor are not applied to PVQ layers, "
    "which have no codebook.")

#: Modelling assumptions besides the table's own.
MODELLING_ASSUMPTIONS = (
    f"- {CAPACITY_RULE}",
    "- An SRAM write costs as much as a read of the same width (the table's capacity anchors are reads).",
    "- A MAC is an int8 multiply plus a 32-bit add (the accumulator is 32-bit).",
    "- The scenarios derived from the counters use the engine's cycle count for control "
    "overhead; the dense baselines one cycle per `lanes`-wide beat.",
    "- Baselines (a) and (b) read the engine's descriptor, bias and requantization words.",
    "- Baselines (a) and (b) read each weight from DRAM once per image, a convolution's too: a dense engine "
    "that streams each layer's weights once per image and keeps them in a buffer while it slides the window "
    "(the buffer's reads are not priced). This favours the baselines: the engine without a weight SRAM reads "
    "a convolution's stream from DRAM at every output position, and with one it reads it from the weight "
    "SRAM there (both priced). Their MACs and activation reads are per output position (`positions x out x "
    "ceil(in/lanes)` beats), their output writes as measured.",
    "- A pooling layer has no weights: every scenario prices its counters as measured (descriptor, activation "
    "reads and writes; 4x wider activations in (a)), one cycle per lane-word of taps.",
    "- Traditional VQ (c) loads each layer's codebook from DRAM once per image (a convolution keeps it in the "
    "codebook SRAM while its window slides); its stream, MACs and activation traffic are the engine's counters "
    "with no weight SRAM.",
)


def scenario_scope(sc: Scenario) -> str:
    """Which layers a scenario prices, in words ("any layer", "VQ layers", "PVQ layers, selected networks")."""
    priced = sc.layer_modes
    scope = "any layer" if set(priced) == set(LAYER_MODES) else " and ".join(m.upper() for m in priced) + " layers"
    return scope + (", selected networks" if sc.when is not None else "")


def _table_rows(table: EnergyTable) -> list[list[str]]:
    """One row per energy-table entry: name, value (with its derivation), event, source."""
    rows = []
    for e in table.entries.values():
        value = significant(e.pj)
        if e.same_as:
            value += f" (= {significant(e.scale)} x `{e.same_as}`)"
        rows.append([f"`{e.name}`", value, e.description, ("**assumption**: " if e.assumption else "") +
                     e.source.removeprefix("ASSUMPTION: ")])
    return rows


def method_section(table: EnergyTable, scenarios: Iterable[Scenario]) -> list[str]:
    """Markdown: the counter mapping, each scenario's derivation, the energy table, the assumptions.

    Parameters
    ----------
    table : EnergyTable
        The table the report's energies come from.
    scenarios : iterable of Scenario
        The scenarios to describe (every registered one), in report order.
    """
    out = ["## How counters become energy", "",
           "Energy = sum over events of (count x energy per event), per layer and per network.", "",
           markdown_table(["counter", "event", "energy per event"],
                          [[f"`{a}`", b, c] for a, b, c in COUNTER_MAPPING], "lll"),
           "", "## Scenarios", "", SCENARIOS_INTRO, ""]
    out += [f"- **{sc.title}** (`{sc.key}`, {scenario_scope(sc)}): {sc.derivation}" for sc in scenarios]
    out += ["", "## Energy table", "",
            f"`{display_path(table.path)}` ({table.name}). Values in picojoules per event.", "",
            markdown_table(["entry", "pJ", "event", "source"], _table_rows(table), "lrll"), "",
            "## Assumptions", "", "Values with no published figure (configurable in the energy table):", ""]
    out += [f"- `{e.name}` = {significant(e.pj)} pJ: {e.source.removeprefix('ASSUMPTION: ')}"
            for e in table.assumptions]
    out += ["", "Modelling assumptions:", "", *MODELLING_ASSUMPTIONS, ""]
    return out
