"""The report's area section: the sweep's cell counts, transistors and fmax, and each engine's modules."""
from __future__ import annotations

from typing import Mapping, Sequence

from sim.report.area.flow import NEXTPNR_DEVICE, NEXTPNR_SEED
from sim.report.area.netlist import ROM_TRANSISTORS_PER_BIT, SRAM_CELL_TRANSISTORS, SRAM_EXTRA_PORT_TRANSISTORS
from sim.report.files import PLOT_AREA
from sim.report.formatting import markdown_table, significant

#: The iCE40 cell columns of the tables, as the records name them.
CELL_COLUMNS = ("lut4", "dff", "carry", "bram", "dsp")


def _flow_lines(tools: Mapping) -> list[str]:
    """How the numbers are made: the tools, their options, and which versions ran."""
    return [
        "Flow (sim/report/area/), per configuration: yosys `synth_ice40`, flattened, for the cell counts; "
        f"nextpnr-ice40 `{' '.join(NEXTPNR_DEVICE)} --timing-allow-fail --seed {NEXTPNR_SEED}` for fmax, "
        "the slowest clock's achieved frequency from the `--report` JSON. Place-and-route runs on the "
        "mapped netlist in a wrapper (every input fed from a shift register, every output folded "
        "into a pipelined tree of registered XORs), so fmax is the core's register-to-register "
        "frequency whatever its pin count; the wrapper's cells are in the placed design but not in "
        "the counts. One placement per configuration, so expect some seed-to-seed noise. "
        "Transistors: yosys `synth` + `abc -g cmos2` + `stat -tech cmos`.",
        "",
        f"Tools: {tools.get('yosys', 'unknown')}; {tools.get('nextpnr', 'unknown')}.",
        "",
    ]


def _sweep_table(records: Sequence[Mapping]) -> str:
    """One row per configuration: cells, transistors, fmax and the tools' time."""
    header = ["lanes", "codebook depth", "LUT4", "DFF", "CARRY", "BRAM (SB_RAM40_4K)", "DSP (SB_MAC16)",
              "transistors", "fmax (MHz)", "tool time (s)"]
    rows = []
    for r in sorted(records, key=lambda r: (r["lanes"], r["codebook_depth"])):
        secs = r.get("seconds", {})
        fmax = significant(r["fmax_mhz"], 4) if r.get("fmax_mhz") is not None else "n/a: " + str(r.get("pnr_error"))
        tr = f"{r['transistors']:,}" + ("" if r.get("transistors_exact", True) else " (lower bound)")
        rows.append([r["lanes"], r["codebook_depth"], *(r[k] for k in CELL_COLUMNS),
                     tr, fmax, significant(sum(secs.values())) if secs else "-"])
    return markdown_table(header, rows)


def _tool_time_lines(records: Sequence[Mapping]) -> list[str]:
    """The tools' time per configuration, as first measured (empty if no record has timings)."""
    times = [sum(r["seconds"].values()) for r in records if r.get("seconds")]
    if not times:
        return []
    span = (f"{significant(min(times))} s" if len(times) == 1
            else f"{significant(min(times))} s to {significant(max(times))} s")
    return [f"Tool time (yosys iCE40, yosys CMOS, wrapper synthesis, nextpnr) per configuration, "
            f"as measured when each result was first computed (later runs reuse the cache): {span}; "
            f"{significant(sum(times))} s summed over the {len(times)} configuration(s).", ""]


def _module_table(record: Mapping) -> str:
    """One configuration's modules (own cells times instances), their sum and the flat totals."""
    mods = record.get("modules") or []
    rows = [[f"`{m['module']}`", m["instances"], *(m[k] for k in CELL_COLUMNS),
             f"{m['transistors']:,}", f"{m.get('memory_bits', 0):,}"] for m in mods]
    sums = [sum(m[k] for m in mods) for k in (*CELL_COLUMNS, "transistors")]
    rows.append(["**sum of modules**", "", *sums[:5], f"{sums[5]:,}", ""])
    rows.append(["**flat total**", "", *(record[k] for k in CELL_COLUMNS), f"{record['transistors']:,}", ""])
    return markdown_table(["module", "instances", "LUT4", "DFF", "CARRY", "BRAM", "DSP", "transistors",
                           "memory bits"], rows)


def _breakdown_lines(records: Sequence[Mapping]) -> list[str]:
    """Per-module breakdowns, largest configuration first and open, the others folded."""
    out = ["Per-module breakdown: each module's own cells times its instances, from a separate "
           "synthesis that keeps the hierarchy. Flattening lets yosys optimise across module "
           "boundaries (e.g. fold constant ROM bits into the multipliers), so the iCE40 columns can "
           "sum to more than the flat totals: read them as proportions. The transistor estimate "
           "comes from hierarchical synthesis only, so its rows add up to the total.", ""]
    ordered = sorted(records, key=lambda r: (-r["lanes"], -r["codebook_depth"]))
    for n, r in enumerate(ordered):
        table = _module_table(r)
        title = f"lanes {r['lanes']}, codebook depth {r['codebook_depth']}"
        if n == 0:
            out += [f"**{title}**", "", table, ""]
        else:
            out += [f"<details><summary>{title}</summary>", "", table, "", "</details>", ""]
    return out


def area_section(records: Sequence[Mapping]) -> list[str]:
    """Markdown: area and fmax of every synthesized configuration, the flow, and the area assumptions.

    Parameters
    ----------
    records : sequence of dict
        Area records (`sim.report.area.sweep.sweep`); may be empty.
    """
    out = ["## Area and fmax", ""]
    if not records:
        return out + ["No area results were supplied to this report.", ""]
    out += _flow_lines(records[0].get("tools", {}))
    out += [_sweep_table(records), "", f"![area and fmax vs lanes]({PLOT_AREA})", "",
            "*Figure: iCE40 LUT4 cells (flat synthesis) and fmax in MHz (nextpnr, HX8K), and "
            "transistors (CMOS gates plus memories priced per bit, see the notes below), against "
            "lanes; one line per codebook depth.*", ""]
    out += _tool_time_lines(records)
    out += _breakdown_lines(records)
    out += [
        "Area notes and assumptions:",
        "",
        "- DSP: the iCE40 HX8K has no SB_MAC16 blocks and `synth_ice40` runs without `-dsp`, so "
        "multipliers are built from LUT4s and the DSP column counts what the netlist instantiates.",
        f"- Transistors: logic from yosys' CMOS gate prices (NAND/NOR 4, NOT 2, flip-flop 16). "
        f"Memories are kept as macros and priced per bit (assumptions): ROM {ROM_TRANSISTORS_PER_BIT} "
        f"transistor/bit (mask ROM), RAM {SRAM_CELL_TRANSISTORS} transistors/bit for one port plus "
        f"{SRAM_EXTRA_PORT_TRANSISTORS} per additional port; decoders and sense amplifiers are not "
        "counted. \"lower bound\" marks a design with gates yosys could not price.",
        "",
    ]
    return out
