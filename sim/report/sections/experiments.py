"""The report's sections of `make experiments` results: every method on the engine, MiniLM partitioned,
processing elements, the column-wise sparse layers on the engine and their cycle model.

They read what the experiment drivers wrote into ``reports/`` (``methods_table.json``,
``minilm_engine.json``, ``pes_table.json``, ``columns_engine.json``, ``sparse_columns.json``;
`scripts/experiments/methods.py`, `scripts/experiments/minilm_engine.py`, `scripts/experiments/pes.py`,
`scripts/experiments/columns_engine.py`, `scripts/experiments/sparse_columns.py`) and say so when a file is
not there: the report never runs the long sweeps itself.
"""
from __future__ import annotations

import json
from typing import Mapping, Sequence

from sim.report.paths import REPO
from sim.report.sections.pes import PES_JSON, pes_lines

METHODS_JSON = REPO / "reports" / "methods_table.json"
METHODS_MD = "methods_table.md"
PLOTS = ("methods_quality_vs_bits.png", "methods_energy_vs_quality.png")
MINILM_JSON = REPO / "reports" / "minilm_engine.json"
SPARSE_COLUMNS_JSON = REPO / "reports" / "sparse_columns.json"
SPARSE_COLUMNS_MD = "sparse_columns.md"
SPARSE_COLUMNS_PLOT = "sparse_columns.png"
COLUMNS_ENGINE_JSON = REPO / "reports" / "columns_engine.json"
COLUMNS_ENGINE_MD = "columns_engine.md"
COLUMNS_ENGINE_PLOT = "columns_engine.png"


def _load(path) -> Mapping | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def methods_lines(data: Mapping | None) -> list[str]:
    """The equal-bits table (best int8 quality per method within each budget) and the Pareto plots."""
    lines = ["## Every method on the engine, at equal bits", ""]
    if data is None:
        return lines + [f"Not run: `make experiments` writes `{METHODS_JSON.name}`.", ""]
    rows = data["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines += ["Each method's engine program on each network the sweep covers, its int8 golden quality on the whole "
              "test set, bits per weight all in, energy per inference as measured (the engine scenario of its "
              "layer modes, every stream from DRAM), run bit-exact on Verilator: "
              f"[{METHODS_MD}]({METHODS_MD}) has every point; "
              + ", ".join(f"![{p}]({p})" for p in PLOTS) + ".", ""]
    for network in dict.fromkeys(r["network"] for r in rows):
        lines += [f"**{network}**: best int8 quality within each budget (its bits/weight)", "",
                  "| bits/weight | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for t in (t for t in data["equal_bits"] if t["network"] == network):
            cells = [f"{t['best'][m]['int8_quality']:.4f} ({t['best'][m]['bits_per_weight']:.2f})"
                     if m in t["best"] else "-" for m in methods]
            lines.append(f"| <= {t['budget_bits_per_weight']:g} | " + " | ".join(cells) + " |")
        lines.append("")
    exact = sum(bool(r["bit_exact"]) for r in rows)
    lines += [f"{exact} of {len(rows)} programs ran bit-exact on Verilator.", ""]
    return lines


def minilm_lines(data: Mapping | None) -> list[str]:
    """MiniLM partitioned: the engine's Linear layers, the host's work and the boundary, apart."""
    lines = ["## MiniLM partitioned: Linear layers on the engine, the rest on the host", ""]
    if data is None:
        return lines + [f"Not run: `make experiments` writes `{MINILM_JSON.name}`.", ""]
    rtl, golden, comp = data["rtl"], data["golden"], data["compression"]
    energy = rtl["energy"]
    lines += [f"all-MiniLM-L6-v2, {data['engine_segments']} engine jobs (one per encoder Linear, the 16,384-entry "
              f"universal ROM, {data['weight_sram_kib']} KiB weight SRAM) and {data['host_segments']} host segments: "
              f"{comp['bits_per_weight']:.2f} bits/weight ({comp['ratio_vs_fp32']:.2f}x). Embedding cosine against "
              f"fp32, int8 golden model: **{golden['embedding_cosine']:.4f}** on {golden['sentences']} sentences "
              f"(min {golden['min_cosine']:.4f}). On {rtl['backend']}, {rtl['images']} sentences: bit-exact "
              f"**{rtl['bit_exact']}**, cosine {rtl['quality']['embedding_cosine']:.4f}, {rtl['cycles']:,} cycles "
              f"over {rtl['jobs']} jobs and {rtl['vectors']:,} token vectors (utilization {rtl['utilization']:.3f}).",
              "", "| per sentence | pJ |", "|---|---|"]
    for component, pj in energy["engine_by_component"].items():
        if pj:
            lines.append(f"| engine: {component} | {pj:,.0f} |")
    lines += [f"| engine total | {energy['engine_pj_per_input']:,.0f} |",
              f"| host side of the boundaries: {energy['boundary_host_dram_words_per_input']:,.0f} DRAM words | "
              f"{energy['boundary_host_dram_pj_per_input']:,.0f} |",
              f"| total priced | {energy['total_pj_per_input']:,.0f} |", "",
              "Not priced, on the host in float: " + ", ".join(energy["host_ops_not_priced"]) + ".", ""]
    return lines + minilm_variant_lines(data.get("variants", []))


def minilm_variant_lines(variants: Sequence[Mapping]) -> list[str]:
    """The flat and the staged universal ROMs side by side on MiniLM: ROM bits, bits per weight, the fit's
    float quality, the engine's int8 quality and the Verilator run."""
    if not variants:
        return []
    lines = ["**The flat and the staged universal ROMs on MiniLM.** Model level: the coded network in float "
             "(the fit's evaluation, 320 sentences). Engine: the int8 golden model, 320 sentences. Verilator: "
             "the first sentences, every job checked against the golden model.", "",
             "| ROM | ROM bits | coding | bits/weight | ratio | model level | engine (int8) | Verilator "
             "| cycles | engine energy per sentence |", "|---|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        fit, rtl, comp = v.get("fit") or {}, v["rtl"], v["compression"]
        model_level = f"{fit['quality']:.4f}" if "quality" in fit else "-"
        lines.append(f"| {v['variant']} | {v['rom_bits']:,} | {v['coding']} | {comp['bits_per_weight']:.2f} | "
                     f"{comp['ratio_vs_fp32']:.2f}x | {model_level} | **{v['golden']['embedding_cosine']:.4f}** | "
                     f"{rtl['images']} sentences, bit-exact {rtl['bit_exact']} | {rtl['cycles']:,} | "
                     f"{rtl['energy']['engine_pj_per_input'] / 1e9:.2f} mJ |")
    return lines + [""]


def sparse_columns_lines(data: Mapping | None, pes_table: Mapping | None = None) -> list[str]:
    """The column-wise sparse mode's cycle model against today's row format: per slot count (lanes x PEs), the
    measured utilization of the Deep Compression program on Verilator (``pes_table``), and each modelled design at
    its best queue depth and scan rate, with the output phase overlapped, without and with today's control cycles,
    and the control cycles the aim leaves room for."""
    lines = ["## Sparse layers column-wise: what the architecture could reach (a cycle model)", ""]
    if data is None:
        return lines + [f"Not run: `make experiments` writes `{SPARSE_COLUMNS_JSON.name}`.", ""]
    rows, control = data["rows"], data["control_cycles"]
    today = {}
    for r in (pes_table or {}).get("rows", []):
        if (r["network"], r["method"]) == (data["network"], "deepcomp") and r.get("cycles_per_inference"):
            today[r["lanes"] * r["pes"]] = r["macs_per_inference"] / (r["cycles_per_inference"] * r["lanes"] * r["pes"])
    designs = list(dict.fromkeys(r["design"] for r in rows))
    lines += [f"Useful MACs / (cycles x lanes x PEs) of {data['network']}'s Deep Compression program, over "
              f"{data['images']} test images, aim {data['aim']}. *Today*: the engine's row format, "
              "measured on Verilator (the processing-element table's steady-state image). The other columns are a "
              "cycle model of column-wise designs (`scripts/experiments/sparse_columns.py`, whose "
              "docstring lists its assumptions), each design at its best queue depth and scan rate, with the output "
              f"phase overlapped with the next layer's scan; after the slash, with today's {control} control and I/O "
              "cycles per "
              f"inference added; in brackets, the control and I/O cycles per inference the aim leaves room for. "
              f"[{SPARSE_COLUMNS_MD}]({SPARSE_COLUMNS_MD}) has every point. "
              f"![{SPARSE_COLUMNS_PLOT}]({SPARSE_COLUMNS_PLOT})", "",
              "| slots (lanes x PEs) | today | " + " | ".join(designs) + " |", "|---" * (len(designs) + 2) + "|"]
    for slots in sorted({r["slots"] for r in rows}):
        cells = []
        for design in designs:
            best = max((r for r in rows if r["slots"] == slots and r["design"] == design),
                       key=lambda r: r["utilization_overlapped"])
            cells.append(f"{best['utilization_overlapped']:.3f} / {best['utilization_overlapped_with_control']:.3f}"
                         f" [{best['control_budget_overlapped']:.0f}] (queue {best['queue']}, "
                         f"scan {best['scan_rate']})")
        measured = f"{today[slots]:.3f}" if slots in today else "-"
        lines.append(f"| {slots} | {measured} | " + " | ".join(cells) + " |")
    rtl = data.get("rtl") or []
    if rtl:
        lines += ["", "The balanced design is built as an RTL block, `hw.sparse_columns.SparseColumns` (in the engine: "
                  "the section above). Measured alone in the Amaranth simulator on the first test images, every output "
                  "bit-exact with its golden twin; its own cycles (scan, slots, pipeline, one output lane-word a "
                  "cycle), without the engine's control and I/O:", "",
                  "| slots | queue | images | cycles per layer | useful MACs / (cycles x slots) |", "|---|---|---|---|---|"]
        lines += [f"| {r['slots']} | {r['queue']} | {r['images']} | "
                  f"{' / '.join(f'{c:.0f}' for c in r['cycles_per_layer'])} | {r['utilization']:.3f} |" for r in rtl]
    return lines + [""]


def columns_engine_lines(data: Mapping | None) -> list[str]:
    """LeNet-300-100's Deep Compression program with Huffman-coded rows and column-wise in the column unit, per
    lane count: steady-state cycles, useful-MAC utilization and energy per inference, measured on Verilator."""
    lines = ["## Sparse layers column-wise on the engine (`--sparse-format columns`)", ""]
    if data is None:
        return lines + [f"Not run: `make experiments` writes `{COLUMNS_ENGINE_JSON.name}`.", ""]
    lines += [f"{data['network']}'s Deep Compression program in both sparse formats, on {data['backend']}, "
              "bit-exact with the golden model; the steady state per inference (after image 0, which loads the "
              "column-wise layers into the column unit). Utilization is useful MACs / (cycles x lanes), over the "
              f"layers' cycles and over the whole inference (aim {data['aim']}). "
              f"[{COLUMNS_ENGINE_MD}]({COLUMNS_ENGINE_MD}) ![{COLUMNS_ENGINE_PLOT}]({COLUMNS_ENGINE_PLOT})", "",
              "| lanes | format | bytes | cycles / inference | utilization, layers | utilization, inference | "
              "energy / inference (nJ) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['lanes']} | {r['format']} | {r['bytes']:,} | {r['cycles_per_inference']:,.0f} | "
              f"{r['utilization_layers']:.3f} | {r['utilization_inference']:.3f} | "
              f"{r['energy_pj_per_inference'] / 1e3:,.1f} |" for r in data["rows"]]
    return lines + [""]


def experiments_section(area_records: Sequence[Mapping] | None = None) -> list[str]:
    """The sections, from the files `make experiments` wrote; the processing elements' area cells from
    ``area_records`` (this report's area sweep), else from what the sweep recorded with each row."""
    pes_table = _load(PES_JSON)
    return (methods_lines(_load(METHODS_JSON)) + minilm_lines(_load(MINILM_JSON))
            + pes_lines(pes_table, area_records) + columns_engine_lines(_load(COLUMNS_ENGINE_JSON))
            + sparse_columns_lines(_load(SPARSE_COLUMNS_JSON), pes_table))
