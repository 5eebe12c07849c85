"""``vqe verilog``: the engine's Verilog, elaborated with a program's ROM and parameters."""
from __future__ import annotations

import dataclasses
import sys

from model.contract.config import DEFAULT_WEIGHT_SRAM_KIB, WEIGHT_SRAM_WORDS_MAX, WORDS_PER_KIB
from model.contract.layout import PES
from sim.cli.options import add_output_arguments, refuse_overwrite, write_atomically
from sim.errors import CliError


def add_parser(sub) -> None:
    """Add the ``verilog`` subcommand to the subparsers ``sub``."""
    v = sub.add_parser("verilog", help="write the engine's Verilog",
                       description="Elaborate the engine and write Verilog: with --program, with that program's "
                                   "ROM and parameters; without, the universal engine, whose ROM is the shipped "
                                   "universal codebook (the one chip that runs every universal program).")
    v.add_argument("--program", help="program whose lanes, codebook depth, ROM contents and weight SRAM to use")
    v.add_argument("--weight-sram", type=int, default=None, metavar="KIB",
                   help=f"on-chip weight SRAM in KiB (default: the program's; without --program "
                        f"{DEFAULT_WEIGHT_SRAM_KIB}); 0 for none")
    v.add_argument("--pes", type=int, default=None, metavar="P",
                   help="processing elements, 1, 2, 4 or 8 (default: the program's; without --program 1); a program "
                        "runs only on the PEs its streams are laid out for (vqe compress --pes)")
    v.add_argument("--addr-width", type=int, default=24, help="DRAM word-address width (default 24)")
    v.add_argument("--name", default="vqe_engine", help="top module name (default vqe_engine)")
    add_output_arguments(v, "Verilog file to write")
    v.set_defaults(func=cmd_verilog)


def cmd_verilog(args) -> int:
    """Write the engine elaborated for ``args.program`` to ``args.output``."""
    from model.compress.universal.method import universal_engine_config
    from model.program.file import Program
    from sim.backends.top import engine_verilog
    kib = args.weight_sram
    if kib is not None and not 0 <= kib <= WEIGHT_SRAM_WORDS_MAX // WORDS_PER_KIB:
        raise CliError(f"--weight-sram must be 0..{WEIGHT_SRAM_WORDS_MAX // WORDS_PER_KIB} KiB, got {kib}")
    if args.pes is not None and args.pes not in PES:
        raise CliError(f"--pes must be one of {', '.join(map(str, PES))}, got {args.pes}")
    out = refuse_overwrite(args.output, args.force)
    if args.program:
        config = Program.load(args.program).config
        if args.pes is not None and args.pes != config.pes:
            raise CliError(f"{args.program} is laid out for {config.pes} processing element(s), not --pes {args.pes}: "
                           f"compress it with --pes {args.pes}")
        if kib is not None:
            config = dataclasses.replace(config, weight_sram_words=kib * WORDS_PER_KIB)
    else:
        config = universal_engine_config(DEFAULT_WEIGHT_SRAM_KIB if kib is None else kib, all_networks=True)
        if args.pes is not None:
            try:
                config = dataclasses.replace(config, pes=args.pes)
            except ValueError as e:
                raise CliError(f"--pes {args.pes}: {e}") from None
    text = engine_verilog(config, addr_width=args.addr_width, name=args.name)
    write_atomically(out, lambda tmp: tmp.write_text(text))
    print(f"wrote {out}: module {args.name}, {config.lanes} lanes, codebook depth {config.codebook_depth}, "
          f"{config.rom_entries} ROM entries{'' if args.program else ' (the shipped universal codebook)'}, "
          f"weight SRAM {config.weight_sram_words // WORDS_PER_KIB} KiB"
          + (f", {config.pes} processing elements" if config.pes > 1 else "")
          + (f", column unit ({config.lanes} slots of {config.column_entries:,} entries, {config.column_columns:,} "
             f"column-table entries, {config.column_rows:,} local rows; {config.column_centroids} centroids)"
             if config.columns else ""), file=sys.stderr)
    return 0
