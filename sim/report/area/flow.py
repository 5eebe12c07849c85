"""The area flow for one design on one target: the yosys and nextpnr scripts, and running them in a work directory.

Per design and target (`sim.report.area.targets`), all from the same Verilog text:

1. ``synth_ice40`` or ``synth_ecp5`` (the target's cells).  The flattened netlist gives the
   totals (LUT4, flip-flops, carry, block RAM, DSP); the same synthesis without flattening
   gives a per-module breakdown (flattening lets yosys optimise across module boundaries,
   so the breakdown's sum can exceed the totals).
2. nextpnr (``nextpnr-ice40 --hx8k --package ct256``, ``nextpnr-ecp5 --85k --package
   CABGA381``) with ``--timing-allow-fail`` on the flattened netlist inside a
   port-registering wrapper (`sim.report.area.wrapper.fmax_wrapper`): fmax of the slowest
   clock domain, read from the ``--report`` JSON.

And per design, whatever the target (`run_cmos`): ``synth`` + ``abc -g cmos2`` + ``stat
-tech cmos``, a transistor estimate of the logic, per module.  Memories are kept as macros
(not mapped to flip-flops) and priced per bit, see `sim.report.area.netlist`.
"""
from __future__ import annotations

import time
from pathlib import Path

from sim.report.area.netlist import memories_from_netlist, read_yosys_json, slowest_fmax
from sim.report.area.targets import ICE40_HX8K, Target
from sim.report.area.tools import ToolError, Tools, ToolTimeout, run_tool
from sim.report.area.wrapper import WRAPPER_TOP, fmax_wrapper

#: Target of place-and-route on the iCE40 (kept for readers of the old name): see `sim.report.area.targets`.
NEXTPNR_DEVICE = ICE40_HX8K.device
#: Fixed placer seed, so fmax is reproducible run to run.
NEXTPNR_SEED = 1

FPGA_SCRIPT = """\
read_verilog {verilog}
design -save rtl
{synth} -noflatten -top {top}
tee -q -o {hier} stat -json
design -load rtl
{synth} -top {top}
tee -q -o {flat} stat -json
write_json {netlist}
"""
#: The iCE40 script (kept for readers of the old name).
ICE40_SCRIPT = FPGA_SCRIPT.replace("{synth}", ICE40_HX8K.synth)

# Place-and-route runs on the design inside a three-pin wrapper (`fmax_wrapper`):
# its own ports may outnumber the package's pins (the engine exposes its
# counters in parallel), and registering every port makes the measured fmax the
# core's register-to-register one.  The already-mapped netlist is read back, so
# only the wrapper's few cells are synthesized here.
WRAP_SCRIPT = """\
read_json {netlist}
read_verilog {wrapper}
{synth} -top {wrapper_top}
write_json {wrapped}
"""

# ``synth`` up to (not including) its "fine" step keeps memories as $mem_v2
# cells; the fine step is then replayed without ``memory_map`` so memories are
# priced as macros instead of as thousands of flip-flops.  ``dffunmap`` turns
# enable / sync-reset flops into plain flops plus gates, which yosys can price.
CMOS_SCRIPT = """\
read_verilog {verilog}
synth -top {top} -run :fine
write_json {coarse}
opt -fast -full
opt -full
techmap
opt -fast
dffunmap
abc -g cmos2
opt -fast
tee -q -o {cmos} stat -json -tech cmos
"""

# Totals over the hierarchy are computed here (`instance_counts`), not by
# ``stat -top``, whose JSON output yosys 0.23 garbles (see `loads_yosys_json`).


def timed(fn, *args) -> tuple:
    """``fn(*args)`` and the seconds it took, rounded to hundredths."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, round(time.perf_counter() - t0, 2)


def place_and_route(top: str, work: Path, timeout_s: float, tools: Tools,
                    target: Target = ICE40_HX8K) -> tuple[dict, str | None, dict]:
    """Wrap the mapped design (`fmax_wrapper`), place and route it on ``target``.

    Parameters
    ----------
    top : str
        Top module of the mapped netlist ``work/fpga.json``.
    work : Path
        Work directory of the flow.
    timeout_s : float
        Bound on each tool run.
    tools : Tools
        With the ``target``'s nextpnr.
    target : Target

    Returns
    -------
    (dict, str or None, dict)
        nextpnr's report (empty if it failed), the failure (None if none), and seconds per tool run.

    Raises
    ------
    ToolTimeout
        If a run times out (a design that does not fit is reported, not raised).
    """
    seconds = {}
    try:
        netlist = read_yosys_json(work / "fpga.json")
        (work / "wrapper.v").write_text(fmax_wrapper(top, netlist["modules"][top]["ports"]))
        del netlist  # the engine's netlist is tens of MB
        (work / "wrap.ys").write_text(WRAP_SCRIPT.format(netlist="fpga.json", wrapper="wrapper.v", synth=target.synth,
                                                         wrapper_top=WRAPPER_TOP, wrapped="wrapped.json"))
        _, seconds["yosys_wrap"] = timed(run_tool, [*tools.yosys, "-q", "wrap.ys"], work, timeout_s)
        t0 = time.perf_counter()
        try:
            run_tool([*tools.nextpnr, *target.device, "--json", "wrapped.json", "--report", "report.json",
                      "--timing-allow-fail", "--seed", str(NEXTPNR_SEED), "-q", "-l", "nextpnr.log"],
                     work, timeout_s)
        finally:
            # Timed even when it fails: a design that does not fit still took this long.
            seconds["nextpnr"] = round(time.perf_counter() - t0, 2)
        return read_yosys_json(work / "report.json"), None, seconds
    except ToolTimeout:
        raise
    except ToolError as exc:
        # A design that does not fit the device still has a synthesis result
        # worth reporting; the reason goes in the record.
        return {}, str(exc), seconds


def run_fpga(verilog_text: str, top: str, work: Path, timeout_s: float, tools: Tools,
             target: Target = ICE40_HX8K) -> dict:
    """Synthesize one design for ``target`` and place and route it, in the empty directory ``work``.

    Returns
    -------
    dict
        ``top``, the cell columns (``lut4``, ``dff``, ``carry``, ``bram``, ``dsp``, ``other_cells``),
        ``hier`` (the hierarchical ``stat -json``, for the per-module table), ``fmax_mhz``,
        ``pnr_error``, ``utilization``, ``seconds`` and ``nextpnr`` (the tool's version).

    Raises
    ------
    ToolError
        If yosys fails or a run times out.
    """
    # Relative file names throughout: yowasp tools only see their working directory.
    (work / "design.v").write_text(verilog_text)
    (work / "fpga.ys").write_text(FPGA_SCRIPT.format(verilog="design.v", top=top, synth=target.synth,
                                                     hier="hier.json", flat="flat.json", netlist="fpga.json"))
    seconds = {}
    _, seconds["yosys_fpga"] = timed(run_tool, [*tools.yosys, "-q", "fpga.ys"], work, timeout_s)
    report, pnr_error, pnr_seconds = place_and_route(top, work, timeout_s, tools, target)
    seconds.update(pnr_seconds)
    flat, hier = (read_yosys_json(work / n) for n in ("flat.json", "hier.json"))
    flat_modules = list(flat["modules"].values())
    if len(flat_modules) != 1:
        raise ToolError(f"flattened netlist of {top} has {len(flat_modules)} modules, expected 1")
    totals = target.counts(flat_modules[0]["num_cells_by_type"])
    return {
        "top": top,
        "lut4": totals["lut4"], "dff": totals["dff"], "carry": totals["carry"],
        "bram": totals["bram"], "dsp": totals["dsp"], "other_cells": totals["other"],
        "hier": {"modules": {k: {"num_cells_by_type": v["num_cells_by_type"]} for k, v in hier["modules"].items()}},
        "fmax_mhz": slowest_fmax(report) if report else None, "pnr_error": pnr_error,
        "utilization": report.get("utilization", {}),
        "seconds": seconds, "nextpnr": tools.nextpnr_version,
    }


def run_cmos(verilog_text: str, top: str, work: Path, timeout_s: float, tools: Tools) -> dict:
    """The transistor estimate of one design (any target), in the empty directory ``work``.

    Returns
    -------
    dict
        ``cmos`` (the hierarchical ``stat -json -tech cmos``, per module), ``memories``
        (`memories_from_netlist`), ``seconds`` and ``yosys`` (the tool's version).

    Raises
    ------
    ToolError
        If yosys fails or times out.
    """
    (work / "design.v").write_text(verilog_text)
    (work / "cmos.ys").write_text(CMOS_SCRIPT.format(verilog="design.v", top=top, coarse="coarse.json",
                                                     cmos="cmos.json"))
    _, secs = timed(run_tool, [*tools.yosys, "-q", "cmos.ys"], work, timeout_s)
    cmos, coarse = (read_yosys_json(work / n) for n in ("cmos.json", "coarse.json"))
    return {"cmos": {"modules": {k: {"num_cells_by_type": v["num_cells_by_type"],
                                      "estimated_num_transistors": v.get("estimated_num_transistors", 0)}
                                  for k, v in cmos["modules"].items()}},
            "memories": memories_from_netlist(coarse), "seconds": {"yosys_cmos": secs},
            "yosys": tools.yosys_version}
