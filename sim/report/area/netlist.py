"""Reading what yosys and nextpnr write: iCE40 cell counts, memories, the per-module breakdown, fmax.

Memories are kept as macros by the transistor flow and priced per bit here
(`ROM_TRANSISTORS_PER_BIT`, `ram_transistors_per_bit`); logic is priced by
yosys' ``stat -tech cmos``.  `loads_yosys_json` repairs the two defects of
yosys 0.23's ``stat -json`` output.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from sim.report.area.tools import ToolError

#: Transistors per bit of a read-only memory: one per bit in a NOR mask ROM
#: (an assumption; decoders and sense amplifiers are not counted).
ROM_TRANSISTORS_PER_BIT = 1
#: Transistors per bit of a single-port SRAM cell (the classic 6T cell; an
#: assumption, peripheral circuits not counted).
SRAM_CELL_TRANSISTORS = 6
#: Extra access transistors per bit for each port beyond the first (an 8T cell
#: for one read plus one write port).
SRAM_EXTRA_PORT_TRANSISTORS = 2

#: Gate types ``stat -tech cmos`` prices (yosys' CellCosts::cmos_gate_cost).
#: Anything else left after mapping makes the estimate a lower bound.
CMOS_PRICED = frozenset({
    "$_BUF_", "$_NOT_", "$_AND_", "$_NAND_", "$_OR_", "$_NOR_", "$_ANDNOT_", "$_ORNOT_",
    "$_XOR_", "$_XNOR_", "$_AOI3_", "$_OAI3_", "$_AOI4_", "$_OAI4_", "$_MUX_", "$_NMUX_",
    "$_DFF_P_", "$_DFF_N_",
})
#: Cell type of a memory kept as a macro.
MEMORY_CELL = "$mem_v2"

#: A line yosys 0.23's ``stat -json`` prints into its JSON for a nested
#: hierarchy: a module name and an instance count ("   top.a.b    1").
_STRAY_HIERARCHY_LINE = re.compile(r'^\s*[^\s"{}\[\],:]+\s+\d+\s*$')
#: A comma before a closing bracket, which yosys 0.23 leaves when the design
#: has no top module.
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def module_name(name: str) -> str:
    """``name`` without the backslash ``stat -json`` puts before module names (cell types have none)."""
    return name[1:] if name.startswith("\\") else name


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
    """A cell parameter as an int: ``write_json`` gives binary strings (or ints with -compat-int)."""
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
            mems.append({"module": module_name(module), "name": module_name(cell_name),
                         "kind": "rom" if wr == 0 else "ram", "words": words, "width": width,
                         "bits": bits, "ports": rd + wr, "transistors": bits * per_bit})
    return mems


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


def read_yosys_json(path: Path):
    """`loads_yosys_json` of a file a tool wrote.

    Raises
    ------
    ToolError
        If the file cannot be read or is not JSON.
    """
    try:
        return loads_yosys_json(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"cannot read yosys output {path.name}: {exc}") from None


def transistor_count(text) -> int:
    """A ``stat -tech cmos`` transistor count as an int: it writes e.g. "27934+" when some cells have no price."""
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


def module_table(hier: dict, cmos: dict, mems: list[dict], top: str, group=ice40_counts) -> tuple[list, list]:
    """Per-module breakdown (own cells only, times instances) and unpriced cell types.

    Parameters
    ----------
    hier : dict
        Hierarchical ``stat -json`` of the FPGA synthesis.
    cmos : dict
        Hierarchical ``stat -json -tech cmos``.
    mems : list of dict
        `memories_from_netlist` of the coarse netlist.
    top : str
        Name of the top module.
    group : callable
        Groups a module's cells into columns (`ice40_counts`, or a target's
        `sim.report.area.targets.Target.counts`).

    Returns
    -------
    (list of dict, list of str)
        One row per module (``module``, ``instances``, the ``group``
        columns, ``transistors``, ``transistors_memory``, ``memory_bits``),
        and the gate types no price covers.
    """
    ice = {module_name(k): v for k, v in hier["modules"].items()}
    gates = {module_name(k): v for k, v in cmos["modules"].items()}
    counts = instance_counts(ice, top)
    rows, unpriced = [], set()
    for module, n in counts.items():
        own = {c: k for c, k in ice[module]["num_cells_by_type"].items() if c not in ice}
        row = {"module": module, "instances": n}
        for key, value in group(own).items():
            row[key] = {c: k * n for c, k in value.items()} if key == "other" else value * n
        g = gates.get(module)
        logic = transistor_count(g["estimated_num_transistors"]) if g else 0
        if g:
            unpriced |= {c for c in g["num_cells_by_type"]
                         if c not in CMOS_PRICED and c != MEMORY_CELL and c not in gates}
        memory = sum(m["transistors"] for m in mems if m["module"] == module)
        row["transistors"] = (logic + memory) * n
        row["transistors_memory"] = memory * n
        row["memory_bits"] = sum(m["bits"] for m in mems if m["module"] == module) * n
        rows.append(row)
    return rows, sorted(unpriced)


def slowest_fmax(report: dict) -> float | None:
    """Slowest clock domain's achieved frequency (MHz) in a nextpnr ``--report``; None for a design with no clock."""
    achieved = [v["achieved"] for v in report.get("fmax", {}).values()]
    return min(achieved) if achieved else None
