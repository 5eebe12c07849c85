"""The report's section on weights resident on chip: energy per inference by weight-SRAM capacity and job
size, against dense fp32 from DRAM and the targets, per layer, and the weight SRAM's bits and FPGA blocks.

The section formats what `sim.report.energy.resident.sweep_energy` measured;
the block counts are `sim.report.block_ram`'s rule.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from model.contract.config import WORDS_PER_KIB
from model.contract.layout import WORD_BITS
from sim.report.block_ram import DEVICES
from sim.report.energy.events import COMPONENT_TITLES
from sim.report.energy.network import IO
from sim.report.energy.pricing import ScenarioEnergy
from sim.report.energy.resident import PointEnergy, ResidentSweep, SweepPoint
from sim.report.files import PLOT_RESIDENT
from sim.report.formatting import energy_unit, markdown_table, significant

#: Energy per inference against dense fp32 from DRAM the engine must reach with its weights resident, by
#: (network, method): issue 12's "Done when" (LeNet-300-100: 300x with Deep Compression, 100x with k-means
#: and with the universal codebook).
TARGETS = {("lenet300", "deepcomp"): 300.0, ("lenet300", "kmeans"): 100.0, ("lenet300", "universal"): 100.0}

#: A priced sweep: the program's runs and each point's energy.
PricedSweep = tuple[ResidentSweep, Mapping[SweepPoint, PointEnergy]]


def capacity_title(capacity_kib: int) -> str:
    """A capacity as a column title: "64 KiB", or "none (streamed)" for 0."""
    return f"{capacity_kib} KiB" if capacity_kib else "none (streamed)"


def largest_component(energy: ScenarioEnergy) -> tuple[str, float]:
    """The component that takes most of ``energy``, and its share of the total (0 to 1)."""
    comp = energy.by_component()
    name = max(comp, key=comp.get)
    return name, comp[name] / energy.total()


def shares_text(energy: ScenarioEnergy) -> str:
    """Each component's share of ``energy``, largest first, DRAM split into its layers' part (descriptors and
    weight streams) and the job-level part (job header, input and output vectors)."""
    total = energy.total()
    comp = energy.by_component()
    parts = []
    for name in sorted(comp, key=comp.get, reverse=True):
        if not comp[name]:
            continue
        text = f"{COMPONENT_TITLES[name]} {significant(100 * comp[name] / total)} %"
        if name == "dram" and IO in energy.parts:
            io = energy.by_component(IO).get("dram", 0.0)
            text += (f" (layers: descriptors and weight streams {significant(100 * (comp[name] - io) / total)} %; "
                     f"job header, input and output vectors {significant(100 * io / total)} %)")
        parts.append(text)
    return ", ".join(parts) + "."


def _axes(sweeps: Sequence[PricedSweep]) -> tuple[list[int], list[int]]:
    """The capacities and job sizes the sweeps cover, ascending."""
    points = {p for _, priced in sweeps for p in priced}
    return sorted({p.capacity_kib for p in points}), sorted({p.job_images for p in points})


def energy_table(sweeps: Sequence[PricedSweep], unit: str, scale: float) -> list[str]:
    """Energy per inference and its ratio to dense fp32, per program and job size (rows) and capacity (columns)."""
    capacities, jobs = _axes(sweeps)
    header = ["program", "job (images)", f"dense fp32 ({unit})",
              *(f"{capacity_title(c)}: {unit} (x fp32)" for c in capacities)]
    rows = []
    for sweep, priced in sweeps:
        for n in jobs:
            here = [priced.get(SweepPoint(c, n)) for c in capacities]
            measured = [pe for pe in here if pe is not None]
            if not measured:
                continue
            rows.append([sweep.name, n, significant(measured[0].dense_fp32.total() / scale),
                         *(f"{significant(pe.engine.total() / scale)} ({significant(pe.vs_dense_fp32)}x)"
                           if pe is not None else "-" for pe in here)])
    return [markdown_table(header, rows)]


def residency_table(sweeps: Sequence[PricedSweep]) -> list[str]:
    """Per program and capacity: the layers resident and the words their streams fill (measured writes)."""
    capacities, jobs = _axes(sweeps)
    capacities = [c for c in capacities if c]
    rows = []
    for sweep, priced in sweeps:
        cells = []
        for c in capacities:
            pe = priced.get(SweepPoint(c, jobs[-1]))
            if pe is None:
                cells.append("-")
                continue
            layers = [str(i) for i, r in enumerate(pe.resident_layers) if r]
            cells.append(f"{', '.join(layers) or 'none'} ({pe.resident_words:,} of {pe.point.words:,} words)")
        rows.append([sweep.name, len(sweep.runs[next(iter(sweep.runs))].layers), *cells])
    return [markdown_table(["program", "layers", *(f"{capacity_title(c)}: resident layers" for c in capacities)],
                           rows, "lr" + "l" * len(capacities))]


def target_lines(sweeps: Sequence[PricedSweep]) -> list[str]:
    """The targets against the measured ratios at the largest job size: met or missed, by how much, and why."""
    capacities, jobs = _axes(sweeps)
    capacities = [c for c in capacities if c]
    n = jobs[-1]
    rows, why = [], []
    for sweep, priced in sweeps:
        target = TARGETS.get((sweep.network, sweep.method))
        here = {c: priced[SweepPoint(c, n)] for c in capacities if SweepPoint(c, n) in priced}
        if target is None or not here:
            continue
        best_c = max(here, key=lambda c: here[c].vs_dense_fp32)
        best = here[best_c]
        comp, share = largest_component(best.engine)
        if best.vs_dense_fp32 >= target:
            verdict = f"met at {best_c} KiB"
        else:
            verdict = (f"**missed**: {significant(target / best.vs_dense_fp32)}x short "
                       f"({significant(100 * (1 - best.vs_dense_fp32 / target))} % below)")
            why.append(f"- {sweep.name} at {best_c} KiB, jobs of {n}: " + shares_text(best.engine))
        ratios = (f"{significant(here[c].vs_dense_fp32)}x" if c in here else "-" for c in capacities)
        rows.append([sweep.name, f"{significant(target)}x", *ratios,
                     f"{significant(best.vs_dense_fp32)}x at {best_c} KiB", verdict,
                     f"{COMPONENT_TITLES[comp]} ({significant(100 * share)} %)"])
    if not rows:
        return []
    header = ["program", "target", *(f"{c} KiB" for c in capacities), "best", "verdict",
              "largest component at the best"]
    align = "l" + "r" * (len(capacities) + 2) + "ll"
    return [f"Energy per inference of dense fp32 from DRAM over the engine's, with jobs of {n} images, against "
            "the targets of issue 12 (LeNet-300-100 with its weights resident: 300x with Deep Compression, 100x "
            "with k-means and with the universal codebook). Measured, not tuned: a missed target is printed as "
            "missed.", "", markdown_table(header, rows, align), "",
            *(["Where the energy of a missed target goes (shares of the engine's energy per inference):", "",
               *why, ""] if why else [])]


def per_layer_table(sweeps: Sequence[PricedSweep], unit: str, scale: float) -> list[str]:
    """Energy per inference of each layer (and the job-level part) by capacity, at the largest job size."""
    capacities, jobs = _axes(sweeps)
    n = jobs[-1]
    rows = []
    for sweep, priced in sweeps:
        here = [priced.get(SweepPoint(c, n)) for c in capacities]
        measured = [pe for pe in here if pe is not None]
        if not measured:
            continue
        run = measured[0].run
        for part in run.parts:
            label = "io (job header, input, output)" if part == IO else f"{part} {run.layers[part].name}".strip()
            cells = []
            for pe in here:
                text = "-" if pe is None else significant(pe.engine.total(part) / scale)
                cells.append(f"**{text}**" if pe is not None and part != IO and pe.resident_layers[part] else text)
            rows.append([sweep.name, label, *cells])
    return [f"Per layer, energy per inference ({unit}) with jobs of {n} images; **bold**: the layer is resident "
            "(read from DRAM once per job, from the weight SRAM after).", "",
            markdown_table(["program", "layer", *(capacity_title(c) for c in capacities)], rows,
                           "ll" + "r" * len(capacities)), ""]


def area_lines(capacities_kib: Sequence[int]) -> list[str]:
    """The weight SRAM's bits and FPGA blocks at each capacity, by the block-RAM rule."""
    rows = []
    for c in capacities_kib:
        words = c * WORDS_PER_KIB
        cells = []
        for dev in DEVICES:
            blocks = dev.blocks_for(words)
            cells.append(f"{blocks} of {dev.blocks}" + ("" if dev.fits(words) else ": **does not fit**"))
        rows.append([f"{c} KiB", f"{words:,}", f"{words * WORD_BITS:,}", *cells])
    rules = "; ".join(f"{dev.device}: {dev.primitive}, `{dev.rule}` blocks for `W` words ({dev.source})"
                      for dev in DEVICES)
    return ["### Area of the weight SRAM", "",
            "Bits: words x 32. FPGA blocks: computed from each device's block geometry, not synthesized: a "
            "32-bit memory of `W` words on blocks of `depth` x `width` bits takes `ceil(32 / width) x "
            f"ceil(W / depth)` blocks. {rules}. The iCE40 HX8K is the device of the area and fmax figures below. "
            "The engine's own memories (activation SRAM, codebook ROM) take blocks too, so a fit is the "
            "weight SRAM's alone.", "",
            markdown_table(["capacity", "words", "bits", *(f"{dev.device} blocks" for dev in DEVICES)], rows), ""]


def resident_section(sweeps: Sequence[PricedSweep]) -> list[str]:
    """Markdown of the section (empty without sweeps).

    Parameters
    ----------
    sweeps : sequence of (ResidentSweep, dict)
        Each program's sweep with its `sim.report.energy.resident.sweep_energy`.
    """
    sweeps = [(s, p) for s, p in sweeps if p]
    if not sweeps:
        return []
    capacities, jobs = _axes(sweeps)
    unit, scale = energy_unit(max(pe.dense_fp32.total() for _, priced in sweeps for pe in priced.values()))
    return ["## Weights resident on chip: energy by weight-SRAM capacity and job size", "",
            "Each program is placed in a weight SRAM of each capacity (`place_in_weight_sram`: first fit, in "
            "layer order; a layer whose stream does not fit streams from DRAM) and run by the golden model as "
            f"one job of the first `N` test inputs (`N` = {', '.join(map(str, jobs))}). A resident layer's stream "
            "is read from DRAM and written into the weight SRAM in the job's first image and read from the "
            "weight SRAM in every later one (the counters `weight_sram_writes` and `weight_sram_reads`; the "
            "golden model and the RTL agree on them, `tests/integration/test_weight_sram.py`, but these runs "
            "were not cross-checked on the RTL). Energy per inference is the job's energy divided by `N`, "
            "priced as the program's engine scenario, with the weight SRAM at its own capacity (the capacity "
            "rule below). Control overhead uses the ideal cycle estimate (no RTL cycle count of these runs). "
            "Dense fp32 from DRAM is priced on the same job. energy.json holds every point, per layer and in "
            "total, as scenarios `<engine>_resident_<C>KiB_N<N>` (`<engine>_streamed_N<N>` without a weight "
            "SRAM) and `fp32_N<N>`.",
            "", f"![energy per inference against weight-SRAM capacity]({PLOT_RESIDENT})", "",
            f"*Figure: energy per inference ({unit}, log scale) against weight-SRAM capacity (KiB, log scale; "
            "\"none\" = every layer streamed from DRAM), one colour per program, one line style per job size; "
            "the grey lines are dense fp32 from DRAM.*", "",
            f"Energy per inference ({unit}), and dense fp32's over it:", "",
            *energy_table(sweeps, unit, scale), "",
            "Resident layers at each capacity and the weight-SRAM words their streams fill (the job's "
            "weight-SRAM writes):", "", *residency_table(sweeps), "",
            *target_lines(sweeps), *per_layer_table(sweeps, unit, scale),
            *area_lines([c for c in capacities if c])]
