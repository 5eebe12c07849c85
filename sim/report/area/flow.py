"""The area flow for one design: the yosys and nextpnr scripts, and running them in a work directory.

Per design, all from the same Verilog text:

1. ``synth_ice40`` (iCE40 cells).  The flattened netlist gives the totals
   (LUT4, DFF, CARRY, SB_RAM40_4K, SB_MAC16); the same synthesis without
   flattening gives a per-module breakdown (flattening lets yosys optimise
   across module boundaries, so the breakdown's sum can exceed the totals).
2. ``synth`` + ``abc -g cmos2`` + ``stat -tech cmos``: a transistor estimate
   of the logic, per module.  Memories are kept as macros (not mapped to
   flip-flops) and priced per bit, see `sim.report.area.netlist`.
3. ``nextpnr-ice40 --hx8k --package ct256 --timing-allow-fail`` on the
   flattened netlist inside a port-registering wrapper
   (`sim.report.area.wrapper.fmax_wrapper`): fmax of the slowest clock
   domain, read from the ``--report`` JSON.
"""
from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from sim.report.area.netlist import ice40_counts, memories_from_netlist, module_table, read_yosys_json, slowest_fmax
from sim.report.area.tools import ToolError, Tools, ToolTimeout, run_tool
from sim.report.area.wrapper import WRAPPER_TOP, fmax_wrapper

#: Target of place-and-route: the largest iCE40 HX part, in its 256-ball package.
NEXTPNR_DEVICE = ("--hx8k", "--package", "ct256")
#: Fixed placer seed, so fmax is reproducible run to run.
NEXTPNR_SEED = 1

ICE40_SCRIPT = """\
read_verilog {verilog}
design -save rtl
synth_ice40 -noflatten -top {top}
tee -q -o {hier} stat -json
design -load rtl
synth_ice40 -top {top}
tee -q -o {flat} stat -json
write_json {netlist}
"""

# Place-and-route runs on the design inside a three-pin wrapper (`fmax_wrapper`):
# its own ports may outnumber the package's pins (the engine exposes its
# counters in parallel), and registering every port makes the measured fmax the
# core's register-to-register one.  The already-mapped netlist is read back, so
# only the wrapper's few cells are synthesized here.
WRAP_SCRIPT = """\
read_json {netlist}
read_verilog {wrapper}
synth_ice40 -top {wrapper_top}
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


def place_and_route(top: str, work: Path, timeout_s: float, tools: Tools) -> tuple[dict, str | None, dict]:
    """Wrap the mapped design (`fmax_wrapper`), place and route it.

    Parameters
    ----------
    top : str
        Top module of the mapped netlist ``work/ice40.json``.
    work : Path
        Work directory of the flow.
    timeout_s : float
        Bound on each tool run.
    tools : Tools

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
        netlist = read_yosys_json(work / "ice40.json")
        (work / "wrapper.v").write_text(fmax_wrapper(top, netlist["modules"][top]["ports"]))
        del netlist  # the engine's netlist is tens of MB
        (work / "wrap.ys").write_text(WRAP_SCRIPT.format(netlist="ice40.json", wrapper="wrapper.v",
                                                         wrapper_top=WRAPPER_TOP, wrapped="wrapped.json"))
        _, seconds["yosys_wrap"] = timed(run_tool, [*tools.yosys, "-q", "wrap.ys"], work, timeout_s)
        t0 = time.perf_counter()
        try:
            run_tool([*tools.nextpnr, *NEXTPNR_DEVICE, "--json", "wrapped.json", "--report", "report.json",
                      "--timing-allow-fail", "--seed", str(NEXTPNR_SEED), "-q", "-l", "nextpnr.log"],
                     work, timeout_s)
        finally:
            # Timed even when it fails: a design that does not fit still took this long.
            seconds["nextpnr"] = round(time.perf_counter() - t0, 2)
        return read_yosys_json(work / "report.json"), None, seconds
    except ToolTimeout:
        raise
    except ToolError as exc:
        # A design that does not fit the HX8K still has a synthesis result
        # worth reporting; the reason goes in the record.
        return {}, str(exc), seconds


def run_flow(verilog_text: str, top: str, work: Path, timeout_s: float, tools: Tools) -> dict:
    """Run the whole flow on one design in the empty directory ``work``.

    Returns
    -------
    dict
        The fields `sim.report.area.synthesis.synthesize` documents, but for
        ``cache_key`` and ``cached``.

    Raises
    ------
    ToolError
        If yosys fails or a run times out.
    """
    # Relative file names throughout: yowasp tools only see their working directory.
    (work / "design.v").write_text(verilog_text)
    names = {"verilog": "design.v", "top": top, "hier": "hier.json", "flat": "flat.json",
             "netlist": "ice40.json", "coarse": "coarse.json", "cmos": "cmos.json"}
    (work / "ice40.ys").write_text(ICE40_SCRIPT.format(**names))
    (work / "cmos.ys").write_text(CMOS_SCRIPT.format(**names))
    seconds = {}

    # The CMOS estimate is independent of the iCE40 flow: run it alongside.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        cmos_run = pool.submit(timed, run_tool, [*tools.yosys, "-q", "cmos.ys"], work, timeout_s)
        _, seconds["yosys_ice40"] = timed(run_tool, [*tools.yosys, "-q", "ice40.ys"], work, timeout_s)
        report, pnr_error, pnr_seconds = place_and_route(top, work, timeout_s, tools)
        seconds.update(pnr_seconds)
        _, seconds["yosys_cmos"] = cmos_run.result()

    flat, hier, cmos, coarse = (read_yosys_json(work / n) for n in ("flat.json", "hier.json", "cmos.json",
                                                                   "coarse.json"))
    mems = memories_from_netlist(coarse)
    flat_modules = list(flat["modules"].values())
    if len(flat_modules) != 1:
        raise ToolError(f"flattened netlist of {top} has {len(flat_modules)} modules, expected 1")
    totals = ice40_counts(flat_modules[0]["num_cells_by_type"])
    modules, unpriced = module_table(hier, cmos, mems, top)
    memory = sum(m["transistors_memory"] for m in modules)
    logic = sum(m["transistors"] for m in modules) - memory
    return {
        "top": top,
        "lut4": totals["lut4"], "dff": totals["dff"], "carry": totals["carry"],
        "bram": totals["bram"], "dsp": totals["dsp"], "other_cells": totals["other"],
        "transistors": logic + memory, "transistors_logic": logic, "transistors_memory": memory,
        "transistors_exact": not unpriced, "unpriced_cells": unpriced, "memories": mems,
        "modules": modules,
        "fmax_mhz": slowest_fmax(report) if report else None, "pnr_error": pnr_error,
        "utilization": report.get("utilization", {}),
        "seconds": seconds,
        "tools": {"yosys": tools.yosys_version, "nextpnr": tools.nextpnr_version},
    }
