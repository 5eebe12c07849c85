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

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PROGRAM = REPO / "build" / "lenet300.vqz"
#: Reported beside the default when present (``make`` compresses it): the PVQ scenario.
PVQ_PROGRAM = REPO / "build" / "lenet300-pvq.vqz"
#: Also reported when present: PVQ at the k-means program's bits per weight (8 lanes, K = 2/1/1),
#: for energy at equal bits.  ``vqe compress --network lenet300 --method pvq --lanes 8
#: --bits-per-weight 2 -o build/lenet300-pvq-2b.vqz``
PVQ_EQUAL_BITS_PROGRAM = REPO / "build" / "lenet300-pvq-2b.vqz"
#: Also reported when present (``make`` compresses them): Deep Compression, and the two
#: networks on the universal ROM.
DEEPCOMP_PROGRAM = REPO / "build" / "lenet300-deepcomp.vqz"
UNIVERSAL_PROGRAMS = (REPO / "build" / "lenet300-universal.vqz", REPO / "build" / "lenet5-universal.vqz")
#: Programs reported by default, those after the first only if they exist.
DEFAULT_PROGRAMS = (DEFAULT_PROGRAM, PVQ_PROGRAM, PVQ_EQUAL_BITS_PROGRAM, DEEPCOMP_PROGRAM, *UNIVERSAL_PROGRAMS)
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
        from model.nets.networks import get_network
        from model.compress.kmeans import kmeans, split_subvectors
        w = get_network("lenet300", progress=progress).linears()[0].weight.detach().numpy()
        codebook, _ = kmeans(split_subvectors(w, lanes).reshape(-1, lanes), depth, seed=0)
        stored[key] = np.clip(np.round(codebook / np.abs(codebook).max() * 127), -128, 127).astype(np.int8)
        SWEEP_ROMS.parent.mkdir(parents=True, exist_ok=True)
        np.savez(SWEEP_ROMS, **stored)
    return stored[key]


def make_engine_verilog(lanes: int, depth: int, progress: bool = True) -> tuple[str, str]:
    from model.contract.config import EngineConfig

    from sim.backends.top import engine_verilog
    rom = sweep_rom(lanes, depth, progress)
    cfg = EngineConfig(lanes=lanes, codebook_depth=depth, rom=tuple(map(tuple, rom.tolist())))
    return engine_verilog(cfg, name="vqe_engine", simulation=False), "vqe_engine"


def golden_network_data(program, x: np.ndarray, *, cycles: float | None = None,
                        cross_check_backend: str | None = None, cross_check_images: int = 0):
    """`sim.report.energy.NetworkData` of ``program`` run by the golden model on the int8 inputs ``x``.

    Every layer is sized by its own row-stream entry width (`sim.report.energy.layers_from_decoded`).
    Programs of one network with other methods than k-means are told apart in
    energy.json by name (``lenet300-pvq``).
    """
    from model.golden.engine import GoldenEngine

    from sim.report.energy import NetworkData, layers_from_decoded
    image, _, _ = program.dram_image(x)
    engine = GoldenEngine(program.config)
    _, decoded = engine.decode(image)
    result = engine.run(image)
    method = program.meta["method"]
    name = program.meta["network"] + ("" if method == "kmeans" else f"-{method}")
    return NetworkData(name, program.config.lanes, layers_from_decoded(decoded, program.config.index_bits),
                       result.layer_counters, len(x), io_counters=result.io_counters, cycles=cycles,
                       method=method, cross_check_backend=cross_check_backend,
                       cross_check_images=cross_check_images)


def network_data(program_path: Path, images: int, cross_check: int, backend: str, progress: bool):
    """Counters of ``images`` test inputs (golden), cross-checked on ``cross_check`` of them on ``backend``."""
    from model.program.file import Program

    from sim.cli.main import load_inputs
    from sim.run import run_program
    program = Program.load(program_path)
    x, labels, _ = load_inputs(program.meta, images, 0, 1)
    cycles = None
    if cross_check:
        log(f"cross-checking {cross_check} images on {backend} ...")
        summary = run_program(program, x[:cross_check], labels[:cross_check] if labels is not None else None,
                              backend)
        if not summary["bit_exact"]:
            raise RuntimeError(f"{backend} disagrees with the golden model: {summary['counter_mismatches']}")
        cycles = summary["cycles"] * images / cross_check
    return golden_network_data(program, x, cycles=cycles, cross_check_backend=backend if cross_check else None,
                               cross_check_images=cross_check)


def distinct_names(nets: list, paths: list) -> list:
    """``nets`` with a program that repeats an earlier one's name renamed ``NAME-<lanes>lanes``.

    energy.json keys its records by network name, so two programs of one
    network and method (e.g. PVQ on 4 and on 8 lanes) must not share one.

    Raises
    ------
    sim.cli.main.CliError
        If two programs still share a name (same network, method and lanes).
    """
    import dataclasses

    from sim.cli.main import CliError
    out, seen = [], {}
    for net, path in zip(nets, paths):
        if net.name in seen:
            net = dataclasses.replace(net, name=f"{net.name}-{net.lanes}lanes")
        if net.name in seen:
            raise CliError(f"{path} and {seen[net.name]} are both {net.name}: report distinct programs")
        seen[net.name] = path
        out.append(net)
    return out


def make_report(args) -> None:
    from sim.report.area import sweep
    from sim.cli.main import CliError
    from sim.report.energy import load_energy_table, network_energy
    from sim.report.document import write_report
    programs = [Path(p) for p in (args.program or [DEFAULT_PROGRAM]
                                  + [p for p in DEFAULT_PROGRAMS[1:] if p.exists()])]
    for p in programs:
        if not p.exists():
            raise CliError(f"{p} does not exist; create it with `vqe compress` (or `make compress`)")
    nets = distinct_names([network_data(p, args.images, args.cross_check, args.backend, not args.quiet)
                           for p in programs], programs)
    lanes, depths = ((HEADLINE[0],), (HEADLINE[1],)) if args.quick else ((1, 2, 4, 8), (16, 64, 256))
    log(f"area: synthesizing {len(lanes) * len(depths)} engine configuration(s) (cached in {AREA_CACHE}) ...")
    records = sweep(lambda l, d: make_engine_verilog(l, d, not args.quiet), lanes=lanes, depths=depths,
                    cache_dir=AREA_CACHE, progress=not args.quiet)
    from model.program.file import Program

    from sim.report.pvq import program_facts, pvq_section
    facts = {net.name: program_facts(Program.load(p).meta) for net, p in zip(nets, programs)}
    table = load_energy_table(args.energy_table)
    results = [(net, network_energy(net, table)) for net in nets]
    extra_md, extra_files = pvq_section(not args.quiet, results, facts)
    from sim.report.deepcomp import deepcomp_section
    from sim.report.universal import universal_engine_verilog, universal_section
    metas = {net.name: Program.load(p).meta for net, p in zip(nets, programs)}
    extra_md = list(extra_md) + deepcomp_section(results, metas)
    universal_area = None
    if any(net.method == "universal" for net in nets):
        from sim.report.area import synthesize
        log("area: the universal-ROM engine (cached) ...")
        universal_area = synthesize(*universal_engine_verilog(), cache_dir=AREA_CACHE)
    extra_md += universal_section(results, universal_area)
    written = write_report(args.output, nets, records, args.energy_table, extra_md, extra_files)
    log("wrote " + ", ".join(str(p) for p in written.values()))
