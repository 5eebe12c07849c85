"""The energy and area report: REPORT.md, energy.json, area.json and PNG plots, written safely.

`write_report` composes the document from its sections (`sim.report.sections`)
and only ever writes the file names in `sim.report.files.REPORT_FILES`, and
only into a directory that holds none of them or holds a REPORT.md it wrote
(recognised by `sim.report.files.MARKER` on its first line), so it cannot
overwrite a user's files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from model.contract.errors import VqeError
from sim.report.area.sweep import AREA_FIELDS
from sim.report.energy import registry
from sim.report.energy.network import NetworkData
from sim.report.energy.pricing import energy_records, network_energy
from sim.report.energy.resident import ResidentSweep, sweep_energy, sweep_records
from sim.report.energy.table import EnergyTable, load_energy_table
from sim.report.files import (AREA_JSON, EARLIER_MARKERS, ENERGY_JSON, EXTRA_FILES, MARKER, PLOT_AREA, PLOT_BITS,
                              PLOT_ENERGY, PLOT_RESIDENT, REPORT_FILES, REPORT_MD)
from sim.report.formatting import display_path
from sim.report.plots import plot_area, plot_energy_breakdown, plot_energy_vs_bits, plot_energy_vs_weight_sram
from sim.report.sections.area import area_section
from sim.report.sections.energy import figures_section, network_section
from sim.report.sections.method import method_section
from sim.report.sections.resident import resident_section

#: Fields of an area record that area.json keeps besides `AREA_FIELDS` (stable ones: no timings or cache flags).
AREA_EXTRA_FIELDS = ("engine", "transistors_logic", "transistors_memory", "transistors_exact", "pnr_error")
#: Fields of each per-module row area.json keeps.
AREA_MODULE_FIELDS = ("module", "instances", "lut4", "dff", "carry", "bram", "dsp", "transistors")


class ReportError(VqeError):
    """The report cannot be written (e.g. it would overwrite a user's file)."""


def _check_out_dir(out: Path) -> None:
    """Refuse ``out`` unless writing the report there overwrites only files a report wrote.

    Raises
    ------
    ReportError
        If ``out`` is not a directory, or holds a report file name not written by
        ``vqe report`` or not a regular file.
    """
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out} exists and is not a directory")
    present = [n for n in REPORT_FILES if (out / n).exists() or (out / n).is_symlink()]
    if not present:
        return
    md = out / REPORT_MD
    try:
        ours = md.is_file() and not md.is_symlink() and \
            md.read_text(errors="replace").startswith((MARKER, *EARLIER_MARKERS))
    except OSError:
        ours = False
    if not ours:
        raise ReportError(f"{out / present[0]} exists and was not written by vqe report; "
                          "refusing to overwrite it (choose another output directory)")
    for n in present:
        if not (out / n).is_file() or (out / n).is_symlink():
            raise ReportError(f"{out / n} is not a regular file; refusing to overwrite it")


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def area_json_records(records: Sequence[Mapping]) -> list[dict]:
    """area.json records: the contract fields plus the transistor split and per-module rows.

    Parameters
    ----------
    records : sequence of dict
        Output of `sim.report.area.sweep.sweep` (or records with at least `AREA_FIELDS`).

    Raises
    ------
    ValueError
        If a record lacks one of `AREA_FIELDS`.
    """
    out = []
    for r in records:
        missing = [k for k in AREA_FIELDS if k not in r]
        if missing:
            raise ValueError(f"area record lacks {', '.join(missing)}")
        rec = {k: r[k] for k in AREA_FIELDS}
        # Stable fields only (no timings or cache flags), so an unchanged design
        # regenerates a byte-identical file.
        rec.update({k: r[k] for k in AREA_EXTRA_FIELDS if k in r})
        if "modules" in r:
            rec["modules"] = [{k: m[k] for k in AREA_MODULE_FIELDS} for m in r["modules"]]
        out.append(rec)
    return out


def _markdown(table: EnergyTable, results: Sequence[tuple], area_records: Sequence[Mapping],
              extra_md: Sequence[str], resident: Sequence[tuple] = ()) -> list[str]:
    """REPORT.md's lines: title, energy figures, one section per network, weights resident on chip (the
    priced sweeps ``resident``, if any), method, area, then ``extra_md``."""
    md = [MARKER, "", "# VQ Engine: energy and area report", "",
          f"Energy per inference (one input image) from exact event counters and the energy table "
          f"`{display_path(table.path)}` ({table.name}); area from yosys, fmax from nextpnr-ice40. "
          f"Machine-readable: [{ENERGY_JSON}]({ENERGY_JSON}) (picojoules), [{AREA_JSON}]({AREA_JSON}).", "",
          *figures_section(table)]
    for net, res in results:
        md += network_section(net, res)
    md += resident_section(resident)
    md += method_section(table, registry.SCENARIOS.values())
    md += area_section(area_records)
    return md + list(extra_md)


def write_report(out_dir: str | os.PathLike, networks_data: Sequence[NetworkData],
                 area_records: Sequence[Mapping], energy_table_path: str | os.PathLike | None = None,
                 extra_md: Sequence[str] = (), extra_files: Mapping[str, bytes] | None = None,
                 resident: Sequence[ResidentSweep] = ()) -> dict[str, Path]:
    """Write REPORT.md, energy.json, area.json and the plots into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output directory; created if missing.  Must not hold a file named
        like a report file that this function did not write.
    networks_data : sequence of NetworkData
        Networks and their counters.
    area_records : sequence of dict
        Area sweep results (`sim.report.area.sweep.sweep`); may be empty.
    energy_table_path : path, optional
        Energy table (TOML); the project's default if omitted.
    extra_md : sequence of str
        Markdown lines appended to REPORT.md (e.g. the PVQ section).
    extra_files : dict of str to bytes, optional
        Further files (plots of ``extra_md``), each named in `EXTRA_FILES`.
    resident : sequence of ResidentSweep
        Programs run at each weight-SRAM capacity and job size
        (`sim.report.energy.resident.resident_sweep`): their section, records and `PLOT_RESIDENT`.

    Returns
    -------
    dict of str to Path
        The files written, by name.

    Raises
    ------
    EnergyTableError
        If the energy table is missing or invalid.
    ReportError
        If writing would overwrite a file the report does not own.
    """
    table = load_energy_table(energy_table_path)
    out = Path(out_dir)
    _check_out_dir(out)
    extra_files = dict(extra_files or {})
    stray = [n for n in extra_files if n not in EXTRA_FILES]
    if stray:
        raise ReportError(f"extra report file {stray[0]!r} is not one of {', '.join(EXTRA_FILES)}")
    if not networks_data:
        raise ReportError("no networks to report on")

    results = [(net, network_energy(net, table)) for net in networks_data]
    files: dict[str, bytes] = {}
    records = [rec for net, res in results for rec in energy_records(net, res)]
    priced = [(sweep, sweep_energy(sweep, table)) for sweep in resident]
    records += [rec for _, points in priced for rec in sweep_records(points)]
    files[ENERGY_JSON] = (json.dumps(records, indent=1) + "\n").encode()
    files[AREA_JSON] = (json.dumps(area_json_records(area_records), indent=1) + "\n").encode()
    files[PLOT_ENERGY] = plot_energy_breakdown(results)
    files[PLOT_BITS] = plot_energy_vs_bits(results)
    if area_records:
        files[PLOT_AREA] = plot_area(area_records)
    if priced:
        files[PLOT_RESIDENT] = plot_energy_vs_weight_sram(priced)
    files.update(extra_files)
    files[REPORT_MD] = ("\n".join(_markdown(table, results, area_records, extra_md, priced)).rstrip()
                        + "\n").encode()

    out.mkdir(parents=True, exist_ok=True)
    # REPORT.md first: it carries the marker that lets a later run overwrite
    # the other files, even if this run is interrupted after it.
    written = {}
    for name in [REPORT_MD, *(n for n in files if n != REPORT_MD)]:
        _write(out / name, files[name])
        written[name] = out / name
    # A plot this run did not produce (no area data) would be stale; the
    # directory is ours (checked above), so the old one goes.
    for name in REPORT_FILES:
        if name not in files and (out / name).is_file():
            (out / name).unlink()
    return written


def write_area_only(out_dir: str | os.PathLike, area_records: Sequence[Mapping]) -> dict[str, Path]:
    """Rewrite only the area part of a report ``vqe report`` wrote in ``out_dir``: area.json, the area plot,
    and REPORT.md's "Area and fmax" section (the rest of REPORT.md is kept as it is).

    Raises
    ------
    ReportError
        If ``out_dir`` holds no REPORT.md written by ``vqe report``, or it has no area section.
    """
    out = Path(out_dir)
    _check_out_dir(out)
    md_path = out / REPORT_MD
    if not md_path.is_file():
        raise ReportError(f"{md_path} does not exist: write the whole report first (vqe report -o {out})")
    lines = md_path.read_text().split("\n")
    heading = area_section([])[0]
    if heading not in lines:
        raise ReportError(f"{md_path} has no {heading!r} section to replace")
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = area_section(area_records)
    files = {AREA_JSON: (json.dumps(area_json_records(area_records), indent=1) + "\n").encode(),
             REPORT_MD: ("\n".join(lines[:start] + body + lines[end:]).rstrip() + "\n").encode()}
    if area_records:
        files[PLOT_AREA] = plot_area(area_records)
    written = {}
    for name, data in files.items():
        _write(out / name, data)
        written[name] = out / name
    return written
