"""``vqe report``: energy from the golden model's exact counters, area and fmax from synthesis.

The counters come from the golden model on ``images`` test inputs and are
cross-checked, outputs and counters, against an RTL backend on a few of them
(`sim.report.programs`); each program is also run by the golden model with its
weights resident in a weight SRAM of each capacity, over jobs of 1 to 64 images
(`sim.report.programs.residency_data`).  The area sweep elaborates the engine at
each lanes x codebook depth with a real codebook (`sim.report.engines`) and synthesizes it;
results are cached by Verilog text and tool versions, and the cache ships in
the repository, so an unchanged engine is not synthesized again.  The
document is written by `sim.report.document.write_report`, with the PVQ,
Deep Compression and universal-codebook sections after it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from sim.errors import CliError
from sim.report.area.sweep import SWEEP_DEPTHS, SWEEP_LANES
from sim.report.paths import AREA_CACHE, DEFAULT_PROGRAM, DEFAULT_PROGRAMS, PVQ_TABLE, PVQ_ZOO
from sim.report.progress import log

#: The sweep's grid (lanes, codebook depths); ``--quick`` synthesizes only `sim.report.engines.HEADLINE`.
SWEEP_GRID = (SWEEP_LANES, SWEEP_DEPTHS)


def area_records(quick: bool = False, pes: Sequence[int] | None = None, jobs: int | None = None,
                 progress: bool = True, cached_only: bool = False, targets: Sequence[str] | None = None
                 ) -> list[dict]:
    """The area sweep (`sim.report.area.sweep`) on every target, and the engine with every optional unit.

    Parameters
    ----------
    quick : bool
        Only the `sim.report.engines.HEADLINE` engine (lanes 4, depth 256, one PE) on each target.
    pes : sequence of int, optional
        The processing-element axis; default `sim.report.area.sweep.sweep_pes` (1 until the engine
        has the parameter).
    jobs : int, optional
        Tool runs at once (default: the CPUs).
    progress : bool
        Show progress bars.
    cached_only : bool
        Run no tool: only the configurations already in the cache (the report lists the others as not
        synthesized).
    targets : sequence of str, optional
        The targets (`sim.report.area.targets.TARGETS` names; default all of them).

    Returns
    -------
    list of dict
        The sweep's records (``engine`` "kmeans"), then one per target for the engine with every
        optional unit (``engine`` "all-units"), then the processing-element table's other engines at
        their PEs (``engine`` "universal", "deepcomp": `sim.report.engines.PES_ENGINES`).
    """
    from sim.report.area.sweep import sweep, sweep_pes, sweep_points
    from sim.report.area.synthesis import cached_result, synthesize
    from sim.report.area.targets import TARGETS
    from sim.report.engines import HEADLINE, full_engine_verilog, sweep_engine_verilog
    from sim.report.sections.area import ENGINE_ALL_UNITS, ENGINE_KMEANS

    lanes, depths = ((HEADLINE[0],), (HEADLINE[1],)) if quick else SWEEP_GRID
    targets = tuple(targets or TARGETS)
    points = sweep_points(lanes, depths, (1,) if quick else tuple(pes or sweep_pes()), targets)
    log(f"area: {'reading' if cached_only else 'synthesizing'} {len(points)} engine configuration(s) "
        f"({'from' if cached_only else 'cached in'} {AREA_CACHE}) ...")
    records = [{"engine": ENGINE_KMEANS, **r}
               for r in sweep(lambda n, k, p: sweep_engine_verilog(n, k, p, progress), points,
                              cache_dir=AREA_CACHE, jobs=jobs, progress=progress, cached_only=cached_only)]
    if not quick:
        log("area: the engine with every optional unit, on every target ...")
        text, top = full_engine_verilog(progress)
        for target in (TARGETS[t] for t in targets):
            r = (cached_result(text, top, AREA_CACHE, target=target) if cached_only
                 else synthesize(text, top, AREA_CACHE, target=target))
            if r is not None:
                records.append({"engine": ENGINE_ALL_UNITS, "lanes": HEADLINE[0], "pes": 1,
                                "codebook_depth": HEADLINE[1], **r})
        records += _pes_engine_records(jobs, progress, cached_only, targets)
    return records


def _pes_engine_records(jobs: int | None, progress: bool, cached_only: bool,
                        targets: Sequence[str] | None = None) -> list[dict]:
    """The processing-element table's other engines (`sim.report.engines.PES_ENGINES`) at their PEs, on ``targets``
    (default all)."""
    from sim.report.area.sweep import Point, sweep
    from sim.report.area.targets import ECP5_85F, ICE40_HX8K, TARGETS
    from sim.report.engines import HEADLINE, PES_ENGINES, config_verilog

    targets = tuple(targets or TARGETS)

    log(f"area: the engines of {', '.join(PES_ENGINES)} against processing elements ...")
    records = []
    for name, engine in PES_ENGINES.items():
        at = [(t, p) for t, axis in ((ICE40_HX8K, engine.ice40_pes), (ECP5_85F, engine.pes)) if t.name in targets
              for p in axis]
        configs = {p: engine.config_at(HEADLINE[0], p) for p in sorted({p for _, p in at})}
        points = [Point(t, configs[p].lanes, p, configs[p].codebook_depth) for t, p in at]
        records += [{"engine": name, **r}
                    for r in sweep(lambda n, k, p, configs=configs: config_verilog(configs[p]), points,
                                   cache_dir=AREA_CACHE, jobs=jobs, timeout_s=engine.timeout_s, progress=progress,
                                   cached_only=cached_only)]
    return records


def make_area_report(output: str | os.PathLike, *, quick: bool = False, pes: Sequence[int] | None = None,
                     jobs: int | None = None, progress: bool = True, cached_only: bool = False,
                     targets: Sequence[str] | None = None) -> None:
    """Regenerate only the area part of the report in ``output`` (`sim.report.document.write_area_only`):
    `area_records`, then area.json, the area plot and REPORT.md's area section; nothing is simulated.

    Raises
    ------
    sim.report.document.ReportError
        If ``output`` holds no report written by ``vqe report``.
    """
    from sim.report.document import write_area_only
    if targets and not cached_only:   # synthesize what the targets lack, then report every cached record
        area_records(quick, pes, jobs, progress, False, targets)
    written = write_area_only(output, area_records(quick, pes, jobs, progress, bool(targets) or cached_only))
    log("wrote " + ", ".join(str(p) for p in written.values()))


def read_json_table(path: Path):
    """A JSON table an experiment driver wrote (e.g. ``reports/pvq_table.json``), or None if it is absent.

    Raises
    ------
    sim.errors.CliError
        If the file exists but cannot be read or is not JSON.
    """
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot read: {exc}") from None


def report_programs(programs: Sequence[str | os.PathLike] | None) -> list[Path]:
    """The programs to report on: those given, or the default ones that exist.

    Raises
    ------
    sim.errors.CliError
        If a program does not exist.
    """
    paths = [Path(p) for p in (programs or [DEFAULT_PROGRAM] + [p for p in DEFAULT_PROGRAMS[1:] if p.exists()])]
    for p in paths:
        if not p.exists():
            raise CliError(f"{p} does not exist; create it with `vqe compress` (or `make compress`)")
    return paths


def make_report(output: str | os.PathLike, programs: Sequence[str | os.PathLike] | None = None, *,
                images: int = 100, cross_check: int = 2, backend: str = "icarus", quick: bool = False,
                energy_table: str | os.PathLike | None = None, progress: bool = True,
                pes: Sequence[int] | None = None, jobs: int | None = None, cached_only: bool = False) -> None:
    """Write the whole report into ``output``: energy, area, and the PVQ, Deep Compression and universal sections.

    Parameters
    ----------
    output : path
        Report directory (see `sim.report.document.write_report`).
    programs : sequence of path, optional
        Programs to report on; default ``build/lenet300.vqz`` and the other default programs that exist.
    images : int
        Test inputs for the golden counters.
    cross_check : int
        Of those, how many also run on the RTL ``backend`` (0: none).
    backend : str
        RTL backend of the cross-check.
    quick : bool
        Synthesize only the headline engine instead of the lanes x depth sweep.
    energy_table : path, optional
        Energy table (TOML) instead of the default.
    progress : bool
        Show progress bars.
    pes, jobs
        The area sweep's processing elements and parallel tool runs (`area_records`).
    cached_only : bool
        Run no synthesis tool: every area figure from the cache (`area_records`); what is not cached is
        reported as not synthesized.

    Raises
    ------
    sim.errors.CliError
        If a program does not exist, two programs share a name, or an experiment table is unreadable.
    """
    from model.program.file import Program
    from sim.report.area.synthesis import cached_result, synthesize
    from sim.report.document import write_report
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.table import load_energy_table
    from sim.report.engines import HEADLINE, PVQ_AREA_K_MAX, pvq_engine_verilog, universal_engine_verilog
    from sim.report.programs import distinct_names, network_data, program_facts, residency_data
    from sim.report.sections.deepcomp import deepcomp_section
    from sim.report.sections.experiments import experiments_section
    from sim.report.sections.pvq import pvq_area_lines, pvq_section
    from sim.report.sections.universal import universal_section

    paths = report_programs(programs)
    nets = distinct_names([network_data(p, images, cross_check, backend) for p in paths], paths)
    resident = [residency_data(p, net.name) for net, p in zip(nets, paths)]
    records = area_records(quick, pes, jobs, progress, cached_only)
    area_of = cached_result if cached_only else synthesize
    metas = {net.name: Program.load(p).meta for net, p in zip(nets, paths)}
    table = load_energy_table(energy_table)
    results = [(net, network_energy(net, table)) for net in nets]

    extra_md, extra_files = pvq_section(results, {name: program_facts(meta) for name, meta in metas.items()},
                                        read_json_table(PVQ_TABLE), read_json_table(PVQ_ZOO))
    log(f"area: the engine with a PVQ unit (K <= {PVQ_AREA_K_MAX}) ...")
    pvq_area = area_of(*pvq_engine_verilog(progress), cache_dir=AREA_CACHE)
    extra_md += pvq_area_lines(pvq_area, *HEADLINE, PVQ_AREA_K_MAX)
    extra_md += deepcomp_section(results, metas)
    universal_area = None
    if any(net.method == "universal" for net in nets):
        log("area: the universal-ROM engine (cached) ...")
        universal_area = area_of(*universal_engine_verilog(), cache_dir=AREA_CACHE)
    extra_md += universal_section(results, universal_area)
    extra_md += experiments_section(records)
    written = write_report(output, nets, records, energy_table, extra_md, extra_files, resident=resident)
    log("wrote " + ", ".join(str(p) for p in written.values()))
