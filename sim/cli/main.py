"""The ``vqe`` command line: the parser and `main`.

Every failure the user can cause ends in one line on stderr and a non-zero
exit status; set ``VQE_DEBUG=1`` to see tracebacks.  Each subcommand lives in
its own module of `sim.cli`, which adds its parser (``add_parser``) and runs it.
"""
from __future__ import annotations

import os
import sys

from model.contract.errors import VqeError
from sim.cli import codebook, compress, inspect, report, run, verify, verilog
from sim.cli.options import Parser
from sim.errors import EXIT_ERROR, EXIT_INTERNAL

#: The subcommands, in the order ``vqe --help`` lists them.
SUBCOMMANDS = (compress, codebook, run, verify, verilog, inspect, report)


def build_parser() -> Parser:
    """The ``vqe`` parser, with every subcommand."""
    p = Parser(
        prog="vqe",
        description="VQ Engine: compress a neural network with vector quantization, run it on the "
                    "engine's RTL bit-exactly against a golden model, and report its energy and area.",
        epilog="Example: vqe compress --network lenet300 --method kmeans -o f.vqz && "
               "vqe run f.vqz --backend icarus --images 2 --json")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    """Run ``vqe`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    A `VqeError` or `OSError` is printed as one ``vqe: error:`` line (status 1),
    any other exception as an internal error (status 3), unless ``VQE_DEBUG`` is set.
    """
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("vqe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `vqe inspect f | head`
        return 0
    except Exception as e:  # noqa: BLE001 - the one place that turns failures into one line
        if os.environ.get("VQE_DEBUG"):
            raise
        if isinstance(e, (VqeError, OSError)):
            msg = str(e.args[0]) if type(e).__str__ is KeyError.__str__ and e.args else str(e)
            print(f"vqe: error: {msg}", file=sys.stderr)
            return EXIT_ERROR
        print(f"vqe: internal error: {type(e).__name__}: {e} (set VQE_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
