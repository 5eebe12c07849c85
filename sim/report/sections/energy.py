"""The report's energy sections: the figures' block, one section per network, and the engines side by side."""
from __future__ import annotations

from typing import Mapping, Sequence

from sim.report.energy.events import COMPONENT_TITLES, COMPONENTS
from sim.report.energy.network import IO, NetworkData, part_cycles
from sim.report.energy.pricing import ScenarioEnergy, reference_energy
from sim.report.energy.table import EnergyTable
from sim.report.files import PLOT_BITS, PLOT_ENERGY
from sim.report.formatting import display_path, energy_unit, markdown_table, significant


def figure_caption(table: EnergyTable) -> str:
    """Units, sources and assumptions to print beside the energy figures."""
    assumed = ", ".join(f"`{e.name}` = {significant(e.pj)} pJ" for e in table.assumptions) or "none"
    return (f"*Figures: energy per inference (the unit is on each axis; the bar labels give totals and "
            f"the ratio to the engine), computed as counters x energy per event from "
            f"`{display_path(table.path)}` ({table.name}). Assumed values with no published figure: "
            f"{assumed}. Bits per weight count the weight stream plus any per-inference codebook "
            f"load. Derivations, sources and assumptions are listed below.*")


def figures_section(table: EnergyTable) -> list[str]:
    """The "Energy per inference" heading with the two energy figures and their caption."""
    return ["## Energy per inference", "",
            f"![energy breakdown per scenario]({PLOT_ENERGY})", "",
            f"![energy vs bits per weight]({PLOT_BITS})", "",
            figure_caption(table), ""]


def _provenance(net: NetworkData) -> list[str]:
    """Where the network's counters and cycles come from, and whether an RTL run confirmed them."""
    provenance = (f"Counters: the golden model's, summed over {net.images} input(s) and divided by "
                  f"{net.images} (energies are per inference). ")
    if net.cross_check_backend:
        provenance += (f"Cross-checked: the `{net.cross_check_backend}` RTL simulation matched the golden "
                       f"model exactly, outputs and counters, on {net.cross_check_images} input(s).")
    else:
        provenance += "**Not cross-checked** against an RTL backend."
    sources = sorted({part_cycles(net, p)[1] for p in net.parts if p != IO})
    return ["", provenance, "", "Cycles for the control overhead: " + "; ".join(sources)
            + " (the dense baselines: one per `lanes`-wide beat)."]


def network_section(net: NetworkData, res: Mapping[str, ScenarioEnergy]) -> list[str]:
    """One network: its facts, energy by component per scenario, per layer, and the engine's events.

    Parameters
    ----------
    net : NetworkData
    res : dict
        Its `sim.report.energy.pricing.network_energy`.
    """
    unit, scale = energy_unit(max(r.total() for r in res.values()))
    out = [f"### {net.name}", ""]
    facts = f"{len(net.layers)} layers, {net.weights:,} weights, {net.lanes} lanes"
    if net.method:
        facts = f"method `{net.method}`, " + facts
    out.append(facts + ".")
    out += _provenance(net)

    comps = [c for c in COMPONENTS if any(r.by_component().get(c, 0) for r in res.values())]
    ref = reference_energy(res)
    header = ["scenario", "bits/weight", *(f"{COMPONENT_TITLES[c]} ({unit})" for c in comps),
              f"total ({unit})", "x engine"]
    rows = []
    for r in res.values():
        comp = r.by_component()
        rows.append([r.scenario.title, significant(r.bits_per_weight),
                     *(significant(comp.get(c, 0) / scale) for c in comps),
                     f"**{significant(r.total() / scale)}**",
                     significant(r.total() / ref.total()) if ref is not None and ref.total() else "-"])
    out += ["", f"Energy per inference by component ({unit}):", "", markdown_table(header, rows)]

    lunit, lscale = energy_unit(max(r.total(p) for r in res.values() for p in net.parts))
    # A convolutional network's layers also say their kind and how many output positions apply their rows.
    windows = any(layer.windowed for layer in net.layers)
    header = ["layer", *(["kind", "positions"] if windows else []), "in x out", "code", "entry bits", "H (bits/entry)",
              *(f"{r.scenario.title} ({lunit})" for r in res.values())]
    rows = []
    for i, layer in enumerate(net.layers):
        ent = significant(layer.entropy_bits()) if layer.index_histogram else "-"
        rows.append([f"{i} {layer.name}".strip(), *([layer.kind, f"{layer.positions:,}"] if windows else []),
                     f"{layer.in_features} x {layer.out_features}",
                     layer.code, layer.index_bits if layer.has_rows else "-", ent,
                     *(significant(r.total(i) / lscale) for r in res.values())])
    if IO in net.parts:
        rows.append([f"{IO} (job header, input, output)", *(["", ""] if windows else []), "", "", "", "",
                     *(significant(r.total(IO) / lscale) for r in res.values())])
    out += ["", f"Per layer, total energy per inference ({lunit}):", "", markdown_table(header, rows)]

    if ref is not None:
        rows = [[COMPONENT_TITLES[e.component], e.what, significant(e.count, 6), significant(e.pj_each),
                 f"`{e.basis}`", significant(e.pj / scale)] for e in ref.events() if e.count]
        out += ["", f"Events of the {ref.scenario.title} scenario, whole network, per inference:", "",
                markdown_table(["component", "event", "count", "pJ each", "from table", f"energy ({unit})"],
                               rows, "llrrlr")]
    return out + [""]


def engine_comparison(results: Sequence[tuple[NetworkData, Mapping[str, ScenarioEnergy]]],
                      facts: Mapping[str, Mapping] | None = None) -> list[str]:
    """Markdown: each program's measured engine scenario side by side, with the dense baselines.

    Parameters
    ----------
    results : sequence of (NetworkData, dict)
        Each network with its `network_energy` output.
    facts : dict, optional
        Network name -> ``{"bits_per_weight": all-in bits, "accuracy": int8 accuracy}`` recorded
        in the program, shown in two more columns ("-" where missing).
    """
    facts = facts or {}
    pairs = [(net, res, reference_energy(res)) for net, res in results]
    pairs = [(net, res, ref) for net, res, ref in pairs if ref is not None]
    if not pairs:
        return []
    unit, scale = energy_unit(max(ref.total() for _, _, ref in pairs))
    comps = [c for c in COMPONENTS if any(ref.by_component().get(c, 0) for _, _, ref in pairs)]
    header = ["program", "method", "lanes", "scenario", "all-in bits/weight", "int8 accuracy",
              "stream bits/weight", "RTL cycles per inference", "MACs / cycle", "pulses / cycle",
              *(f"{COMPONENT_TITLES[c]} ({unit})" for c in comps),
              f"total ({unit})", f"(b) dense int8 ({unit})", f"(a) dense fp32 ({unit})"]
    rows = []
    for net, res, ref in pairs:
        comp = ref.by_component()
        dense = [significant(res[k].total() / scale) if k in res else "-" for k in ("int8", "fp32")]
        fact = facts.get(net.name, {})
        bits = significant(fact["bits_per_weight"]) if fact.get("bits_per_weight") is not None else "-"
        acc = f"{100 * fact['accuracy']:.2f} %" if fact.get("accuracy") is not None else "-"
        # Work per cycle from the RTL's cycle counter (cross-checked runs only): the engine's
        # MAC lanes, or the PVQ unit's pulses (one signed add each).
        cycles = net.cycles / net.images if net.cycles else None
        work = [sum(net.counters(i).get(k, 0) for i in range(len(net.layers))) for k in ("macs", "adds")]
        per_cycle = [significant(w / cycles) if cycles and w else "-" for w in work]
        rows.append([net.name, f"`{net.method}`", net.lanes, ref.scenario.title, bits, acc,
                     significant(ref.bits_per_weight), significant(cycles, 6) if cycles else "-", *per_cycle,
                     *(significant(comp.get(c, 0) / scale) for c in comps),
                     f"**{significant(ref.total() / scale)}**", *dense])
    return [markdown_table(header, rows)]
