"""The report's area section: per target, the sweep's cell counts, transistors and fmax, and each engine's modules."""
from __future__ import annotations

from typing import Mapping, Sequence

from sim.report.area.flow import NEXTPNR_SEED
from sim.report.area.netlist import ROM_TRANSISTORS_PER_BIT, SRAM_CELL_TRANSISTORS, SRAM_EXTRA_PORT_TRANSISTORS
from sim.report.area.targets import ICE40_HX8K, TARGETS
from sim.report.files import PLOT_AREA
from sim.report.formatting import markdown_table, significant

#: The cell columns of the tables, as the records name them.
CELL_COLUMNS = ("lut4", "dff", "carry", "bram", "dsp")
#: The engine a record measures: the codebook engine a k-means program elaborates, or every optional unit.
ENGINE_KMEANS, ENGINE_ALL_UNITS = "kmeans", "all-units"
#: Column titles of the cell columns, per target.
CELL_TITLES = {
    "ice40-hx8k": ("LUT4", "DFF", "CARRY", "BRAM (SB_RAM40_4K)", "DSP (SB_MAC16)"),
    "ecp5-85f": ("LUT4", "FF", "CARRY (CCU2C, 2 bits)", "EBR (DP16KD)", "DSP (MULT18X18D)"),
}
#: The issue's timing goal on the iCE40: this fmax at lanes 4, one processing element, the k-means engine.
ICE40_GOAL_MHZ = 60


def target_of(record: Mapping) -> str:
    """A record's target (records written before targets existed are the iCE40's)."""
    return record.get("target", ICE40_HX8K.name)


def _fmax(r: Mapping) -> str:
    return (significant(r["fmax_mhz"], 4) if r.get("fmax_mhz") is not None
            else "does not fit / no result: " + str(r.get("pnr_error")))


def _flow_lines(records: Sequence[Mapping]) -> list[str]:
    """How the numbers are made: the tools, their options, and which versions ran."""
    devices = "; ".join(f"`{t.name}`: yosys `{t.synth}`, `{t.nextpnr[0]} {' '.join(t.device)}`" for t in TARGETS.values())
    versions = sorted({(r.get("tools", {}).get("yosys", "unknown"), r.get("tools", {}).get("nextpnr", "unknown"))
                       for r in records})
    return [
        f"Flow (sim/report/area/), per configuration and target ({devices}): the flattened synthesis for the "
        f"cell counts; nextpnr `--timing-allow-fail --seed {NEXTPNR_SEED}` for fmax, "
        "the slowest clock's achieved frequency from the `--report` JSON. Place-and-route runs on the "
        "mapped netlist in a wrapper (every input fed from a shift register, every output folded "
        "into a pipelined tree of registered XORs), so fmax is the core's register-to-register "
        "frequency whatever its pin count; the wrapper's cells are in the placed design but not in "
        "the counts. One placement per configuration, so expect some seed-to-seed noise. "
        "Transistors (the same for every target): yosys `synth` + `abc -g cmos2` + `stat -tech cmos`. "
        "`synth_ecp5` maps multipliers to the MULT18X18D DSP blocks (the MAC lanes' products); "
        "the iCE40 HX8K has none, so there every multiplier is LUT4s.",
        "",
        "The engine swept is the one a k-means program elaborates (`vqe verilog --program`): the codebook "
        "path, no optional unit, no weight SRAM (its area is given on its own, computed). A configuration "
        "that does not fit the device has its synthesis counts and no fmax.",
        "",
        "Tools: " + "; ".join(f"{y}, {n}" for y, n in versions) + ".",
        "",
    ]


def _sweep_table(records: Sequence[Mapping], target: str) -> str:
    """One row per configuration of one target: cells, transistors, fmax and the tools' time."""
    header = ["lanes", "PEs", "codebook depth", *CELL_TITLES.get(target, CELL_COLUMNS), "transistors",
              "fmax (MHz)", "tool time (s)"]
    rows = []
    for r in sorted(records, key=lambda r: (r["lanes"], r.get("pes", 1), r["codebook_depth"])):
        secs = r.get("seconds", {})
        tr = f"{r['transistors']:,}" + ("" if r.get("transistors_exact", True) else " (lower bound)")
        rows.append([r["lanes"], r.get("pes", 1), r["codebook_depth"], *(r[k] for k in CELL_COLUMNS),
                     tr, _fmax(r), significant(sum(secs.values())) if secs else "-"])
    return markdown_table(header, rows)


def _goal_lines(records: Sequence[Mapping]) -> list[str]:
    """The iCE40 timing goal (lanes 4, one PE, the k-means engine), met or not, and the all-units engine."""
    out = []
    head = [r for r in records if target_of(r) == ICE40_HX8K.name and r.get("engine", ENGINE_KMEANS) == ENGINE_KMEANS
            and r["lanes"] == 4 and r.get("pes", 1) == 1]
    for r in sorted(head, key=lambda r: r["codebook_depth"]):
        f = r.get("fmax_mhz")
        verdict = ("does not fit the HX8K" if f is None else
                   f"{significant(f, 4)} MHz, goal of {ICE40_GOAL_MHZ} MHz " + ("met" if f >= ICE40_GOAL_MHZ else "**missed**"))
        out.append(f"- iCE40 HX8K, k-means engine, lanes 4, 1 PE, codebook depth {r['codebook_depth']}: {verdict}.")
    full = [r for r in records if r.get("engine") == ENGINE_ALL_UNITS]
    for r in sorted(full, key=lambda r: target_of(r)):
        fits = r.get("fmax_mhz") is not None
        out.append(f"- Engine with every optional unit (lanes {r['lanes']}), {target_of(r)}: "
                   f"{r['lut4']:,} LUT4, {r['dff']:,} FF, {r['bram']} block RAMs, {r['dsp']} DSP; "
                   + (f"fmax {significant(r['fmax_mhz'], 4)} MHz." if fits else
                      f"**does not fit** ({r.get('pnr_error')})."))
    return out + [""] if out else []


def _pes_engine_lines(records: Sequence[Mapping]) -> list[str]:
    """The universal-ROM and Deep Compression engines against processing elements, when synthesized."""
    mine = [r for r in records if r.get("engine") not in (ENGINE_KMEANS, ENGINE_ALL_UNITS, None)]
    if not mine:
        return []
    rows = [[r["engine"], target_of(r), r["lanes"], r.get("pes", 1), r["codebook_depth"],
             *(f"{r[k]:,}" for k in CELL_COLUMNS), _fmax(r)]
            for r in sorted(mine, key=lambda r: (r["engine"], target_of(r), r.get("pes", 1)))]
    targets = {target_of(r) for r in mine}
    titles = CELL_TITLES.get(targets.pop(), CELL_COLUMNS) if len(targets) == 1 else CELL_COLUMNS
    return ["### Other methods' engines against processing elements", "",
            "The engine a universal program and LeNet-300-100's Deep Compression program elaborate (their ROMs, "
            "the Huffman decoder for Deep Compression), without the weight SRAM, at each P "
            "(`sim.report.engines.PES_ENGINES`); the processing-element section quotes them.", "",
            markdown_table(["engine", "target", "lanes", "PEs", "codebook depth", *titles, "fmax (MHz)"], rows),
            ""]


def _missing_lines(records: Sequence[Mapping]) -> list[str]:
    """The default grid's configurations (at the PE counts the records have) that have no record."""
    from sim.report.area.sweep import SWEEP_DEPTHS, SWEEP_LANES, sweep_points
    swept = [r for r in records if r.get("engine", ENGINE_KMEANS) == ENGINE_KMEANS]
    have = {(target_of(r), r["lanes"], r.get("pes", 1), r["codebook_depth"]) for r in swept}
    pes = sorted({r.get("pes", 1) for r in swept})
    missing = [p for p in sweep_points(SWEEP_LANES, SWEEP_DEPTHS, pes)
               if (p.target.name, p.lanes, p.pes, p.codebook_depth) not in have]
    if not missing or len(have) <= 2:   # a --quick report is the headline alone, on purpose
        return []
    return ["Not synthesized for this report (not in the cache; `vqe report --area-only` without "
            "`--cached-only` runs them): " + ", ".join(f"{p.target.name} lanes {p.lanes} PEs {p.pes} depth "
                                                       f"{p.codebook_depth}" for p in missing) + ".", ""]


def _tool_time_lines(records: Sequence[Mapping]) -> list[str]:
    """The tools' time per configuration, as first measured (empty if no record has timings)."""
    times = [sum(r["seconds"].values()) for r in records if r.get("seconds")]
    if not times:
        return []
    span = (f"{significant(min(times))} s" if len(times) == 1
            else f"{significant(min(times))} s to {significant(max(times))} s")
    return [f"Tool time (yosys, wrapper synthesis, nextpnr, and the transistor estimate the first time a design "
            f"is seen) per configuration, as measured when each result was first computed (later runs reuse the "
            f"cache): {span}; {significant(sum(times))} s summed over the {len(times)} configuration(s).", ""]


def _module_table(record: Mapping) -> str:
    """One configuration's modules (own cells times instances), their sum and the flat totals."""
    mods = record.get("modules") or []
    rows = [[f"`{m['module']}`", m["instances"], *(m[k] for k in CELL_COLUMNS),
             f"{m['transistors']:,}", f"{m.get('memory_bits', 0):,}"] for m in mods]
    sums = [sum(m[k] for m in mods) for k in (*CELL_COLUMNS, "transistors")]
    rows.append(["**sum of modules**", "", *sums[:5], f"{sums[5]:,}", ""])
    rows.append(["**flat total**", "", *(record[k] for k in CELL_COLUMNS), f"{record['transistors']:,}", ""])
    return markdown_table(["module", "instances", "LUT4", "FF", "CARRY", "BRAM", "DSP", "transistors",
                           "memory bits"], rows)


def _breakdown_lines(records: Sequence[Mapping]) -> list[str]:
    """Per-module breakdowns, largest configuration first and open, the others folded."""
    out = ["Per-module breakdown: each module's own cells times its instances, from a separate "
           "synthesis that keeps the hierarchy. Flattening lets yosys optimise across module "
           "boundaries (e.g. fold constant ROM bits into the multipliers), so the cell columns can "
           "sum to more than the flat totals: read them as proportions. The transistor estimate "
           "comes from hierarchical synthesis only, so its rows add up to the total.", ""]
    ordered = sorted(records, key=lambda r: (target_of(r), -r["lanes"], -r.get("pes", 1), -r["codebook_depth"]))
    for n, r in enumerate(ordered):
        table = _module_table(r)
        title = (f"{target_of(r)}, {r.get('engine', ENGINE_KMEANS)} engine, lanes {r['lanes']}, "
                 f"{r.get('pes', 1)} PE(s), codebook depth {r['codebook_depth']}")
        if n == 0:
            out += [f"**{title}**", "", table, ""]
        else:
            out += [f"<details><summary>{title}</summary>", "", table, "", "</details>", ""]
    return out


def area_section(records: Sequence[Mapping]) -> list[str]:
    """Markdown: area and fmax of every synthesized configuration per target, the flow, and the area assumptions.

    Parameters
    ----------
    records : sequence of dict
        Area records (`sim.report.area.sweep.sweep`, with ``engine``); may be empty.
    """
    out = ["## Area and fmax", ""]
    if not records:
        return out + ["No area results were supplied to this report.", ""]
    out += _flow_lines(records)
    out += _goal_lines(records)
    swept = [r for r in records if r.get("engine", ENGINE_KMEANS) == ENGINE_KMEANS]
    for name in [*TARGETS, *sorted({target_of(r) for r in swept} - set(TARGETS))]:
        mine = [r for r in swept if target_of(r) == name]
        if mine:
            out += [f"### {name}", "", _sweep_table(mine, name), ""]
    out += _pes_engine_lines(records)
    out += _missing_lines(records)
    out += [f"![area and fmax vs lanes]({PLOT_AREA})", "",
            "*Figure: LUT4 cells (flat synthesis) and fmax in MHz (nextpnr), and transistors "
            "(CMOS gates plus memories priced per bit, see the notes below), against lanes; one line per "
            "target and codebook depth (one processing element), and per target and PE count at depth 256.*", ""]
    out += _tool_time_lines(records)
    out += _breakdown_lines(records)
    out += [
        "Area notes and assumptions:",
        "",
        "- DSP: the iCE40 HX8K has no SB_MAC16 blocks, so its multipliers are LUT4s; on the ECP5 "
        "`synth_ecp5` maps the multiplies written as `*` (the MAC lanes) to MULT18X18D blocks. The "
        "requantizer's 32 x 16 multiply is written as radix-4 shift-and-add rows (for the iCE40) and "
        "stays in LUT4s on both.",
        f"- Transistors: logic from yosys' CMOS gate prices (NAND/NOR 4, NOT 2, flip-flop 16). "
        f"Memories are kept as macros and priced per bit (assumptions): ROM {ROM_TRANSISTORS_PER_BIT} "
        f"transistor/bit (mask ROM), RAM {SRAM_CELL_TRANSISTORS} transistors/bit for one port plus "
        f"{SRAM_EXTRA_PORT_TRANSISTORS} per additional port; decoders and sense amplifiers are not "
        "counted. \"lower bound\" marks a design with gates yosys could not price.",
        "",
    ]
    return out
