"""``vqe report``: energy from the golden model's exact counters, area and fmax from synthesis.

The counters come from the golden model on ``--images`` test inputs and are
cross-checked, outputs and counters, against an RTL backend on a few of them.
The area sweep elaborates the engine at each lanes x codebook depth with a real
codebook (k-means of LeNet-300-100's first layer) and synthesizes it; results
are cached by Verilog text and tool versions, and the cache ships in the
repository, so an unchanged engine is not synthesized again.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROGRAM = REPO / "build" / "lenet300.vqz"
#: Reported beside the default when present (``make`` compresses it): the PVQ scenario.
PVQ_PROGRAM = REPO / "build" / "lenet300-pvq.vqz"
#: Codebooks the area sweep elaborates the engine with (one per lanes x depth).
SWEEP_ROMS = REPO / "reports" / "area-roms.npz"
#: Synthesis results, keyed by Verilog text and tool versions; committed.
AREA_CACHE = REPO / "reports" / "area-cache"
#: The engine the report headlines (and ``--quick`` synthesizes alone).
HEADLINE = (4, 256)


def log(msg: str) -> None:
    print(f"vqe report: {msg}", file=sys.stderr)


def sweep_rom(lanes: int, depth: int, progress: bool) -> np.ndarray:
    """int8 codebook of ``depth`` codewords of dimension ``lanes`` for the area sweep.

    k-means of LeNet-300-100's first-layer sub-vectors (the network the report is
    about), computed once and kept in ``reports/area-roms.npz`` so that the
    synthesized Verilog, and so the cache key, does not depend on retraining.
    """
    key = f"lanes{lanes}_depth{depth}"
    stored = dict(np.load(SWEEP_ROMS)) if SWEEP_ROMS.exists() else {}
    if key not in stored:
        from model.networks import get_network
        from model.vq import kmeans, split_subvectors
        w = get_network("lenet300", progress=progress).linears()[0].weight.detach().numpy()
        codebook, _ = kmeans(split_subvectors(w, lanes).reshape(-1, lanes), depth, seed=0)
        stored[key] = np.clip(np.round(codebook / np.abs(codebook).max() * 127), -128, 127).astype(np.int8)
        SWEEP_ROMS.parent.mkdir(parents=True, exist_ok=True)
        np.savez(SWEEP_ROMS, **stored)
    return stored[key]


def make_engine_verilog(lanes: int, depth: int, progress: bool = True) -> tuple[str, str]:
    from model.layout import EngineConfig

    from .top import engine_verilog
    rom = sweep_rom(lanes, depth, progress)
    cfg = EngineConfig(lanes=lanes, codebook_depth=depth, rom=tuple(map(tuple, rom.tolist())))
    return engine_verilog(cfg, name="vqe_engine", simulation=False), "vqe_engine"


def network_data(program_path: Path, images: int, cross_check: int, backend: str, progress: bool):
    """Counters of ``images`` test inputs (golden), cross-checked on ``cross_check`` of them on ``backend``."""
    from model.golden import GoldenEngine
    from model.program import Program

    from .cli import load_inputs
    from .energy import NetworkData, layers_from_decoded
    from .run import run_program
    program = Program.load(program_path)
    x, labels, _ = load_inputs(program.meta, images, 0, 1)
    image, _, _ = program.dram_image(x)
    engine = GoldenEngine(program.config)
    _, decoded = engine.decode(image)
    result = engine.run(image)
    cycles = None
    if cross_check:
        log(f"cross-checking {cross_check} images on {backend} ...")
        summary = run_program(program, x[:cross_check], labels[:cross_check] if labels is not None else None,
                              backend)
        if not summary["bit_exact"]:
            raise RuntimeError(f"{backend} disagrees with the golden model: {summary['counter_mismatches']}")
        cycles = summary["cycles"] * images / cross_check
    # Programs of one network with other methods are told apart in energy.json by name.
    method = program.meta["method"]
    name = program.meta["network"] + ("" if method == "kmeans" else f"-{method}")
    return NetworkData(name, program.config.lanes,
                       layers_from_decoded(decoded, program.config.index_bits), result.layer_counters, images,
                       io_counters=result.io_counters, cycles=cycles, method=program.meta["method"],
                       cross_check_backend=backend if cross_check else None, cross_check_images=cross_check)


#: Accuracy of PVQ against k-means VQ at equal bits (python -m model.experiments_pvq).
PVQ_TABLE = REPO / "reports" / "pvq_table.json"
#: Largest K of the engine whose PVQ unit the report synthesizes.
PVQ_AREA_K_MAX = 8


def pvq_section(progress: bool) -> list[str]:
    """PVQ against k-means VQ: accuracy at equal bits, and the PVQ unit's area against the MAC path."""
    import json

    from model.layout import EngineConfig

    from .area import synthesize
    from .top import engine_verilog
    lines = ["", "## Pyramid VQ against k-means VQ", ""]
    if PVQ_TABLE.exists():
        t = json.loads(PVQ_TABLE.read_text())
        lines += [f"Accuracy on the {t['test_images']} Fashion-MNIST test images of {t['network']} "
                  f"(float network {100 * t['float_accuracy']:.2f} %), both methods with "
                  f"{t['finetune_epochs']} fine-tuning epochs and {t['calibration_images']} calibration images. "
                  "Bits per weight count everything stored: index and 8-bit scale (PVQ) or index and "
                  "codebook (VQ), plus the 64-bit bias and requantization words of every row. "
                  f"Regenerate with `python -m model.experiments_pvq reports/pvq_table.json` "
                  f"(took {t['total_seconds'] / 60:.0f} min).", "", t["table_markdown"], ""]
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
    lines += [f"Area (iCE40 cells from yosys `synth_ice40`, transistors from `stat -tech cmos`) of the "
              f"lanes={lanes} engine's PVQ unit (`PvqDotProduct`, K up to {PVQ_AREA_K_MAX}, with its V(n, k) "
              f"table ROM) against its codebook MAC path (`MacLanes` with the {depth}-entry `CodebookRom`), "
              "in one elaborated engine that has both:", "",
              "| block | LUT4 | DFF | CARRY | BRAM | transistors |", "|---|---:|---:|---:|---:|---:|"]
    for name, b in (("PVQ unit", pvq), ("codebook ROM + MAC lanes", mac)):
        lines.append(f"| {name} | {b['lut4']} | {b['dff']} | {b['carry']} | {b['bram']} | {b['transistors']:,} |")
    lines += ["", f"The whole engine with both paths: {res['lut4']} LUT4, {res['dff']} DFF, fmax "
              + (f"{res['fmax_mhz']:.1f} MHz" if res.get("fmax_mhz") else "n/a (did not place on the HX8K)")
              + ".", ""]
    return lines


def make_report(args) -> None:
    from .area import sweep
    from .cli import CliError
    from .report import write_report
    programs = [Path(p) for p in (args.program or [DEFAULT_PROGRAM]
                                  + ([PVQ_PROGRAM] if PVQ_PROGRAM.exists() else []))]
    for p in programs:
        if not p.exists():
            raise CliError(f"{p} does not exist; create it with `vqe compress` (or `make compress`)")
    nets = [network_data(p, args.images, args.cross_check, args.backend, not args.quiet) for p in programs]
    lanes, depths = ((HEADLINE[0],), (HEADLINE[1],)) if args.quick else ((1, 2, 4, 8), (16, 64, 256))
    log(f"area: synthesizing {len(lanes) * len(depths)} engine configuration(s) (cached in {AREA_CACHE}) ...")
    records = sweep(lambda l, d: make_engine_verilog(l, d, not args.quiet), lanes=lanes, depths=depths,
                    cache_dir=AREA_CACHE, progress=not args.quiet)
    written = write_report(args.output, nets, records, args.energy_table)
    report_md = Path(args.output) / "REPORT.md"
    report_md.write_text(report_md.read_text() + "\n".join(pvq_section(not args.quiet)))
    log("wrote " + ", ".join(str(p) for p in written.values()))
