"""The report's section on weights resident on chip: energy per inference by weight-SRAM capacity and job
size, against dense fp32 from DRAM and the targets, per layer, and the weight SRAM's bits and FPGA blocks.

The section formats what `sim.report.energy.resident.sweep_energy` measured;
the block counts are `sim.report.block_ram`'s rule.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from model.codecs.layers.kinds import kind_named
from model.contract.config import WORDS_PER_KIB
from model.contract.layout import WORD_BITS
from sim.report.block_ram import DEVICES
from sim.report.energy.events import COMPONENT_TITLES
from sim.report.energy.network import IO
from sim.report.energy.pricing import ScenarioEnergy
from sim.report.energy.resident import STREAMED_SCENARIOS, PointEnergy, ResidentSweep, SweepPoint
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


def _versus(energy: ScenarioEnergy | None, fp32: float, scale: float) -> str:
    """A cell: ``energy`` in the table's unit and dense fp32's energy over it ("-" if there is none)."""
    if energy is None:
        return "-"
    return f"{significant(energy.total() / scale)} ({significant(fp32 / energy.total())}x)"


def _streamed(priced: Mapping[SweepPoint, PointEnergy], n: int) -> Mapping[str, ScenarioEnergy]:
    """The `STREAMED_SCENARIOS` of the job of ``n`` images without a weight SRAM (empty if not swept)."""
    pe = priced.get(SweepPoint(0, n))
    return pe.streamed if pe is not None else {}


def by_network(sweeps: Sequence[PricedSweep]) -> dict[str, list[PricedSweep]]:
    """The sweeps grouped by the network they compress (programs of one network share its dense baselines)."""
    groups: dict[str, list[PricedSweep]] = {}
    for sweep, priced in sweeps:
        groups.setdefault(sweep.network, []).append((sweep, priced))
    return groups


def energy_table(sweeps: Sequence[PricedSweep]) -> list[str]:
    """Per network: energy per inference of every scenario and its ratio to (a) dense fp32, per program and
    job size (rows) and scenario, then weight-SRAM capacity (columns), in the network's own unit."""
    capacities, jobs = _axes(sweeps)
    out = []
    for network, group in by_network(sweeps).items():
        unit, scale = energy_unit(max(pe.dense_fp32.total() for _, priced in group for pe in priced.values()))
        header = ["program", "job (images)", f"(a) dense fp32 ({unit})", f"(b) dense int8: {unit} (x fp32)",
                  f"(c) VQ, codebooks from DRAM: {unit} (x fp32)",
                  *(f"{'(d) ' if not c else ''}{capacity_title(c)}: {unit} (x fp32)" for c in capacities)]
        rows = []
        for sweep, priced in group:
            for n in jobs:
                here = [priced.get(SweepPoint(c, n)) for c in capacities]
                measured = [pe for pe in here if pe is not None]
                if not measured:
                    continue
                fp32 = measured[0].dense_fp32.total()
                others = _streamed(priced, n)
                rows.append([sweep.name, n, significant(fp32 / scale),
                             *(_versus(others.get(k), fp32, scale) for k in STREAMED_SCENARIOS),
                             *(_versus(pe.engine if pe is not None else None, fp32, scale) for pe in here)])
        out += [f"**{network}**:", "", markdown_table(header, rows), ""]
    return out


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


def windowed(sweep: ResidentSweep) -> bool:
    """True if the program has a windowed layer (convolution, pooling): a convolutional network."""
    return any(layer.windowed for run in sweep.runs.values() for layer in run.layers)


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


def layer_macs(layer) -> int:
    """Multiply-accumulates of one image of a layer, by its kind (`model.codecs.layers.kinds`; 0 for pooling)."""
    return kind_named(layer.kind).macs(layer.in_features, layer.out_features, layer.window) if layer.has_rows else 0


def conv_layer_table(sweep: ResidentSweep, priced: Mapping[SweepPoint, PointEnergy]) -> list[str]:
    """One convolutional program, per layer at the largest job size: its kind, shape, output positions and MACs,
    then (a), (b), (c) and the engine at each capacity (bold: resident), and the job-level part and the total."""
    capacities, jobs = _axes([(sweep, priced)])
    n = jobs[-1]
    here = [priced.get(SweepPoint(c, n)) for c in capacities]
    measured = [pe for pe in here if pe is not None]
    if not measured:
        return []
    first = measured[0]
    streamed = _streamed(priced, n)
    baselines = [first.dense_fp32, *(streamed.get(k) for k in STREAMED_SCENARIOS)]
    unit, scale = energy_unit(first.dense_fp32.total())
    run = first.run
    cell = lambda e, part: "-" if e is None else significant(e.total(part) / scale)  # noqa: E731
    rows = []
    for part in run.parts:
        if part == IO:
            facts = ["io (job header, input, output)", "", "", "", ""]
        else:
            layer = run.layers[part]
            facts = [str(part), layer.kind, f"{layer.in_features} x {layer.out_features}", f"{layer.positions:,}",
                     f"{layer_macs(layer):,}"]
        engine = []
        for pe in here:
            text = cell(pe.engine if pe is not None else None, part)
            resident = pe is not None and part != IO and pe.resident_layers[part]
            engine.append(f"**{text}**" if resident else text)
        rows.append([*facts, *(cell(e, part) for e in baselines), *engine])
    fp32 = first.dense_fp32.total()
    rows.append(["**total**", "", "", "", f"{sum(layer_macs(layer) for layer in run.layers):,}",
                 significant(fp32 / scale), *(_versus(e, fp32, scale) for e in baselines[1:]),
                 *(_versus(pe.engine if pe is not None else None, fp32, scale) for pe in here)])
    header = ["layer", "kind", "in x out", "positions", "MACs / image", f"(a) fp32 ({unit})", f"(b) int8 ({unit})",
              f"(c) VQ, codebooks from DRAM ({unit})",
              *(f"{'(d) ' if not c else ''}{capacity_title(c)} ({unit})" for c in capacities)]
    return [f"**{sweep.name}**, per layer, energy per inference ({unit}) with jobs of {n} images; **bold**: the "
            "layer is resident; the total row gives dense fp32's energy over each scenario's in parentheses.", "",
            markdown_table(header, rows, "llrrr" + "r" * (len(header) - 5)), ""]


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
    fully_connected = [(s, p) for s, p in sweeps if not windowed(s)]
    convolutional = [(s, p) for s, p in sweeps if windowed(s)]
    per_layer = []
    if fully_connected:
        unit, scale = energy_unit(max(pe.dense_fp32.total() for _, priced in fully_connected
                                      for pe in priced.values()))
        per_layer += per_layer_table(fully_connected, unit, scale)
    for sweep, priced in convolutional:
        per_layer += conv_layer_table(sweep, priced)
    return ["## Weights resident on chip: energy by weight-SRAM capacity and job size", "",
            "Each program is placed in a weight SRAM of each capacity (`place_in_weight_sram`: first fit, in "
            "layer order; a layer whose stream does not fit streams from DRAM) and run by the golden model as "
            f"one job of the first `N` test inputs (`N` = {', '.join(map(str, jobs))}). A resident layer's stream "
            "is read from DRAM and written into the weight SRAM in the job's first image and read from the "
            "weight SRAM in every later one (the counters `weight_sram_writes` and `weight_sram_reads`; the "
            "golden model and the RTL agree on them, `tests/integration/test_weight_sram.py`, but these runs "
            "were not cross-checked on the RTL). A convolution reads its stream at every output position: "
            "resident, from DRAM once per job and from the weight SRAM at the `positions x N - 1` others; "
            "streamed (no weight SRAM, scenario (d)), from DRAM at every position. A pooling layer has no "
            "stream: its activation reads and writes, whatever the capacity. Energy per inference is the job's "
            "energy divided by `N`, "
            "priced as the program's engine scenario, with the weight SRAM at its own capacity (the capacity "
            "rule below). Control overhead uses the ideal cycle estimate (no RTL cycle count of these runs). "
            "Dense fp32 from DRAM (a) is priced on the same job, and on the job without a weight SRAM also "
            "dense int8 (b) and traditional VQ with codebooks from DRAM (c) (VQ programs): (a) and (b) read "
            "each weight from DRAM once per image (a convolution's kept in a buffer while its window slides, "
            "an assumption in their favour), (c) is the streamed engine's counters plus each layer's codebook "
            "loaded from DRAM once per image. energy.json holds every point, per layer and in "
            "total, as scenarios `<engine>_resident_<C>KiB_N<N>` (`<engine>_streamed_N<N>` without a weight "
            "SRAM), `fp32_N<N>`, `int8_N<N>` and `vq_sram_N<N>`.",
            "", f"![energy per inference against weight-SRAM capacity]({PLOT_RESIDENT})", "",
            "*Figure: energy per inference (log scale) against weight-SRAM capacity (KiB, log scale; "
            "\"none\" = every layer streamed from DRAM, scenario (d)), one panel per network, one colour per "
            "program, one line style per job size; the grey lines are the dense baselines (a) fp32 and (b) int8 "
            f"from DRAM on jobs of {jobs[-1]}.*", "",
            "Energy per inference of each scenario, and dense fp32's over it, per network (each in its own unit):",
            "", *energy_table(sweeps),
            "Resident layers at each capacity and the weight-SRAM words their streams fill (the job's "
            "weight-SRAM writes):", "", *residency_table(sweeps), "",
            *target_lines(sweeps), *per_layer,
            *area_lines([c for c in capacities if c])]
