"""``vqe verilog``: the engine's Verilog, elaborated with a program's ROM and parameters."""
from __future__ import annotations

import sys

from sim.cli.options import add_output_arguments, refuse_overwrite
from sim.errors import CliError


def add_parser(sub) -> None:
    """Add the ``verilog`` subcommand to the subparsers ``sub``."""
    v = sub.add_parser("verilog", help="write the engine's Verilog",
                       description="Elaborate the engine with a program's ROM and parameters and write Verilog.")
    v.add_argument("--program", help="program whose lanes, codebook depth and ROM contents to use")
    v.add_argument("--addr-width", type=int, default=24, help="DRAM word-address width (default 24)")
    v.add_argument("--name", default="vqe_engine", help="top module name (default vqe_engine)")
    add_output_arguments(v, "Verilog file to write")
    v.set_defaults(func=cmd_verilog)


def cmd_verilog(args) -> int:
    """Write the engine elaborated for ``args.program`` to ``args.output``."""
    from model.program.file import Program
    from sim.backends.top import engine_verilog
    if not args.program:
        raise CliError("give --program FILE: the engine's codebook ROM is elaborated from a program")
    out = refuse_overwrite(args.output, args.force)
    config = Program.load(args.program).config
    text = engine_verilog(config, addr_width=args.addr_width, name=args.name)
    out.write_text(text)
    print(f"wrote {out}: module {args.name}, {config.lanes} lanes, codebook depth {config.codebook_depth}, "
          f"{config.rom_entries} ROM entries", file=sys.stderr)
    return 0
