"""The report's section of processing elements (issue 16, item 7): cycles, energy and area against P.

It reads what `scripts/experiments/pes.py` (``make experiments``) wrote, ``reports/pes_table.json``, and says so
when the file is not there: the report never runs the sweep itself.  Area and fmax come from the area records
(`vqe report`'s, or ``reports/area.json``), looked up by (engine, target, lanes, P, codebook depth) when the table is
drawn, so a later synthesis fills cells that said "not synthesized".
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from sim.report.paths import REPO

PES_JSON = REPO / "reports" / "pes_table.json"
PES_MD = "pes_table.md"
PES_PLOT = "pes_scaling.png"
HEADING = "## Processing elements: cycles, energy and area against P"
#: Area targets, in the table's order (`sim.report.area.targets`); records without a target are the iCE40's.
AREA_TARGETS = ("ice40-hx8k", "ecp5-85f")
#: The area sweep's engine, the one a k-means program elaborates (`sim.report.sections.area.ENGINE_KMEANS`).
AREA_ENGINE = "kmeans"
NOT_SYNTHESIZED = "not synthesized"


def area_index(records: Sequence[Mapping]) -> dict:
    """The area records by (engine, target, lanes, pes, codebook depth): the sweep's (k-means engine) and the
    other methods' engines (`sim.report.engines.PES_ENGINES`); records written before targets and PEs existed
    are the iCE40's, with one PE."""
    return {(r.get("engine", AREA_ENGINE), r.get("target", AREA_TARGETS[0]), r["lanes"], r.get("pes", 1),
             r["codebook_depth"]): r for r in records}


def area_of(index: Mapping, row: Mapping) -> dict:
    """Per target, ``{lut4, dff, bram, dsp, fmax_mhz, pnr_error}`` of the engine a table row ran, or None when it was
    not synthesized: the k-means sweep's engine for k-means programs, the method's own engine for the others
    synthesized (universal and Deep Compression, on the ECP5)."""
    out = {}
    for target in AREA_TARGETS:
        r = index.get((row["method"], target, row["lanes"], row["pes"], row["codebook_depth"]))
        out[target] = None if r is None else {k: r.get(k) for k in ("lut4", "dff", "bram", "dsp", "fmax_mhz",
                                                                     "pnr_error")}
    return out


def area_cell(a: Mapping | None) -> str:
    """One target's "LUT4, fmax" of a row, "does not place" when place and route failed, or `NOT_SYNTHESIZED`."""
    if a is None:
        return NOT_SYNTHESIZED
    fmax = f"{a['fmax_mhz']:.1f} MHz" if a.get("fmax_mhz") else "does not place"
    return f"{a['lut4']:,} LUT4, {fmax}"


def _num(v, fmt="{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def table_lines(rows: Sequence[Mapping], area_records: Sequence[Mapping] | None = None) -> list[str]:
    """The table, one line per program and P: cycles and energy per inference, speedup, scaling efficiency, and
    area per target (from ``area_records``, or each row's own ``area`` when None)."""
    index = None if area_records is None else area_index(area_records)
    lines = ["| network | method | P | cycles / inference | speedup | scaling efficiency | energy / inference (nJ) "
             "| " + " | ".join(f"area {t}" for t in AREA_TARGETS) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(AREA_TARGETS)]
    for r in rows:
        if r.get("refused"):
            cells = [f"refused: {r['refused']}", "-", "-", "-"]
        else:
            cells = [_num(r["cycles_per_inference"]), _num(r["speedup"], "{:.2f}x"),
                     _num(r["scaling_efficiency"], "{:.3f}"), _num(r["energy_pj_per_inference"] / 1000, "{:,.1f}")]
        area = r.get("area", {}) if index is None else area_of(index, r)
        lines.append(f"| {r['network']} | {r['method']} | {r['pes']} | " + " | ".join(cells) + " | "
                     + " | ".join(area_cell(area.get(t)) for t in AREA_TARGETS) + " |")
    return lines


def summary_line(rows: Sequence[Mapping]) -> str:
    """How many runs were measured and bit-exact, and which programs the layout refused above one PE."""
    measured = [r for r in rows if not r.get("refused")]
    exact = sum(r.get("bit_exact") is True for r in measured)
    refused = list(dict.fromkeys(f"{r['network']}-{r['method']}" for r in rows if r.get("refused")))
    backends = ", ".join(sorted({r["backend"] for r in measured})) or "-"
    line = (f"{len(measured)} runs measured, {exact} of them bit-exact on {backends} (jobs of 1 and 2 images, "
            "outputs and every counter)")
    if refused:
        line += f"; refused above one PE by the layout (`lay_out_for_pes`): {', '.join(refused)}"
    return line + "."


def pes_lines(data: Mapping | None, area_records: Sequence[Mapping] | None = None) -> list[str]:
    """The section: what is measured, the summary, the table and the plot."""
    lines = [HEADING, ""]
    if data is None:
        return lines + [f"Not run: `make experiments` writes `{PES_JSON.name}`.", ""]
    rows = data["rows"]
    lines += ["Each program of the report laid out for P processing elements (what `vqe compress --pes P` writes), "
              "at the default weight SRAM. Cycles and energy are per inference, the second image of a job (the "
              "steady state: resident layers are loaded from DRAM during the first image): the difference of a "
              "2-image and a 1-image job, both on the RTL. Energy: the engine scenario on the golden model's counters "
              "with the RTL's cycles per layer. Scaling efficiency = cycles(1) / (P x cycles(P)). Area: the engine "
              "the program's method elaborates at its lanes, P and codebook depth, without the weight SRAM: the "
              "area sweep's for k-means, on both targets; the universal-ROM and Deep Compression engines on the "
              "ECP5, and the universal one at P = 1 on the HX8K too (`sim.report.engines.PES_ENGINES`). The "
              "engines have no window unit (the convolutional networks' programs add one). "
              f"[{PES_MD}]({PES_MD}) (written by `scripts/experiments/pes.py`), ![{PES_PLOT}]({PES_PLOT})", "",
              summary_line(rows), "", *table_lines(rows, area_records), ""]
    return lines


def replace_section(md_path: str | Path, lines: Sequence[str]) -> None:
    """Put ``lines`` (a section: its ``## `` heading first) in ``md_path`` in place of the one with that heading
    there, or at its end."""
    path = Path(md_path)
    old = path.read_text().split("\n")
    heading = lines[0]
    if heading in old:
        start = old.index(heading)
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
    else:
        while old and not old[-1]:
            old.pop()
        old.append("")
        start = end = len(old)
    path.write_text("\n".join(old[:start] + list(lines) + old[end:]).rstrip() + "\n")
