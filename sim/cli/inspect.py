"""``vqe inspect``: a program file checked, and its metadata printed as JSON."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    """Add the ``inspect`` subcommand to the subparsers ``sub``."""
    i = sub.add_parser("inspect", help="print a program file's metadata",
                       description="Check a program file and print its metadata (network, method, engine "
                                   "parameters, layers, compression) as JSON.")
    i.add_argument("program", help="program file (.vqz)")
    i.set_defaults(func=cmd_inspect)


def cmd_inspect(args) -> int:
    """Load ``args.program`` (which checks it) and print its metadata, the ROM summarised."""
    from model.program.file import Program
    program = Program.load(args.program)
    meta = dict(program.meta)
    meta["rom"] = f"<{len(meta['rom'])} codewords>"
    meta["image_words"] = len(program.image)
    print(json.dumps(meta, indent=2))
    return 0
