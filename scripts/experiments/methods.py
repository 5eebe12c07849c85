"""Every method on the engine (issue 15, item 6): an equal-bits table and two Pareto plots.

Usage::

    OMP_NUM_THREADS=1 python -m scripts.experiments.methods [--networks lenet300 lenet5] [--images 10]
        [--json reports/methods_table.json] [--markdown reports/methods_table.md] [--plots reports]

For each network and each method configuration (:data:`CONFIGS`) it compresses an engine program
(``vqe compress --network N --method M ...``; programs are kept in ``build/experiments/`` and reused when
they are there), reads its bits per weight and its int8 golden quality on the whole test set (what
``vqe compress`` measured), prices one inference with the report's energy model (the ``engine``
scenario: every stream from DRAM for every image, the report's assumption; golden counters of
``--images`` test images) and runs those images on Verilator (bit-exact, cycles per image).  The
markdown has every point, and per bit budget the best quality each method reaches within it (the
equal-bits table).  Plots: quality against bits per weight, and energy per inference against quality.
About 30 minutes on two cores, most of it the universal fits and k-means fine-tuning.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

#: (method, options, networks it applies to or None for all; pvq codes fully-connected networks only).  The
#: E8P lattice codebook (lanes 8) has its own equal-bits table: scripts/experiments/lattice.py.
CONFIGS = [
    ("kmeans", {"codebook_size": 16}, None),
    ("kmeans", {"codebook_size": 64}, None),
    ("kmeans", {"codebook_size": 256}, None),
    ("universal", {}, None),
    ("universal", {"codebook": "model/codebooks/universal-d4-k256x2-staged-v1.npz"}, None),
    ("pvq", {"bits_per_weight": 2.0}, ("lenet300",)),
    ("pvq", {"bits_per_weight": 3.0}, ("lenet300",)),
    ("pvq", {"bits_per_weight": 4.0}, ("lenet300",)),
    ("deepcomp", {}, ("lenet300",)),
    ("rq", {"stages": 2, "codebook_size": 16}, None),
    ("rq", {"stages": 2, "codebook_size": 64}, None),
    ("pq", {"codebook_size": 64}, None),
    ("pq", {"codebook_size": 256}, None),
    ("lr2vq", {"codebook_size": 64, "rank": 2}, None),
    ("lr2vq", {"codebook_size": 256, "rank": 2}, None),
]
#: Bit budgets of the equal-bits table (bits per weight, all in: indices, headers, codebooks).
BUDGETS = (1.5, 2.0, 2.5, 3.0, 4.0)
#: Verilator images per program.
IMAGES = 10
PROGRAMS = Path("build/experiments")
#: The energy report's scenarios that price a program's counters as measured: VQ-family, PVQ, sparse layers.
MEASURED_SCENARIOS = ("engine", "pvq_engine", "deepcomp_engine")


def _tag(method: str, options: dict) -> str:
    def value(v):
        return f"{v:g}" if isinstance(v, float) else Path(v).stem if isinstance(v, str) else str(v)
    return "-".join([method] + [f"{k.replace('_', '')}{value(v)}" for k, v in sorted(options.items())])


def point(network: str, method: str, options: dict, images: int) -> dict:
    """One program: compressed (or read from ``build/experiments``), priced and run on Verilator."""
    from model.compress.pipeline import compress
    from model.nets.inputs import load_inputs
    from model.program.file import Program
    from model.program.writer import place_in_weight_sram
    from sim.report.energy.golden import golden_network_data
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.registry import scenarios_for
    from sim.report.energy.table import load_energy_table
    from sim.run import run_program
    path = PROGRAMS / f"{network}-{_tag(method, options)}.vqz"
    t0 = time.perf_counter()
    if path.exists():
        program = Program.load(path)
    else:
        program = compress(network, method, progress=False, **options)
        PROGRAMS.mkdir(parents=True, exist_ok=True)
        program.save(path)
    seconds = time.perf_counter() - t0
    info = program.meta["info"]
    # The report's engine scenario: every stream from DRAM for every image.
    streamed = place_in_weight_sram(program, 0)
    x, labels, _ = load_inputs(streamed.meta, images, 0, 1)
    run = run_program(streamed, x, labels, "verilator")
    net = golden_network_data(streamed, x, cycles=run["cycles"])
    # The scenario that prices the engine's own counters for this program's layer modes.
    scenario = next(k for k in MEASURED_SCENARIOS if k in scenarios_for(net))
    energy = network_energy(net, load_energy_table(), [scenario])[scenario]
    c = program.meta["compression"]
    return {"network": network, "method": method, "options": options, "program": str(path),
            "metric": info["metric"], "float_quality": info["float_quality"], "int8_quality": info["int8_quality"],
            "bits_per_weight": c["bits_per_weight"], "ratio_vs_fp32": c["ratio_vs_fp32"], "bytes": c["bytes"],
            "energy_pj_per_inference": energy.total(), "energy_by_component": energy.by_component(),
            "energy_scenario": scenario,
            "bit_exact": run["bit_exact"], "rtl_images": images, "cycles_per_image": run["cycles_per_image"],
            "utilization": run["utilization"], "compress_seconds": seconds}


def equal_bits(rows: list[dict]) -> list[dict]:
    """Per network, budget and method: the best int8 quality of its points within the budget (None if none)."""
    out = []
    for network in dict.fromkeys(r["network"] for r in rows):
        mine = [r for r in rows if r["network"] == network]
        for budget in BUDGETS:
            best = {}
            for r in mine:
                if r["bits_per_weight"] <= budget and r["int8_quality"] > best.get(r["method"], (-1,))[0]:
                    best[r["method"]] = (r["int8_quality"], r["bits_per_weight"])
            out.append({"network": network, "budget_bits_per_weight": budget,
                        "best": {m: {"int8_quality": q, "bits_per_weight": b} for m, (q, b) in best.items()}})
    return out


def markdown(rows: list[dict], table: list[dict]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["# Every method on the engine: equal bits", "",
             "Written by `make experiments` (`scripts/experiments/methods.py`); quality is the int8 golden model's "
             "on the whole test set, bits per weight count everything the program stores (indices, row headers, "
             "the ROM unless shared), energy is the report's engine scenario (every stream from DRAM, Horowitz "
             "45 nm) per inference, cycles are Verilator's (bit-exact on every point).", ""]
    for network in dict.fromkeys(r["network"] for r in rows):
        lines += [f"## {network}", "", "Best int8 quality within each budget (bits/weight of that point):", "",
                  "| budget | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        for t in (t for t in table if t["network"] == network):
            cells = [f"{t['best'][m]['int8_quality']:.4f} ({t['best'][m]['bits_per_weight']:.2f})"
                     if m in t["best"] else "-" for m in methods]
            lines.append(f"| <= {t['budget_bits_per_weight']:g} | " + " | ".join(cells) + " |")
        lines += ["", "| method | options | bits/weight | ratio | float | int8 golden | energy/inference (nJ) | "
                      "cycles/image | bit-exact |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted((r for r in rows if r["network"] == network), key=lambda r: r["bits_per_weight"]):
            opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults"
            lines.append(f"| {r['method']} | {opts} | {r['bits_per_weight']:.3f} | {r['ratio_vs_fp32']:.1f}x | "
                         f"{r['float_quality']:.4f} | {r['int8_quality']:.4f} | "
                         f"{r['energy_pj_per_inference'] / 1000:.1f} | {r['cycles_per_image']:,.0f} | "
                         f"{r['bit_exact']} |")
        lines.append("")
    return "\n".join(lines)


def plots(rows: list[dict], folder: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    networks = list(dict.fromkeys(r["network"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    markers = dict(zip(methods, "osD^vP*Xh<>"))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}   # one colour per method on every network
    written = []
    for name, x_key, y_key, x_label, y_label in (
            ("methods_quality_vs_bits.png", "bits_per_weight", "int8_quality", "bits per weight (all in)",
             "int8 golden accuracy"),
            ("methods_energy_vs_quality.png", "int8_quality", "energy_pj_per_inference", "int8 golden accuracy",
             "energy per inference (pJ, engine scenario)")):
        fig, axes = plt.subplots(1, len(networks), figsize=(5.5 * len(networks), 4.2), squeeze=False)
        for ax, network in zip(axes[0], networks):
            for m in methods:
                pts = sorted((r[x_key], r[y_key]) for r in rows if r["network"] == network and r["method"] == m)
                if pts:
                    ax.plot(*zip(*pts), marker=markers[m], color=colors[m], linestyle="-", label=m)
            ax.set_title(network)
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            if y_key == "energy_pj_per_inference":
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", nargs="+", default=["lenet300", "lenet5"])
    ap.add_argument("--images", type=int, default=IMAGES, help=f"Verilator images per program (default {IMAGES})")
    ap.add_argument("--json", default="reports/methods_table.json")
    ap.add_argument("--markdown", default="reports/methods_table.md")
    ap.add_argument("--plots", default="reports", help="folder of the two plots (default reports)")
    ap.add_argument("--replot", action="store_true", help="only redraw the plots and the markdown from --json")
    args = ap.parse_args(argv)
    if args.replot:
        data = json.loads(Path(args.json).read_text())
        Path(args.markdown).write_text(markdown(data["rows"], data["equal_bits"]))
        for path in plots(data["rows"], Path(args.plots)):
            print(f"wrote {path}")
        return 0
    todo = [(n, m, o) for n in args.networks for m, o, only in CONFIGS if only is None or n in only]
    rows = []
    for network, method, options in tqdm(todo, desc="methods", unit="program"):
        rows.append(point(network, method, options, args.images))
    table = equal_bits(rows)
    Path(args.json).write_text(json.dumps({"rows": rows, "equal_bits": table, "budgets": list(BUDGETS)},
                                          indent=1, default=float) + "\n")
    Path(args.markdown).write_text(markdown(rows, table))
    for path in plots(rows, Path(args.plots)):
        print(f"wrote {path}")
    print(f"wrote {args.json}, {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
