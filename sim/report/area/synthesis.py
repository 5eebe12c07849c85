"""One design's area and fmax (`synthesize`), cached on disk.

Results are keyed by a hash of the Verilog text, the top name, the tool
versions and the scripts (`cache_key`), so a report only re-runs the tools
for designs that changed.  The report's cache ships in the repository.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from sim.report.area.flow import CMOS_SCRIPT, ICE40_SCRIPT, NEXTPNR_DEVICE, NEXTPNR_SEED, WRAP_SCRIPT, run_flow
from sim.report.area.netlist import ROM_TRANSISTORS_PER_BIT, SRAM_CELL_TRANSISTORS, SRAM_EXTRA_PORT_TRANSISTORS
from sim.report.area.tools import DEFAULT_TIMEOUT_S, Tools, find_tools
from sim.report.area.wrapper import CLOCK_PORTS, XOR_FANIN

#: Bump when the meaning of a cached result changes (scripts, parsing, fields).
FLOW_VERSION = 4

#: Where results are cached unless told otherwise (inside the repo's build dir).
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[3] / "build" / "area-cache"


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
        result = run_flow(verilog_text, top, Path(tmp), timeout_s, tools)
    result["cache_key"] = key
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_file.parent, suffix=".tmp", delete=False) as f:
            f.write(json.dumps(result, indent=1, sort_keys=True))
        os.replace(f.name, cache_file)  # atomic: a concurrent reader never sees half a file
    result["cached"] = False
    return result
