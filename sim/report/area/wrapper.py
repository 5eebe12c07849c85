"""The wrapper place-and-route runs a design in: every port registered, behind three pins.

The design's own ports may outnumber the package's pins (the engine exposes
its counters in parallel), and registering every port makes the measured
fmax the core's register-to-register one.
"""
from __future__ import annotations

import re

from model.contract.ints import ceil_div
from sim.report.area.tools import ToolError

#: Top module of the wrapper.
WRAPPER_TOP = "vqe_fmax_wrapper"
#: Ports driven by the clock pin rather than by the input shift register.
CLOCK_PORTS = ("clk",)
#: Inputs of each XOR in the wrapper's output tree: one iCE40 LUT4 per XOR.
XOR_FANIN = 4


def verilog_name(name: str) -> str:
    """``name`` as a Verilog identifier: Amaranth's top-level port names are plain; anything else is escaped."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


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
    conns, pos = [f".{verilog_name(c)}(clk)" for c in clock], 0
    for name, width in ins:
        conns.append(f".{verilog_name(name)}(in_sr[{pos + width - 1}:{pos}])")
        pos += width
    pos = 0
    for name, width in outs:
        conns.append(f".{verilog_name(name)}(outs[{pos + width - 1}:{pos}])")
        pos += width
    shift_in = "{in_sr[%d:0], scan_in}" % (n_in - 2) if n_in > 1 else "scan_in"
    lines = [
        f"module {WRAPPER_TOP}(input clk, input scan_in, output scan_out);",
        f"  reg [{n_in - 1}:0] in_sr = 0;",
        f"  always @(posedge clk) in_sr <= {shift_in};",
        f"  wire [{n_out - 1}:0] outs;",
        f"  {verilog_name(top)} dut (" + ", ".join(conns) + ");",
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
