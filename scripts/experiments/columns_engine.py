"""Column-wise sparse layers on the engine (issue 16, item 2): useful-MAC utilization, cycles and energy, measured.

Usage::

    python -m scripts.experiments.columns_engine [--lanes 1 2 4 8] [--images 10] [--backend verilator]
        [--json reports/columns_engine.json] [--markdown reports/columns_engine.md]
        [--plot reports/columns_engine.png] [--report reports/REPORT.md]
    python -m scripts.experiments.columns_engine --replot --json reports/columns_engine.json [--markdown ..]
        [--plot ..] [--report ..]      # the outputs again from the JSON, no simulation

For each lane count, LeNet-300-100's Deep Compression program is written twice from the same lowered network:
with Huffman-coded rows (``vqe compress --method deepcomp``) and column-wise for the column unit (``--sparse-format
columns``).  Each runs on ``--backend`` (Verilator) in jobs of 1 and ``1 + --images`` test images, every job
bit-exact against the golden model (outputs and every counter) or the script stops.  The figures per inference
are the difference of the two jobs divided by ``--images``: the steady state, after image 0 has loaded the
column-wise layers into the column unit (the first image's cycles are kept as ``first_image_cycles``).

Useful MACs are the golden model's ``macs`` of the sparse layers: the kept weights that meet a non-zero
activation.  Utilization is useful MACs / (cycles x lanes) (one PE): over the layers' cycles (the engine's
``phase``, from each layer's descriptor fetch to its last output) and over the whole inference (with the input
load and the output store).  Energy per inference is the report's energy model on the golden counters of the
first two images' difference (`scripts.experiments.pes.measure`), in the scenario that prices the program as
measured.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: The formats compared (`model.program.writer.SPARSE_FORMATS`).
FORMATS = ("huffman", "columns")
#: Issue 16's aim for sparse layers.
UTILIZATION_AIM = 0.8


def programs(lanes: int, seed: int = 0) -> dict:
    """The Deep Compression program of LeNet-300-100 at ``lanes`` in each format, as ``vqe compress`` writes it
    (the lowering is cached, so both formats share it)."""
    from model.compress.pipeline import compress
    return {fmt: compress("lenet300", "deepcomp", lanes=lanes, seed=seed, progress=False, sparse_format=fmt)
            for fmt in FORMATS}


def measure(program, x, labels, images: int, backend: str) -> dict:
    """Steady-state cycles (per layer and per inference), useful MACs and utilization; energy per inference."""
    from scripts.experiments.pes import measure as pes_measure
    from sim.run import run_program
    runs = [run_program(program, x[:n], labels[:n], backend) for n in (1, 1 + images)]
    for r in runs:
        if r["bit_exact"] is not True:
            raise RuntimeError(f"{program.meta['method']} ({program.config.lanes} lanes) is not bit-exact on "
                               f"{backend}: {r['mismatches']} output mismatches, counters {r['counter_mismatches']}")
    lanes = program.config.lanes
    per = lambda a, b: (b - a) / images   # noqa: E731
    layer_cycles = [per(a["cycles"], b["cycles"]) for a, b in zip(runs[0]["layers"], runs[1]["layers"])]
    cycles = per(runs[0]["cycles"], runs[1]["cycles"])
    macs = per(runs[0]["counters"]["macs"], runs[1]["counters"]["macs"])
    energy = pes_measure(program, x, labels, backend)
    return {"lanes": lanes, "images": images, "bytes": int(program.meta["compression"]["bytes"]),
            "cycles_per_inference": cycles, "cycles_per_layer": layer_cycles,
            "first_image_cycles": runs[0]["cycles"], "macs_per_inference": macs,
            "zero_skips_per_inference": per(runs[0]["counters"]["zero_skips"], runs[1]["counters"]["zero_skips"]),
            "utilization_layers": macs / (sum(layer_cycles) * lanes),
            "utilization_inference": macs / (cycles * lanes),
            "energy_pj_per_inference": energy["energy_pj_per_inference"], "energy_scenario": energy["energy_scenario"],
            "bit_exact": True}


def markdown(rows: list[dict]) -> str:
    lines = ["# Column-wise sparse layers on the engine: LeNet-300-100, Deep Compression", "",
             "Steady state per inference on Verilator, bit-exact with the golden model. Utilization is useful MACs / "
             "(cycles x lanes), over the layers' cycles and over the whole inference "
             "(`scripts/experiments/columns_engine.py`).", "",
             "| lanes | format | bytes | cycles per layer | cycles / inference | useful MACs | utilization, layers | "
             "utilization, inference | energy / inference (nJ) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['lanes']} | {r['format']} | {r['bytes']:,} | "
                     f"{' / '.join(f'{c:,.0f}' for c in r['cycles_per_layer'])} | {r['cycles_per_inference']:,.0f} | "
                     f"{r['macs_per_inference']:,.0f} | {r['utilization_layers']:.3f} | "
                     f"{r['utilization_inference']:.3f} | {r['energy_pj_per_inference'] / 1e3:,.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for fmt, color in zip(FORMATS, ("C0", "C1")):
        for key, style in (("utilization_layers", "-"), ("utilization_inference", ":")):
            pts = sorted((r["lanes"], r[key]) for r in rows if r["format"] == fmt)
            if pts:
                ax.plot(*zip(*pts), style, color=color, marker="o",
                        label=f"{fmt}, {'layers' if style == '-' else 'whole inference'}")
    ax.axhline(UTILIZATION_AIM, color="grey", linestyle="--", linewidth=1, label="issue 16 target")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["lanes"] for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("lanes (one PE)")
    ax.set_ylabel("useful MACs / (cycles x lanes)")
    ax.set_ylim(0, 1)
    ax.set_title("LeNet-300-100 Deep Compression on Verilator, steady state", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def measure_all(lanes_list, images: int, backend: str) -> list[dict]:
    """Every lane count in both formats."""
    from tqdm import tqdm

    from model.nets.inputs import load_inputs
    rows = []
    with tqdm(total=len(lanes_list) * len(FORMATS), desc="programs", unit="run") as bar:
        for lanes in lanes_list:
            for fmt, program in programs(lanes).items():
                bar.set_postfix_str(f"lanes {lanes}, {fmt}")
                x, labels, _ = load_inputs(program.meta, 1 + images, 0, 1)
                rows.append({"format": fmt, **measure(program, x, labels, images, backend)})
                bar.update()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="What is measured and how: see the module docstring.")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8], help="lane counts (default 1 2 4 8)")
    parser.add_argument("--images", type=int, default=10,
                        help="steady-state images per measurement, after the first (default 10)")
    parser.add_argument("--backend", default="verilator", choices=("verilator", "icarus", "amaranth"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None,
                        help="put the report's section (sim.report.sections.experiments) in this REPORT.md")
    parser.add_argument("--replot", action="store_true", help="write the outputs from --json, without measuring")
    args = parser.parse_args(argv)
    from model.contract.config import LANES
    if args.images < 1 or any(n not in LANES for n in args.lanes):
        parser.error(f"--images must be positive and --lanes among {', '.join(map(str, LANES))}")
    if args.report and not args.report.exists():
        parser.error(f"--report {args.report}: no such report (vqe report writes it)")
    if args.replot:
        if args.json is None or not args.json.exists():
            parser.error("--replot reads --json, which must exist")
        try:
            result = json.loads(args.json.read_text())
            rows = result["rows"]
        except (ValueError, KeyError) as e:
            parser.error(f"--replot: {args.json} is not this script's JSON ({e})")
    else:
        result = {"network": "lenet300", "method": "deepcomp", "backend": args.backend, "aim": UTILIZATION_AIM,
                  "rows": measure_all(args.lanes, args.images, args.backend)}
        rows = result["rows"]
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(rows)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.plot:
        plot(rows, args.plot)
    if args.report:
        from sim.report.sections.experiments import columns_engine_lines
        from sim.report.sections.pes import replace_section
        replace_section(args.report, columns_engine_lines(result))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
