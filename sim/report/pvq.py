"""The report's PVQ section: PVQ against k-means VQ on energy, accuracy and area.

Energy: each reported program's measured engine side by side (`sim.report.document.engine_comparison`).
Accuracy: the tables ``python -m scripts.experiments.pvq`` writes (LeNet-300-100 on the
engine, ``reports/pvq_table.json``; every zoo network at model level with ``--zoo``,
``reports/pvq_zoo.json``), with their plots.  Area: the PVQ unit against the codebook
MAC path in one synthesized engine (cached with the area sweep).
"""
from __future__ import annotations

from pathlib import Path

from sim.report.build import AREA_CACHE, HEADLINE, REPO, log, sweep_rom

#: Accuracy of PVQ against k-means VQ at equal bits (python -m scripts.experiments.pvq).
PVQ_TABLE = REPO / "reports" / "pvq_table.json"
#: The same on every zoo network, model level (python -m scripts.experiments.pvq --zoo).
PVQ_ZOO = REPO / "reports" / "pvq_zoo.json"
#: Largest K of the engine whose PVQ unit the report synthesizes.
PVQ_AREA_K_MAX = 8


def _read_json(path: Path):
    import json

    from sim.cli.main import CliError
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot read: {exc}") from None


def pvq_accuracy_lines(t: dict) -> list[str]:
    """The LeNet-300-100 accuracy table (engine flow, fine-tuned, int8) of ``reports/pvq_table.json``."""
    from sim.report.document import PLOT_PVQ
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


def pvq_zoo_lines(z: dict) -> list[str]:
    """The zoo table (model level, every weight layer) of ``reports/pvq_zoo.json``."""
    from scripts.experiments.pvq import ZOO_SECONDARY_METRIC, zoo_markdown

    from sim.report.document import PLOT_PVQ_ZOO
    evals = "; ".join(f"{n['network']}: {n['description']}" for n in z["networks"])
    seconds = [(n["network"], ZOO_SECONDARY_METRIC[n["network"]]) for n in z["networks"]
               if n["network"] in ZOO_SECONDARY_METRIC]
    second = (" Where the headline metric hardly separates the codings, a second one follows in parentheses "
              "and is the one plotted: " + ", ".join(f"{n} `{m}`" for n, m in seconds)
              + " (MTCNN's `fidelity_1px` stays near 0.6 for every coding; `face_agreement` is the fraction "
              "of face decisions equal to fp32's).") if seconds else ""
    missing = [(n, b) for n in z["networks"] for b in z["budgets"]
               if not any(r["budget"] == b for r in n["rows"])]
    omitted = ""
    if missing:
        def highest_kmeans(net):
            runs = [r for r in net["rows"] if r["method"] == "kmeans" and not r["skipped"]]
            return max(runs, key=lambda r: r["budget"]) if runs else None

        parts = []
        for net, b in missing:
            prev = highest_kmeans(net)
            why = (f" (its k-means at {prev['budget']:g} bits took {prev['quantize_seconds'] / 60:.0f} min; "
                   f"each further bit per weight multiplies its codebooks by {2 ** z['kmeans_d']})") if prev else ""
            parts.append(f"{net['network']} at {b:g} bits{why}")
        omitted = " Not run: " + "; ".join(parts) + "."
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
            f"(took {z['total_seconds'] / 60:.0f} min on one thread).{omitted}{second}", "",
            zoo_markdown(z["networks"]), "",
            f"![PVQ against k-means VQ on every zoo network]({PLOT_PVQ_ZOO})", "",
            f"*Figure: the table above, one panel per network.* Metrics: {evals}.", ""]


def program_facts(meta: dict) -> dict:
    """All-in bits per weight and int8 accuracy (full test set) a program recorded when compressed."""
    return {"bits_per_weight": meta.get("compression", {}).get("bits_per_weight"),
            "accuracy": meta.get("info", {}).get("int8_accuracy")}


def pvq_section(progress: bool, results, facts: dict | None = None) -> tuple[list[str], dict[str, bytes]]:
    """PVQ against k-means VQ: energy side by side, accuracy at equal bits, and the PVQ unit's area.

    Parameters
    ----------
    progress : bool
    results : sequence of (NetworkData, dict)
        The reported programs with their `sim.report.energy.network_energy`.
    facts : dict, optional
        Network name -> `program_facts`.

    Returns
    -------
    (list of str, dict of str to bytes)
        Markdown lines and the plots they show.
    """
    from scripts.experiments.pvq import ZOO_SECONDARY_METRIC
    from model.contract.config import EngineConfig

    from sim.report.area import synthesize
    from sim.report.document import PLOT_PVQ, PLOT_PVQ_ZOO, engine_comparison, plot_pvq_accuracy, plot_pvq_zoo
    from sim.backends.top import engine_verilog
    lines = ["", "## Pyramid VQ against k-means VQ", "", "### Energy per inference", "",
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
             "--bits-per-weight 2`).", "", *engine_comparison(results, facts), ""]
    files = {}
    if PVQ_TABLE.exists():
        t = _read_json(PVQ_TABLE)
        lines += pvq_accuracy_lines(t)
        files[PLOT_PVQ] = plot_pvq_accuracy(t)
    if PVQ_ZOO.exists():
        z = _read_json(PVQ_ZOO)
        lines += pvq_zoo_lines(z)
        files[PLOT_PVQ_ZOO] = plot_pvq_zoo(z, ZOO_SECONDARY_METRIC)
    lanes, depth = HEADLINE
    rom = sweep_rom(lanes, depth, progress)
    cfg = EngineConfig(lanes=lanes, codebook_depth=depth, rom=tuple(map(tuple, rom.tolist())),
                       pvq_k_max=PVQ_AREA_K_MAX)
    log(f"area: synthesizing the engine with a PVQ unit (K <= {PVQ_AREA_K_MAX}) ...")
    res = synthesize(engine_verilog(cfg, name="vqe_engine", simulation=False), "vqe_engine",
                     cache_dir=AREA_CACHE)

    def block(prefixes):
        rows = [r for r in res["modules"] if any(r["module"] == p or r["module"].startswith(p + ".")
                                                  for p in prefixes)]
        return {k: sum(r.get(k, 0) for r in rows) for k in ("lut4", "dff", "carry", "bram", "transistors")}

    pvq, mac = block(["vqe_engine.pvq"]), block(["vqe_engine.mac", "vqe_engine.rom"])
    lines += ["### Area", "",
              f"Area (iCE40 cells from yosys `synth_ice40`, transistors from `stat -tech cmos`) of the "
              f"lanes={lanes} engine's PVQ unit (`PvqDotProduct`, K up to {PVQ_AREA_K_MAX}, with its V(n, k) "
              f"table ROM) against its codebook MAC path (`MacLanes` with the {depth}-entry `CodebookRom`), "
              "in one elaborated engine that has both:", "",
              "| block | LUT4 | DFF | CARRY | BRAM | transistors |", "|---|---:|---:|---:|---:|---:|"]
    for name, b in (("PVQ unit", pvq), ("codebook ROM + MAC lanes", mac)):
        lines.append(f"| {name} | {b['lut4']} | {b['dff']} | {b['carry']} | {b['bram']} | {b['transistors']:,} |")
    lines += ["", f"The whole engine with both paths: {res['lut4']} LUT4, {res['dff']} DFF, fmax "
              + (f"{res['fmax_mhz']:.1f} MHz" if res.get("fmax_mhz") else "n/a (did not place on the HX8K)")
              + ".", ""]
    return lines, files
