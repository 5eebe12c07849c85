"""The report's universal-codebook section: one ROM for every network, against per-layer codebooks.

Energy: each universal program is priced as measured (scenario (d): the shared
codebook in ROM, no load) and as traditional VQ would run the same indices
(scenario (c): each layer's codebook read from DRAM once per inference into a
codebook SRAM).  The k-means program of the same network, whose per-layer
codebooks are in ROM, is shown beside it.  Area: the engine elaborated with the
universal ROM (`sim.report.engines.universal_engine_verilog`), synthesized like
the report's sweep, with the ROM's own share.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from sim.report.paths import UNIVERSAL_TABLE_MD

#: Scenarios shown side by side.
TRADITIONAL, ENGINE = "vq_sram", "engine"


def _uj(pj: float) -> str:
    """Picojoules as microjoules, two decimals."""
    return f"{pj / 1e6:.2f}"


def _energy_row(name: str, codebook: str, res: Mapping) -> str:
    """One table row: the engine (codebook in ROM) against traditional VQ (codebook from DRAM)."""
    rom = res[ENGINE].total()
    trad = res[TRADITIONAL].total() if TRADITIONAL in res else None
    return (f"| {name} | {codebook} | {res[ENGINE].bits_per_weight:.2f} | {_uj(rom)} | "
            f"{_uj(trad) if trad else 'n/a'} | {f'{trad / rom:.3f}x' if trad else 'n/a'} |")


def energy_lines(results: Sequence[tuple]) -> list[str]:
    """Table: per network, universal ROM vs per-layer codebooks from DRAM (and the k-means program)."""
    rows = []
    kmeans = {net.name: res for net, res in results if net.method == "kmeans"}
    for net, res in results:
        if net.method != "universal" or ENGINE not in res:
            continue
        rows.append(_energy_row(net.name, "universal, 128-entry ROM shared", res))
        base = net.name.removesuffix("-universal")
        if base in kmeans and ENGINE in kmeans[base]:
            rows.append(_energy_row(base, "k-means, per-layer codebooks in ROM", kmeans[base]))
    if not rows:
        return []
    return ["### Energy: universal ROM against per-layer codebooks loaded from DRAM", "",
            "µJ per inference from the golden model's counters (cross-checked on the RTL). "
            "*ROM* is scenario (d), the engine as built: codewords read from the on-chip ROM, nothing "
            "loaded. *From DRAM* is scenario (c), traditional VQ on the same index stream: every layer's "
            "codebook read from DRAM once per inference into a codebook SRAM, whose reads replace the "
            "ROM reads. Bits per weight are the index stream's (row headers included).", "",
            "| network | codebook | bits/weight | ROM µJ | from DRAM µJ | DRAM / ROM |",
            "|---|---|---|---|---|---|", *rows, ""]


def area_lines(record: Mapping, per_layer_entries: Mapping[str, int]) -> list[str]:
    """The universal engine's synthesis result and its ROM's share.

    Parameters
    ----------
    record : dict
        `sim.report.area.synthesis.synthesize` of the universal-ROM engine.
    per_layer_entries : dict of str to int
        Network -> ROM entries its k-means program's per-layer codebooks take.
    """
    rom = next((m for m in record.get("modules", []) if m["module"].endswith(".rom")), None)
    fmax = f"{record['fmax_mhz']:.1f}" if record.get("fmax_mhz") else f"n/a ({record.get('pnr_error')})"
    lines = ["### Area: the engine with the universal ROM", "",
             "yosys `synth_ice40` and nextpnr-ice40 (HX8K), as the sweep above; lanes 4, ROM = the "
             "shipped 128 x 4 int8 codebook. One such engine runs every universal program (`make "
             "universal` checks the Verilog is byte-identical for LeNet-300-100 and LeNet-5).", "",
             "| LUT4 | DFF | CARRY | BRAM | transistors | fmax MHz |", "|---|---|---|---|---|---|",
             f"| {record['lut4']} | {record['dff']} | {record['carry']} | {record['bram']} | "
             f"{record['transistors']:,} | {fmax} |", ""]
    if rom is not None:
        lines += [f"The ROM itself: {rom['bram']} BRAM, {rom['memory_bits']:,} bits, "
                  f"{rom['transistors']:,} transistors ({100 * rom['transistors'] / record['transistors']:.1f} % "
                  "of the engine's transistor estimate)."]
        for name, entries in per_layer_entries.items():
            lines[-1] += (f" {name}'s k-means program alone needs {entries} per-layer codewords in its ROM "
                          f"({entries / 128:.1f}x this ROM), and a chip running several networks needs them all.")
        lines.append("")
    return lines


def universal_section(results: Sequence[tuple], area_record: Mapping | None) -> list[str]:
    """Markdown of the section (empty when no universal program is reported).

    Parameters
    ----------
    results : sequence of (NetworkData, dict)
        The reported programs with their `sim.report.energy.pricing.network_energy`.
    area_record : dict or None
        `sim.report.area.synthesis.synthesize` of the universal-ROM engine, if it was synthesized.
    """
    energy = energy_lines(results)
    if not energy:
        return []
    lines = ["## Universal codebook (VQ4ALL): one ROM for every network", "",
             "Every layer of every universal program indexes the same int8 ROM of 128 codewords of "
             "dimension 4 (`model/codebooks/universal-d4-k128-v1.npz`, extracted by kernel density "
             "estimation from MiniLM, CREPE and O-Net weights; see `model/universal.py`). The networks are "
             "fitted to it by differentiable top-n assignment with a soft-to-hard schedule and per-row "
             "scales (`model/universal_fit.py`). The ROM is not charged to any network.", "", *energy]
    if area_record is not None:
        entries = {net.name: sum(layer.codebook_size for layer in net.layers)
                   for net, _ in results if net.method == "kmeans"}
        lines += area_lines(area_record, entries)
    lines += ["### Quality against bits: universal codebook and per-layer baselines", "",
              f"Model level, every network of the zoo against per-layer k-means, PQ, RQ and LR²VQ at equal bits "
              f"per weight, and the KDE parameters: [{UNIVERSAL_TABLE_MD.name}]({UNIVERSAL_TABLE_MD.name}) "
              "(`python -m scripts.experiments.universal`; machine-readable: universal_table.json).", ""]
    return lines
