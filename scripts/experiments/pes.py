"""Processing elements (issue 16, item 7): cycles, energy per inference and area against P, for every network.

Usage::

    nice -n 10 python -m scripts.experiments.pes [--pes 1 2 4 8] [--backend verilator]
        [--json reports/pes_table.json] [--markdown reports/pes_table.md] [--plot reports/pes_scaling.png]
    python -m scripts.experiments.pes --replot      # the markdown and the plot again, from --json
    python -m scripts.experiments.pes --networks lenet300 --methods deepcomp --update   # re-measure one program

Programs (:data:`PROGRAMS`): the ones the Makefile compresses for the report, each network the engine runs
whole (LeNet-300-100, LeNet-5, R-Net, O-Net, CREPE-tiny; k-means and the universal codebook, and LeNet-300-100's
Deep Compression and PVQ programs), at the default weight SRAM.  A program missing from ``build/`` is
compressed with the Makefile's command (``vqe compress --network N --method M -o build/...``) and kept there.
Each P is that program laid out for P processing elements by `model.program.writer.lay_out_for_pes`, the step
``vqe compress --pes P`` applies to the method's program (`model.compress.pipeline`): the streams are the same
words, reordered by row group.  A program with sparse (Huffman-coded, deepcomp) layers is instead compressed
again with ``--pes P`` (the Makefile's command plus ``--pes P``, kept as ``build/<name>-pes<P>.vqz``): its
sparse streams hold other words for each P (each PE its own sub-stream, with a copy of the Huffman table;
`model.contract.layout`), so they are written for P, not re-laid out.  Where the layout refuses (PVQ and
nearest-prototype layers run on one PE), the row says so, and it is measured as soon as the layout accepts it.

Per program and P, two engine jobs run on ``--backend`` (Verilator): one of the first test image and one of the
first two.  Both must be bit-exact against the golden model (outputs and every counter), or the script stops.
The figures per inference are the second image's, the difference of the two jobs: with the default weight SRAM
the resident layers' streams are read from DRAM and written into the weight SRAM during the first image of a
job, and read from the weight SRAM for every later one, so the second image is the steady state (the first
image's cycles, which include that load, are kept as ``first_image_cycles``).  Energy is the report's energy
model (`sim.report.energy`) on the golden model's counters of the same two jobs, their difference, with the
RTL's cycles per layer (control per cycle); the engine scenario that prices the program's layer modes as
measured.  Scaling efficiency is ``cycles(1 PE) / (P x cycles(P PEs))`` of those steady-state cycles.
Area and fmax come from ``reports/area.json`` (`vqe report`, `sim.report.area`): the record of each target at
the program's lanes, P and codebook depth, of the engine its method elaborates (the k-means sweep's engine, and
the universal and Deep Compression engines of `sim.report.engines.PES_ENGINES`); "not synthesized" where there
is none.

The whole sweep took 31 minutes (1,850 s, 48 rows, ``nice -n 10`` on two cores shared with other jobs; a Verilator
build per engine and the 9.2M-cycle CREPE-tiny frames), so it is part of ``make experiments``, not ``make reports``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]
#: (network, method, program path, the Makefile's ``vqe compress`` options for it).
PROGRAMS = [
    ("lenet300", "kmeans", "build/lenet300.vqz", ()),
    ("lenet300", "universal", "build/lenet300-universal.vqz", ()),
    ("lenet300", "deepcomp", "build/lenet300-deepcomp.vqz", ()),
    ("lenet300", "pvq", "build/lenet300-pvq.vqz", ()),
    ("lenet5", "kmeans", "build/lenet5-kmeans.vqz", ()),
    ("lenet5", "universal", "build/lenet5-universal.vqz", ()),
    ("rnet", "kmeans", "build/rnet-kmeans.vqz", ()),
    ("rnet", "universal", "build/rnet-universal.vqz", ()),
    ("onet", "kmeans", "build/onet-kmeans.vqz", ()),
    ("onet", "universal", "build/onet-universal.vqz", ()),
    ("crepe-tiny", "kmeans", "build/crepe-tiny-kmeans.vqz", ()),
    ("crepe-tiny", "universal", "build/crepe-tiny-universal.vqz", ()),
]
#: Processing elements swept (model.contract.layout.PES).
PES_SWEEP = (1, 2, 4, 8)
AREA_JSON = Path("reports/area.json")


class NotBitExact(RuntimeError):
    """An RTL run disagreed with the golden model."""


def program_for(network: str, method: str, path: str, options: Sequence[str] = ()):
    """The program at ``path``, compressed first with the Makefile's command (and ``options``) when it is missing."""
    from model.program.file import Program
    p = REPO / path
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).parent / "vqe"), "compress", "--network", network, "--method", method,
                        *options, "-o", str(p), "--quiet"], check=True, cwd=REPO)
    return Program.load(p)


def laid_out(program, pes: int):
    """``program`` for ``pes`` processing elements, or the refusal's message (a str)."""
    from model.contract.errors import ProgramError
    from model.program.writer import lay_out_for_pes
    try:
        return lay_out_for_pes(program, pes)
    except ProgramError as e:
        return str(e)


def has_sparse_layers(program) -> bool:
    """Whether ``program`` has sparse (Huffman-coded) layers, whose streams are written for one P."""
    return any(layer.get("mode") == "huffman" for layer in program.meta["layers"])


def pes_path(path: str, pes: int) -> str:
    """Where a program compressed with ``--pes P`` is kept: ``build/x.vqz`` -> ``build/x-pes4.vqz`` (P = 1: ``path``)."""
    if pes == 1:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-pes{pes}{p.suffix}"))


def program_at(network: str, method: str, path: str, options: Sequence[str], pes: int, base=None):
    """A :data:`PROGRAMS` entry's program for ``pes`` processing elements, its path, or the refusal's message (a
    str) and the path.

    ``base`` (default :func:`program_for` the entry) laid out for ``pes`` (:func:`laid_out`); a program with sparse
    layers compressed again with ``--pes`` instead (:func:`pes_path`), as its sparse streams depend on P.
    """
    base = base if base is not None else program_for(network, method, path, options)
    if pes > 1 and has_sparse_layers(base):
        at = pes_path(path, pes)
        return program_for(network, method, at, (*options, "--pes", str(pes))), at
    return laid_out(base, pes), path


def _difference(a: Mapping, b: Mapping) -> dict:
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}


def steady_state_net(program, x, run1: Mapping, run2: Mapping):
    """`NetworkData` of the second image of a job: the golden counters of the 2-image job minus the 1-image job's,
    with the RTL's cycles per layer (and the rest of the job's cycles on the job-level part) the same way."""
    from sim.report.energy.golden import golden_network_data
    one, two = golden_network_data(program, x[:1]), golden_network_data(program, x[:2])
    layers = [_difference(a, b) for a, b in zip(one.per_layer_counters, two.per_layer_counters)]
    io = _difference(one.io_counters or {}, two.io_counters or {})
    per_layer = [(a["cycles"], b["cycles"]) for a, b in zip(run1["layers"], run2["layers"])]
    cycles = run2["cycles"] - run1["cycles"]
    if all(c1 is not None and c2 is not None for c1, c2 in per_layer):
        for counters, (c1, c2) in zip(layers, per_layer):
            counters["cycles"] = c2 - c1
        io["cycles"] = cycles - sum(c["cycles"] for c in layers)
        total = None
    else:   # a backend without per-layer cycles: the total, split by the report's rule (`part_cycles`)
        total = cycles
    return dataclasses.replace(two, per_layer_counters=layers, io_counters=io, images=1, cycles=total)


def measure(program, x, labels, backend: str) -> dict:
    """One program (laid out for its P) on ``backend``: jobs of 1 and 2 images, the second image's figures.

    Raises
    ------
    NotBitExact
        If either job's outputs or counters differ from the golden model's.
    """
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.resident import engine_scenario
    from sim.report.energy.table import load_energy_table
    from sim.run import run_program
    runs = [run_program(program, x[:n], None if labels is None else labels[:n], backend) for n in (1, 2)]
    for n, r in zip((1, 2), runs):
        if r["bit_exact"] is not True:
            raise NotBitExact(f"{program.meta['network']}-{program.meta['method']} at P = {r['pes']}: a job of {n} "
                              f"image(s) on {backend} is not bit-exact (bit_exact={r['bit_exact']}, "
                              f"{r['mismatches']} output mismatches, counters {r['counter_mismatches']})")
    net = steady_state_net(program, x, *runs)
    scenario = engine_scenario(net)
    energy = network_energy(net, load_energy_table(), [scenario])[scenario]
    c = runs[1]["counters"]
    cycles = runs[1]["cycles"] - runs[0]["cycles"]
    return {"cycles_per_inference": cycles, "first_image_cycles": runs[0]["cycles"],
            "job_cycles_2_images": runs[1]["cycles"], "bit_exact": True,
            "energy_pj_per_inference": energy.total(), "energy_by_component": energy.by_component(),
            "energy_scenario": scenario,
            "macs_per_inference": c["macs"] - runs[0]["counters"]["macs"],
            "resident_layers": sum(bool(layer["resident"]) for layer in runs[1]["layers"]),
            "layers": len(runs[1]["layers"]), "sim_seconds": sum(r["sim_seconds"] for r in runs)}


def add_efficiency(rows: list[dict]) -> list[dict]:
    """Each measured row's ``scaling_efficiency`` = cycles(1) / (P x cycles(P)) against its program's P = 1 row
    (None where either is not measured); ``speedup`` = cycles(1) / cycles(P)."""
    one = {(r["network"], r["method"]): r["cycles_per_inference"] for r in rows
           if r["pes"] == 1 and r.get("cycles_per_inference")}
    for r in rows:
        base, c = one.get((r["network"], r["method"])), r.get("cycles_per_inference")
        r["speedup"] = None if not (base and c) else base / c
        r["scaling_efficiency"] = None if not (base and c) else base / (r["pes"] * c)
    return rows


def sweep(programs: Sequence[tuple], pes: Sequence[int], backend: str, area_records: Sequence[Mapping],
          progress: bool = True) -> list[dict]:
    """Every program at every P: measured rows, or rows that say why not (``refused``), each with its area."""
    from model.nets.inputs import load_inputs
    from sim.report.sections.pes import area_index, area_of
    index = area_index(area_records)
    todo = [(prog, p) for prog in programs for p in pes]
    rows = []
    bar = tqdm(total=len(todo), desc="pes", unit="run", disable=not progress)
    for network, method, path, options in programs:
        base = program_for(network, method, path, options)
        x, labels, _ = load_inputs(base.meta, 2, 0, 1)
        for p in pes:
            bar.set_postfix_str(f"{network}-{method} P={p}")
            program, at = program_at(network, method, path, options, p, base)
            cfg = base.config
            row = {"network": network, "method": method, "program": at, "pes": p, "lanes": cfg.lanes,
                   "codebook_depth": cfg.codebook_depth, "weight_sram_words": cfg.weight_sram_words,
                   "backend": backend}
            if isinstance(program, str):
                row.update(refused=program, cycles_per_inference=None, energy_pj_per_inference=None,
                           bit_exact=None)
            else:
                t0 = time.perf_counter()
                row.update(measure(program, x, labels, backend), refused=None)
                row["seconds"] = time.perf_counter() - t0
            row["area"] = area_of(index, row)
            rows.append(row)
            bar.update()
    bar.close()
    return add_efficiency(rows)


def markdown(rows: Sequence[Mapping], area_records: Sequence[Mapping] | None = None) -> str:
    """reports/pes_table.md: the report's section (`sim.report.sections.pes`) as a document of its own."""
    from sim.report.sections.pes import pes_lines
    lines = pes_lines({"rows": rows}, area_records)
    return "\n".join(["# Processing elements: cycles, energy and area against P", "",
                      "Written by `make experiments` (`scripts/experiments/pes.py`).", *lines[1:]])


def plot(rows: Sequence[Mapping], path: Path) -> Path:
    """Three panels against P, one line per program: cycles per inference, scaling efficiency, energy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    programs = list(dict.fromkeys((r["network"], r["method"]) for r in rows if not r.get("refused")))
    # One colour per network, one marker and line style per method (k-means and universal often coincide).
    colors = {n: f"C{i % 10}" for i, n in enumerate(dict.fromkeys(n for n, _ in programs))}
    methods = {m: i for i, m in enumerate(dict.fromkeys(m for _, m in programs))}
    for network, method in programs:
        mine = sorted((r for r in rows if (r["network"], r["method"]) == (network, method) and not r.get("refused")),
                      key=lambda r: r["pes"])
        i = methods[method]
        style = dict(marker="osD^vP"[i % 6], linestyle=("-", "--", ":", "-.")[i % 4], color=colors[network],
                     markerfacecolor="none" if i % 2 else colors[network], label=f"{network} {method}")
        ps = [r["pes"] for r in mine]
        axes[0].plot(ps, [r["cycles_per_inference"] for r in mine], **style)
        axes[1].plot(ps, [r["scaling_efficiency"] for r in mine], **style)
        axes[2].plot(ps, [r["energy_pj_per_inference"] / 1000 for r in mine], **style)
    for ax, title in zip(axes, ("cycles per inference", "scaling efficiency cycles(1) / (P x cycles(P))",
                                "energy per inference (nJ)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(PES_SWEEP, [str(p) for p in PES_SWEEP])
        ax.set_xlabel("processing elements P")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    axes[1].axhline(0.9, color="grey", linewidth=0.8, linestyle=":")
    axes[1].set_ylim(0, 1.05)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def merge_rows(old: Sequence[Mapping], new: Sequence[Mapping]) -> list[dict]:
    """``old`` with each (network, method, P) measured in ``new`` replaced (new ones added), in the sweep's
    order, the efficiencies computed again (a new P = 1 row changes its program's other rows)."""
    key = lambda r: (r["network"], r["method"], r["pes"])   # noqa: E731
    fresh = {key(r): r for r in new}
    rows = [dict(fresh.pop(key(r), r)) for r in old] + [dict(r) for r in fresh.values()]
    order = {(n, m): i for i, (n, m, *_) in enumerate(PROGRAMS)}
    rows.sort(key=lambda r: (order.get((r["network"], r["method"]), len(order)), r["pes"]))
    return add_efficiency(rows)


def _area_records(path: str) -> list[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pes", type=int, nargs="+", default=list(PES_SWEEP), help="processing elements (default 1 2 4 8)")
    ap.add_argument("--networks", nargs="+", default=None, help="only these networks (default every one)")
    ap.add_argument("--methods", nargs="+", default=None, help="only these methods (default every one)")
    ap.add_argument("--update", action="store_true",
                    help="keep --json's other rows: the programs and P measured now replace theirs")
    ap.add_argument("--backend", default="verilator", help="RTL backend (default verilator)")
    ap.add_argument("--area", default=str(AREA_JSON), help="area.json to read (default reports/area.json)")
    ap.add_argument("--json", default="reports/pes_table.json")
    ap.add_argument("--markdown", default="reports/pes_table.md")
    ap.add_argument("--plot", default="reports/pes_scaling.png")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the plot and the markdown from --json (area from --area as it is now)")
    ap.add_argument("--report", default=None, metavar="REPORT_MD",
                    help="also rewrite this REPORT.md's processing-elements section (only that section)")
    args = ap.parse_args(argv)
    area = _area_records(args.area)
    if args.replot:
        rows = json.loads(Path(args.json).read_text())["rows"]
    else:
        t0 = time.perf_counter()
        programs = [p for p in PROGRAMS if (args.networks is None or p[0] in args.networks)
                    and (args.methods is None or p[1] in args.methods)]
        if not programs:
            print("pes: no program of the sweep matches --networks / --methods", file=sys.stderr)
            return 2
        try:
            rows = sweep(programs, args.pes, args.backend, area)
        except NotBitExact as e:
            print(f"pes: {e}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - t0
        if args.update and Path(args.json).exists():
            rows = merge_rows(json.loads(Path(args.json).read_text())["rows"], rows)
        Path(args.json).write_text(json.dumps({"rows": rows, "backend": args.backend, "seconds": seconds},
                                              indent=1) + "\n")
        print(f"pes: {len(rows)} rows in {seconds:.0f} s")
    Path(args.markdown).write_text(markdown(rows, area))
    print(f"wrote {plot(rows, Path(args.plot))}, {args.markdown}" + ("" if args.replot else f", {args.json}"))
    if args.report:
        from sim.report.sections.pes import pes_lines, replace_section
        replace_section(args.report, pes_lines({"rows": rows}, area))
        print(f"wrote the processing-elements section of {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
