"""One design's area and fmax on one target (`synthesize`), cached on disk.

Results are keyed by a hash of the Verilog text, the top name, the target, the tool
versions and the scripts (`cache_key`), so a report only re-runs the tools for designs
that changed.  The transistor estimate does not depend on the target and is cached on its
own (`cmos_key`, files ``cmos-<key>.json``), so the second target of a design reuses it.
The report's cache ships in the repository.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from sim.report.area.flow import CMOS_SCRIPT, FPGA_SCRIPT, NEXTPNR_SEED, WRAP_SCRIPT, run_cmos, run_fpga
from sim.report.area.netlist import (ROM_TRANSISTORS_PER_BIT, SRAM_CELL_TRANSISTORS, SRAM_EXTRA_PORT_TRANSISTORS,
                                     module_table)
from sim.report.area.targets import ICE40_HX8K, Target
from sim.report.area.tools import DEFAULT_TIMEOUT_S, Tools, find_tools
from sim.report.area.wrapper import CLOCK_PORTS, XOR_FANIN

#: Bump when the meaning of a cached result changes (scripts, parsing, fields).
FLOW_VERSION = 5

#: Where results are cached unless told otherwise (inside the repo's build dir).
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[3] / "build" / "area-cache"

_MEMORY_PRICING = [ROM_TRANSISTORS_PER_BIT, SRAM_CELL_TRANSISTORS, SRAM_EXTRA_PORT_TRANSISTORS]


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def cmos_key(verilog_text: str, top: str, yosys_version: str) -> str:
    """Hash of everything the transistor estimate depends on (no target: it is the same for every one)."""
    return _digest({"flow": FLOW_VERSION, "verilog": verilog_text, "top": top, "yosys": yosys_version,
                    "cmos": CMOS_SCRIPT, "memory_pricing": _MEMORY_PRICING})


def cache_key(verilog_text: str, top: str, tools: Tools, target: Target = ICE40_HX8K) -> str:
    """Hash of everything a synthesis result depends on.

    Parameters
    ----------
    verilog_text : str
        The design.
    top : str
        Top module name.
    tools : Tools
        Tool versions.
    target : Target
        The FPGA (its name, synthesis command and device options are part of the key).
    """
    return _digest({
        "flow": FLOW_VERSION, "verilog": verilog_text, "top": top,
        "yosys": tools.yosys_version, "nextpnr": tools.nextpnr_version,
        "target": [target.name, target.synth, list(target.device)],
        "fpga": FPGA_SCRIPT, "cmos": CMOS_SCRIPT, "wrap": WRAP_SCRIPT, "clocks": CLOCK_PORTS,
        "xor_fanin": XOR_FANIN, "seed": NEXTPNR_SEED, "memory_pricing": _MEMORY_PRICING,
    })


def _load(path: Path | None) -> dict | None:
    """A cached result, or None (absent, or damaged: a damaged entry is recomputed, never trusted)."""
    if path is None or not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _store(path: Path | None, result: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        f.write(json.dumps(result, indent=1, sort_keys=True))
    os.replace(f.name, path)  # atomic: a concurrent reader never sees half a file


def cached_result(verilog_text: str, top: str, cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
                  *, target: Target = ICE40_HX8K, tools: Tools | None = None) -> dict | None:
    """What `synthesize` would return from the cache (``cached`` True), or None if it would run the tools."""
    if cache_dir is None:
        return None
    tools = tools or find_tools(target)
    result = _load(Path(cache_dir) / f"{cache_key(verilog_text, top, tools, target)}.json")
    if result is not None:
        result["cached"] = True
    return result


def synthesize(verilog_text: str, top: str, cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
               *, target: Target = ICE40_HX8K, timeout_s: float = DEFAULT_TIMEOUT_S,
               tools: Tools | None = None) -> dict:
    """Synthesize for ``target``, estimate transistors, and place-and-route one design.

    Parameters
    ----------
    verilog_text : str
        Verilog source (hierarchical: one module per Amaranth submodule).
    top : str
        Name of the top module.
    cache_dir : path or None
        Directory of cached results; None disables the cache.
    target : Target
        The FPGA (`sim.report.area.targets`).
    timeout_s : float
        Bound on each tool run.
    tools : Tools, optional
        Tools to use (with ``target``'s nextpnr); found with `find_tools` if omitted.

    Returns
    -------
    dict
        ``target``, ``top``, ``lut4``, ``dff``, ``carry``, ``bram``, ``dsp``,
        ``other_cells`` (flattened synthesis, the target's cells); ``transistors``
        (logic + memory macros), ``transistors_logic``, ``transistors_memory``,
        ``transistors_exact`` (False if some gate had no price, listed in
        ``unpriced_cells``), ``memories``; ``modules`` (per-module breakdown
        from hierarchical synthesis); ``fmax_mhz`` (None if place-and-route
        failed, with ``pnr_error``: e.g. the design does not fit), ``utilization``;
        ``seconds`` per tool run (as measured when the result was first computed),
        ``tools``, ``cache_key``, and ``cached`` (whether this call reused a result).

    Raises
    ------
    ToolError
        If a tool is missing, yosys fails, or a run times out.
    """
    tools = tools or find_tools(target)
    key = cache_key(verilog_text, top, tools, target)
    cache = Path(cache_dir) if cache_dir is not None else None
    result = _load(cache / f"{key}.json" if cache else None)
    if result is not None:
        result["cached"] = True
        return result
    ckey = cmos_key(verilog_text, top, tools.yosys_version)
    cmos = _load(cache / f"cmos-{ckey}.json" if cache else None)
    if cmos is None:
        with tempfile.TemporaryDirectory(prefix="vqe-cmos-") as tmp:
            cmos = run_cmos(verilog_text, top, Path(tmp), timeout_s, tools)
        _store(cache / f"cmos-{ckey}.json" if cache else None, cmos)
    with tempfile.TemporaryDirectory(prefix="vqe-area-") as tmp:
        fpga = run_fpga(verilog_text, top, Path(tmp), timeout_s, tools, target)
    modules, unpriced = module_table(fpga.pop("hier"), cmos["cmos"], cmos["memories"], top, target.counts)
    memory = sum(m["transistors_memory"] for m in modules)
    logic = sum(m["transistors"] for m in modules) - memory
    result = {"target": target.name, **{k: v for k, v in fpga.items() if k != "nextpnr"},
              "transistors": logic + memory, "transistors_logic": logic, "transistors_memory": memory,
              "transistors_exact": not unpriced, "unpriced_cells": unpriced, "memories": cmos["memories"],
              "modules": modules, "seconds": {**fpga["seconds"], **cmos["seconds"]},
              "tools": {"yosys": tools.yosys_version, "nextpnr": tools.nextpnr_version},
              "cache_key": key}
    _store(cache / f"{key}.json" if cache else None, result)
    result["cached"] = False
    return result
