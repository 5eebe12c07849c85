"""The report's PVQ section: PVQ against k-means VQ on energy, accuracy and area.

Energy: each reported program's measured engine side by side (`engine_comparison`).
Accuracy: the tables ``python -m scripts.experiments.pvq`` writes (LeNet-300-100 on the
engine, ``reports/pvq_table.json``; every zoo network at model level with ``--zoo``,
``reports/pvq_zoo.json``), with their plots.  Area: the PVQ unit against the codebook
MAC path in one synthesized engine (`sim.report.engines.pvq_engine_verilog`).

The zoo table (`zoo_markdown`, with `ZOO_SECONDARY_METRIC`) is also what the
experiment driver stores in ``reports/pvq_zoo.json``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from sim.report.files import PLOT_PVQ, PLOT_PVQ_ZOO
from sim.report.plots import plot_pvq_accuracy, plot_pvq_zoo
from sim.report.sections.energy import engine_comparison

#: A second metric shown beside the headline one where the headline barely separates the
#: methods: MTCNN's ``fidelity_1px`` stays near 0.6 for every coding (its 1-pixel box test
#: fails on most faces), while ``face_agreement`` (face decisions equal to fp32's) does not.
ZOO_SECONDARY_METRIC = {"onet": "face_agreement", "rnet": "face_agreement"}
#: Blocks of the engine compared in the area table: (name, module prefixes).
AREA_BLOCKS = (("PVQ unit", ("vqe_engine.pvq",)), ("codebook ROM + MAC lanes", ("vqe_engine.mac", "vqe_engine.rom")))

#: The energy part's text, before the engines side by side.
ENERGY_TEXT = (
    "Each reported program's engine as measured (its counters, golden model, cross-checked on the "
    "RTL) side by side: the k-means program reads codewords from the ROM and multiplies, the "
    "PVQ program adds one activation per pulse and multiplies once per sub-vector by its "
    "scale, with no codebook. The dense baselines come from the layer shapes alone, so "
    "programs of one network share them. All-in bits per weight and int8 accuracy (golden "
    "model, full test set) are those each program recorded when compressed; stream bits per "
    "weight count the row-stream entries only (the energy figure's bits). Cycles are the RTL's "
    "over the cross-checked inputs (whole job, so including descriptor fetches and per-row "
    "overhead); MACs and pulses per cycle divide the network's counts by them. Energy at equal bits: "
    "compare programs of (near) equal all-in bits, e.g. k-means on 4 lanes against PVQ on 8 "
    "lanes at a 2-bit budget (`vqe compress --network lenet300 --method pvq --lanes 8 "
    "--bits-per-weight 2`).")


def method_label(method: str, dim: int) -> str:
    """A zoo table column's method: "k-means d=4", "PVQ N=8"."""
    return f"k-means d={dim}" if method == "kmeans" else f"PVQ N={dim}"


def zoo_markdown(networks: list[dict]) -> str:
    """Table: network x budget, each method's all-in bits per weight and the network's metric.

    Where `ZOO_SECONDARY_METRIC` names one, its value follows in parentheses.

    Parameters
    ----------
    networks : list of dict
        The ``networks`` of ``reports/pvq_zoo.json``: ``network``, ``metric_name``,
        ``float_metric`` and ``rows`` (``method``, ``dim``, ``budget``, ``skipped``,
        ``bits_per_weight``, ``metric``, ``metrics``).
    """
    configs = []
    for net in networks:
        for r in net["rows"]:
            if (r["method"], r["dim"]) not in configs:
                configs.append((r["method"], r["dim"]))
    header = ["network (metric, fp32)", "budget"]
    for method, dim in configs:
        header += [f"{method_label(method, dim)} bits/w", f"{method_label(method, dim)} metric"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for net in networks:
        second = ZOO_SECONDARY_METRIC.get(net["network"])
        label = net["metric_name"] + (f" ({second})" if second else "")
        for bits in sorted({r["budget"] for r in net["rows"]}):
            cells = [f"{net['network']} ({label}, fp32 {net['float_metric']:.4f})", f"{bits:g}"]
            for method, dim in configs:
                r = next((r for r in net["rows"] if (r["method"], r["dim"], r["budget"]) == (method, dim, bits)),
                         None)
                if r is None:
                    cells += ["-", "-"]
                elif r["skipped"]:
                    cells += [f"needs {r['bits_per_weight']:.2f}", "-"]
                else:
                    value = r.get("metrics", {}).get(second) if second else None
                    extra = f" ({value:.4f})" if value is not None else ""
                    cells += [f"{r['bits_per_weight']:.3f}", f"{r['metric']:.4f}{extra}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pvq_accuracy_lines(t: Mapping) -> list[str]:
    """The LeNet-300-100 accuracy table (engine flow, fine-tuned, int8) of ``reports/pvq_table.json``."""
    return [f"### Accuracy against bits: {t['network']} on the engine", "",
            f"Accuracy on the {t['test_images']} Fashion-MNIST test images of {t['network']} "
            f"(float network {100 * t['float_accuracy']:.2f} %), both methods with "
            f"{t['finetune_epochs']} fine-tuning epochs and {t['calibration_images']} calibration images. "
            "Bits per weight count everything stored: index and 8-bit scale (PVQ) or index and "
            "codebook (VQ), plus the 64-bit bias and requantization words of every row. "
            f"Regenerate with `python -m scripts.experiments.pvq reports/pvq_table.json` "
            f"(took {t['total_seconds'] / 60:.0f} min).", "", t["table_markdown"], "",
            f"![PVQ against k-means VQ: accuracy against bits per weight]({PLOT_PVQ})", "",
            "*Figure: the table above; left the int8 golden model after fine-tuning (what the engine "
            "computes), right the float network before any fine-tuning.*", ""]


def _not_run(z: Mapping) -> str:
    """The sentence naming each (network, budget) the zoo run skipped, and why (empty if none)."""
    missing = [(n, b) for n in z["networks"] for b in z["budgets"]
               if not any(r["budget"] == b for r in n["rows"])]
    if not missing:
        return ""

    def highest_kmeans(net):
        runs = [r for r in net["rows"] if r["method"] == "kmeans" and not r["skipped"]]
        return max(runs, key=lambda r: r["budget"]) if runs else None

    parts = []
    for net, b in missing:
        prev = highest_kmeans(net)
        why = (f" (its k-means at {prev['budget']:g} bits took {prev['quantize_seconds'] / 60:.0f} min; "
               f"each further bit per weight multiplies its codebooks by {2 ** z['kmeans_d']})") if prev else ""
        parts.append(f"{net['network']} at {b:g} bits{why}")
    return " Not run: " + "; ".join(parts) + "."


def pvq_zoo_lines(z: Mapping) -> list[str]:
    """The zoo table (model level, every weight layer) of ``reports/pvq_zoo.json``."""
    evals = "; ".join(f"{n['network']}: {n['description']}" for n in z["networks"])
    seconds = [(n["network"], ZOO_SECONDARY_METRIC[n["network"]]) for n in z["networks"]
               if n["network"] in ZOO_SECONDARY_METRIC]
    second = (" Where the headline metric hardly separates the codings, a second one follows in parentheses "
              "and is the one plotted: " + ", ".join(f"{n} `{m}`" for n, m in seconds)
              + " (MTCNN's `fidelity_1px` stays near 0.6 for every coding; `face_agreement` is the fraction "
              "of face decisions equal to fp32's).") if seconds else ""
    return ["### Accuracy against bits: every network of the zoo", "",
            "Model level (float weights equal to what the coded form stores; the engine runs only "
            "fully-connected layers): every weight layer, Linear and convolution alike, coded per layer "
            "at each budget, with no fine-tuning for either method. k-means: sub-vectors of "
            f"{z['kmeans_d']} weights, the largest power-of-two codebook within the budget, int8 "
            f"codewords (codebooks fitted on at most {z['fit_vectors_per_codeword']} random sub-vectors "
            "per codeword, every sub-vector then assigned to its nearest stored codeword). PVQ: the "
            "largest K within the budget, 8-bit scale per sub-vector and a float32 scale per row; a "
            "layer that cannot meet the budget with K = 1 takes K = 1. All-in bits per weight count "
            f"entries, codebooks or row scales and a {z['bias_bits']}-bit bias per output; 'needs x' "
            "marks a method that cannot meet the budget on the network at all (not run). Each metric "
            "is the network's own (higher is better) on its full evaluation set, MiniLM's being 320 "
            f"sentences. Regenerate with `python -m scripts.experiments.pvq --zoo reports/pvq_zoo.json` "
            f"(took {z['total_seconds'] / 60:.0f} min on one thread).{_not_run(z)}{second}", "",
            zoo_markdown(z["networks"]), "",
            f"![PVQ against k-means VQ on every zoo network]({PLOT_PVQ_ZOO})", "",
            f"*Figure: the table above, one panel per network.* Metrics: {evals}.", ""]


def _block_area(record: Mapping, prefixes: Sequence[str]) -> dict:
    """Cells and transistors of the modules at or under any of ``prefixes``, summed."""
    rows = [r for r in record["modules"] if any(r["module"] == p or r["module"].startswith(p + ".")
                                                 for p in prefixes)]
    return {k: sum(r.get(k, 0) for r in rows) for k in ("lut4", "dff", "carry", "bram", "transistors")}


def pvq_area_lines(record: Mapping | None, lanes: int, depth: int, k_max: int) -> list[str]:
    """The PVQ unit against the codebook MAC path, in one engine that has both.

    Parameters
    ----------
    record : dict or None
        `sim.report.area.synthesis.synthesize` of that engine; None if it is not synthesized (``vqe report
        --cached-only`` without it in the cache).
    lanes, depth : int
        Its lanes and codebook depth.
    k_max : int
        Largest K of its PVQ unit.
    """
    lines = ["### Area", "",
             f"Area (iCE40 cells from yosys `synth_ice40`, transistors from `stat -tech cmos`) of the "
             f"lanes={lanes} engine's PVQ unit (`PvqDotProduct`, K up to {k_max}, with its V(n, k) "
             f"table ROM) against its codebook MAC path (`MacLanes` with the {depth}-entry `CodebookRom`), "
             "in one elaborated engine that has both:", "",
             "| block | LUT4 | DFF | CARRY | BRAM | transistors |", "|---|---:|---:|---:|---:|---:|"]
    if record is None:
        return lines[:3] + ["Not synthesized: this engine is not in the area cache (`make reports` runs the tools).", ""]
    for name, prefixes in AREA_BLOCKS:
        b = _block_area(record, prefixes)
        lines.append(f"| {name} | {b['lut4']} | {b['dff']} | {b['carry']} | {b['bram']} | {b['transistors']:,} |")
    lines += ["", f"The whole engine with both paths: {record['lut4']} LUT4, {record['dff']} DFF, fmax "
              + (f"{record['fmax_mhz']:.1f} MHz" if record.get("fmax_mhz") else "n/a (did not place on the HX8K)")
              + ".", ""]
    return lines


def pvq_section(results: Sequence[tuple], facts: Mapping[str, Mapping], accuracy: Mapping | None,
                zoo: Mapping | None) -> tuple[list[str], dict[str, bytes]]:
    """Markdown of the section but its area part (`pvq_area_lines`), and the plots it shows.

    Parameters
    ----------
    results : sequence of (NetworkData, dict)
        The reported programs with their `sim.report.energy.pricing.network_energy`.
    facts : dict
        Network name -> `sim.report.programs.program_facts`.
    accuracy : dict or None
        ``reports/pvq_table.json``, if present.
    zoo : dict or None
        ``reports/pvq_zoo.json``, if present.

    Returns
    -------
    (list of str, dict of str to bytes)
        Markdown lines and the plots they show, by file name.
    """
    lines = ["", "## Pyramid VQ against k-means VQ", "", "### Energy per inference", "", ENERGY_TEXT, "",
             *engine_comparison(results, facts), ""]
    files = {}
    if accuracy is not None:
        lines += pvq_accuracy_lines(accuracy)
        files[PLOT_PVQ] = plot_pvq_accuracy(accuracy)
    if zoo is not None:
        lines += pvq_zoo_lines(zoo)
        files[PLOT_PVQ_ZOO] = plot_pvq_zoo(zoo, ZOO_SECONDARY_METRIC)
    return lines, files
