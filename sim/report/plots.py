"""The report's figures, as PNG bytes: energy by component and against bits, area, PVQ accuracy.

Figures are drawn with matplotlib's object API (no global state) and saved
without a "Software" stamp, so identical inputs give identical bytes.
"""
from __future__ import annotations

import io
import textwrap
from typing import Mapping, Sequence

from sim.report.energy.events import COMPONENT_TITLES, COMPONENTS
from sim.report.energy.network import NetworkData
from sim.report.energy.pricing import ScenarioEnergy, reference_energy
from sim.report.formatting import energy_unit, significant

#: Figure resolution; enough to read tick labels in a Markdown viewer.
PLOT_DPI = 110
#: Scatter markers, one per scenario (cycled).
MARKERS = "osD^v<>phX*"


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes, reproducibly."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # No "Software" stamp: identical inputs give identical bytes.
    fig.savefig(buf, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buf.getvalue()


def plain_log_ticks(axis) -> None:
    """Label a logarithmic ``axis`` with plain numbers ("0.3", "200"), not powers of ten ("3 x 10^-1"), on the
    ticks matplotlib would label anyway (so minor ticks are labelled only where an axis spans little)."""
    from matplotlib.ticker import LogFormatterSciNotation

    class Plain(LogFormatterSciNotation):
        def __call__(self, x, pos=None):
            return significant(x) if super().__call__(x, pos) else ""

    axis.set_major_formatter(Plain())
    axis.set_minor_formatter(Plain(labelOnlyBase=False))


def _method_style(method: str) -> dict:
    """Marker and line style of a method's series in the PVQ figures: PVQ solid circles, k-means dashed squares."""
    return {"marker": "o" if method == "pvq" else "s", "linestyle": "-" if method == "pvq" else "--"}


#: Characters per line of a scenario's name under a bar (the names are long; the panels are side by side).
BAR_LABEL_WIDTH = 22
#: Components the second panel of `plot_energy_breakdown` leaves out: DRAM is most of every bar and
#: would hide the others at a shared scale.
HIDDEN_IN_ON_CHIP = ("dram",)


def _stacked_bars(ax, res: Mapping[str, ScenarioEnergy], components: Sequence[str], colors) -> list[float]:
    """Stack ``components`` of each scenario in ``res`` on ``ax``, in the unit that suits them; the bars' heights."""
    totals = [sum(r.by_component().get(c, 0.0) for c in components) for r in res.values()]
    unit, scale = energy_unit(max(totals))
    bottom = [0.0] * len(res)
    for comp in components:
        vals = [r.by_component().get(comp, 0.0) / scale for r in res.values()]
        if any(vals):
            ax.bar(range(len(res)), vals, bottom=bottom, label=COMPONENT_TITLES[comp],
                   color=colors(COMPONENTS.index(comp)))
            bottom = [b + v for b, v in zip(bottom, vals)]
    labels = [textwrap.fill(r.scenario.title, BAR_LABEL_WIDTH) for r in res.values()]
    ax.set_xticks(range(len(res)), labels, fontsize=7)
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.set_ylim(0, max(bottom) * 1.25 if max(bottom) > 0 else 1)
    return bottom


def plot_energy_breakdown(results: Sequence[tuple[NetworkData, Mapping[str, ScenarioEnergy]]]) -> bytes:
    """Stacked bars of energy per inference by component, one bar per scenario, one row per network.

    Each row has two panels: every component, and the same bars without DRAM
    (`HIDDEN_IN_ON_CHIP`), at their own scale, so the on-chip components show.

    Parameters
    ----------
    results : sequence of (NetworkData, dict)
        Each network with its `network_energy` output.
    """
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 3.9 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), 2, squeeze=False)
    colors = matplotlib.colormaps["tab10"]
    on_chip = [c for c in COMPONENTS if c not in HIDDEN_IN_ON_CHIP]
    for (ax_all, ax_chip), (net, res) in zip(axes, results):
        heights = _stacked_bars(ax_all, res, COMPONENTS, colors)
        ref = reference_energy(res)
        for x, r in enumerate(res.values()):
            note = significant(heights[x])
            if ref is not None and ref.total() > 0:
                note += f"\n({significant(r.total() / ref.total())}x)"
            ax_all.annotate(note, (x, heights[x]), ha="center", va="bottom", fontsize=8)
        ax_all.set_title(f"{net.name}: all components (x = relative to the engine)", fontsize=10)
        heights = _stacked_bars(ax_chip, res, on_chip, colors)
        for x, r in enumerate(res.values()):
            share = sum(r.by_component().get(c, 0.0) for c in on_chip) / r.total() if r.total() else 0.0
            ax_chip.annotate(f"{significant(heights[x])}\n({significant(100 * share)} %)", (x, heights[x]),
                             ha="center", va="bottom", fontsize=8)
        ax_chip.set_title(f"{net.name}: without {', '.join(COMPONENT_TITLES[c] for c in HIDDEN_IN_ON_CHIP)} "
                          "(% = share of the scenario's total)", fontsize=10)
    # One legend for the figure: a component has one colour in every panel.
    handles = {}
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = [COMPONENT_TITLES[c] for c in COMPONENTS if COMPONENT_TITLES[c] in handles]
    fig.legend([handles[label] for label in order], order, loc="outside upper center", ncols=len(order),
               fontsize=8)
    return png_bytes(fig)


def plot_energy_vs_bits(results: Sequence[tuple[NetworkData, Mapping[str, ScenarioEnergy]]]) -> bytes:
    """Energy per inference against bits per weight: colour = network, marker = scenario.

    The two legends (networks, scenarios) stand outside the axes, clear of the points.

    Parameters
    ----------
    results : sequence of (NetworkData, dict)
        Each network with its `network_energy` output.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    # One marker per scenario across all networks (networks get different scenario sets).
    titles = {key: r.scenario.title for _, res in results for key, r in res.items()}
    keys = list(titles)
    marker = {key: MARKERS[i % len(MARKERS)] for i, key in enumerate(keys)}
    unit, scale = energy_unit(max(r.total() for _, res in results for r in res.values()))
    colors = series_colors(len(results))
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    for ni, (net, res) in enumerate(results):
        for key, r in res.items():
            ax.scatter(r.bits_per_weight, r.total() / scale, marker=marker[key], color=colors[ni], s=45)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("bits per weight (weight stream + per-inference codebook load)")
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.get_xaxis().set_major_formatter("{x:g}")
    # Programs of one network get the same dense baselines, so those points fall on one another.
    ax.set_title("Energy vs bits per weight (programs of one network share the dense baselines: "
                 "their points coincide)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    point = dict(linestyle="", markersize=7)
    networks = [Line2D([], [], marker="o", color=colors[ni], **point) for ni in range(len(results))]
    fig.legend(networks, [net.name for net, _ in results], title="network (colour)", fontsize=7,
               title_fontsize=8, loc="outside right upper")
    scenarios = [Line2D([], [], marker=marker[key], color="0.35", **point) for key in keys]
    fig.legend(scenarios, [titles[key] for key in keys], title="scenario (marker)", fontsize=7,
               title_fontsize=8, loc="outside right lower")
    return png_bytes(fig)


def plot_area(records: Sequence[Mapping]) -> bytes:
    """LUT4s, transistors and fmax against lanes: one line per target and codebook depth (one processing
    element), and per target and PE count (above one) at the largest depth; the engine swept only (not the
    one with every optional unit).

    Parameters
    ----------
    records : sequence of dict
        Area records (see `sim.report.area.sweep.sweep`); records without ``target`` are the iCE40's.
    """
    from matplotlib.figure import Figure

    swept = [r for r in records if r.get("engine", "kmeans") == "kmeans"]
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("lut4", "LUT4 cells (flat synthesis)"), ("transistors", "transistors (CMOS estimate)"),
              ("fmax_mhz", "fmax (MHz, nextpnr)"))
    targets = sorted({r.get("target", "ice40-hx8k") for r in swept})
    styles = {t: s for t, s in zip(targets, ("-", "--", ":", "-."))}
    series = {}
    for r in swept:
        t, pes = r.get("target", "ice40-hx8k"), r.get("pes", 1)
        label = f"{t}, depth {r['codebook_depth']}" + (f", {pes} PEs" if pes > 1 else "")
        series.setdefault((t, pes, r["codebook_depth"]), (label, []))[1].append(r)
    for key in sorted(series):
        label, pts = series[key]
        pts = sorted(pts, key=lambda r: r["lanes"])
        for ax, (column, _) in zip(axes, panels):
            xs = [r["lanes"] for r in pts if r.get(column) is not None]
            ys = [r[column] for r in pts if r.get(column) is not None]
            ax.plot(xs, ys, marker="o", linestyle=styles[key[0]], label=label)
    for ax, (_, title) in zip(axes, panels):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["lanes"] for r in swept}))
        ax.get_xaxis().set_major_formatter("{x:.0f}")
        ax.set_xlabel("lanes")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    axes[2].set_title("fmax (MHz, nextpnr; missing points: does not fit)", fontsize=10)
    return png_bytes(fig)


def plot_pvq_accuracy(table: Mapping) -> bytes:
    """LeNet-300-100 accuracy against all-in bits per weight, PVQ against k-means VQ.

    Parameters
    ----------
    table : dict
        The JSON written by ``python -m scripts.experiments.pvq`` (``rows`` with
        ``method``, ``lanes``, ``bits_per_weight``, ``init_accuracy``,
        ``int8_accuracy``; ``float_accuracy`` of the float network).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=False)
    panels = (("int8_accuracy", "after fine-tuning: int8 golden model (the engine's outputs)"),
              ("init_accuracy", "before fine-tuning: float, k-means / projection only"))
    series = sorted({(r["method"], r["lanes"]) for r in table["rows"]})
    for ax, (key, title) in zip(axes, panels):
        for method, lanes in series:
            pts = sorted((r["bits_per_weight"], 100 * r[key]) for r in table["rows"]
                         if (r["method"], r["lanes"]) == (method, lanes))
            label = f"{'PVQ' if method == 'pvq' else 'k-means VQ'}, {lanes}-weight sub-vectors"
            ax.plot(*zip(*pts), **_method_style(method), label=label)
        ax.axhline(100 * table["float_accuracy"], color="gray", linestyle=":", label="float network")
        ax.set_xlabel("bits per weight, all-in (entries, codebook or scales, row words)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{table['network']}: PVQ against k-means VQ at equal bits "
                 f"({table['test_images']} Fashion-MNIST test images)", fontsize=11)
    return png_bytes(fig)


def plot_pvq_zoo(zoo: Mapping, secondary: Mapping[str, str] | None = None) -> bytes:
    """Each zoo network's metric against all-in bits per weight, PVQ against k-means VQ.

    Parameters
    ----------
    zoo : dict
        The JSON written by ``python -m scripts.experiments.pvq --zoo`` (``networks``,
        each with ``rows`` of ``method``, ``dim``, ``bits_per_weight``,
        ``metric``, ``metrics``, ``skipped``).
    secondary : dict of str to str, optional
        Network -> a metric of ``metrics`` to plot instead of the headline
        (which is then shown in the table only).
    """
    secondary = secondary or {}
    from matplotlib.figure import Figure

    nets = zoo["networks"]
    cols = min(3, len(nets))
    rows = -(-len(nets) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, net in zip(axes, nets):
        done = [r for r in net["rows"] if not r["skipped"]]
        key = secondary.get(net["network"])
        if key and not all(key in r.get("metrics", {}) for r in done):
            key = None  # rows without it (an older run): plot the headline metric
        value = (lambda r: r["metrics"][key]) if key else (lambda r: r["metric"])  # noqa: E731
        for method, dim in sorted({(r["method"], r["dim"]) for r in done}):
            pts = sorted((r["bits_per_weight"], value(r)) for r in done if (r["method"], r["dim"]) == (method, dim))
            ax.plot(*zip(*pts), **_method_style(method),
                    label=f"PVQ N={dim}" if method == "pvq" else f"k-means d={dim}")
        if not key:  # a secondary metric's fp32 value is not in the data
            ax.axhline(net["float_metric"], color="gray", linestyle=":", label="fp32")
        ax.set_title(net["network"], fontsize=10)
        ax.set_xlabel("bits per weight, all-in")
        ax.set_ylabel(key or net["metric_name"])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(nets):]:
        ax.set_visible(False)
    fig.suptitle("PVQ against per-layer k-means VQ at equal bits, every weight layer, no fine-tuning",
                 fontsize=11)
    return png_bytes(fig)


#: Where the sweep's point without a weight SRAM (every layer streamed) sits on the log capacity axis:
#: this fraction of the smallest capacity, left of a dotted separator.
STREAMED_AT = 0.25
#: Line style of each job size's series, the largest job first (solid).
JOB_STYLES = ("-", "--", ":", "-.")


#: Factor of room left above the highest and below the lowest line on a logarithmic axis.
LOG_MARGIN = 1.25
#: Line style of each dense baseline's horizontal line in `plot_energy_vs_weight_sram`, by scenario key.
BASELINE_STYLES = {"fp32": ("(a) dense fp32 from DRAM", "-"), "int8": ("(b) dense int8 from DRAM", "--")}


def series_colors(n: int) -> list:
    """``n`` distinct colours: tab10's, or tab20's when more are needed (tab10 repeats after 10)."""
    import matplotlib
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_energy_vs_weight_sram(sweeps: Sequence[tuple]) -> bytes:
    """Energy per inference against weight-SRAM capacity: one panel per network, colour = program, line
    style = job size.

    The point without a weight SRAM ("none", every layer streamed) stands left of the
    smallest capacity; the dense baselines (a) fp32 and (b) int8 from DRAM on the largest job are grey
    horizontal lines.  Each panel has its own unit; the axes are logarithmic (networks differ by orders of
    magnitude).  The legends stand outside the panels.

    Parameters
    ----------
    sweeps : sequence of (ResidentSweep, dict)
        Each program's sweep with its `sim.report.energy.resident.sweep_energy`.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    points = [pe for _, priced in sweeps for pe in priced.values()]
    capacities = sorted({pe.point.capacity_kib for pe in points})
    jobs = sorted({pe.point.job_images for pe in points}, reverse=True)
    style = {n: JOB_STYLES[i % len(JOB_STYLES)] for i, n in enumerate(jobs)}
    streamed_x = STREAMED_AT * min((c for c in capacities if c), default=1)
    x_of = lambda c: c if c else streamed_x  # noqa: E731
    colors = series_colors(len(sweeps))
    groups: dict[str, list[int]] = {}
    for si, (sweep, _) in enumerate(sweeps):
        groups.setdefault(sweep.network, []).append(si)

    cols = min(2, len(groups))
    rows = -(-len(groups) // cols)
    fig = Figure(figsize=(5.4 * cols + 2.6, 3.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (network, members) in zip(axes, groups.items()):
        largest = [pe for si in members for pe in sweeps[si][1].values() if pe.point.job_images == jobs[0]]
        unit, scale = energy_unit(max(pe.dense_fp32.total() for pe in largest))
        shown = []
        for si in members:
            priced = sweeps[si][1]
            for n in jobs:
                series = sorted((pe for pe in priced.values() if pe.point.job_images == n),
                                key=lambda pe: pe.point.capacity_kib)
                ys = [pe.engine.total() / scale for pe in series]
                shown += ys
                ax.plot([x_of(pe.point.capacity_kib) for pe in series], ys,
                        color=colors[si], linestyle=style[n], marker="o", markersize=3.5)
        # The baselines depend on the network alone (up to the lanes' padding): the first program's.
        first = sweeps[members[0]][1]
        biggest = next((pe for pe in first.values() if pe.point.job_images == jobs[0] and not pe.point.capacity_kib),
                       None)
        baselines = {"fp32": next(pe.dense_fp32 for pe in first.values() if pe.point.job_images == jobs[0])}
        if biggest is not None and "int8" in biggest.streamed:
            baselines["int8"] = biggest.streamed["int8"]
        for key, energy in baselines.items():
            shown.append(energy.total() / scale)
            ax.axhline(shown[-1], color="0.45", linestyle=BASELINE_STYLES[key][1], linewidth=1.2)
        # Room above and below every line, the baselines' included (autoscaling sees only the data).
        ax.set_ylim(min(shown) / LOG_MARGIN, max(shown) * LOG_MARGIN)
        if 0 in capacities and len(capacities) > 1:
            ax.axvline((streamed_x * capacities[1]) ** 0.5, color="0.7", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
        ax.set_xticks([x_of(c) for c in capacities], [str(c) if c else "none\n(streamed)" for c in capacities])
        ax.set_xlabel("weight-SRAM capacity (KiB)")
        ax.set_ylabel(f"energy per inference ({unit})")
        ax.set_title(network, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    fig.suptitle("Energy per inference against weight-SRAM capacity (resident layers read from DRAM once per job)",
                 fontsize=11)
    programs = [Line2D([], [], color=colors[si], marker="o", markersize=4) for si in range(len(sweeps))]
    fig.legend(programs, [sweep.name for sweep, _ in sweeps], title="program (colour)", fontsize=7,
               title_fontsize=8, loc="outside right upper")
    keys = [Line2D([], [], color="0.35", linestyle=style[n]) for n in jobs]
    keys += [Line2D([], [], color="0.45", linestyle=ls) for _, ls in BASELINE_STYLES.values()]
    fig.legend(keys, [f"jobs of {n} image{'s' if n > 1 else ''}" for n in jobs] +
               [f"{title}, jobs of {jobs[0]}" for title, _ in BASELINE_STYLES.values()],
               title="line style", fontsize=7, title_fontsize=8, loc="outside right lower")
    return png_bytes(fig)
