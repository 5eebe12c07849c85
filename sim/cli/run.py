"""``vqe run``: a program on a backend, checked against the golden model on every output and counter."""
from __future__ import annotations

import json
import sys

from sim.cli.options import add_cluster_arguments, add_quiet_argument, refuse_overwrite
from sim.shards import DEFAULT_SHARD_IMAGES
from sim.errors import EXIT_ERROR, CliError

#: Summary fields ``vqe run`` prints without ``--json``, in order (the compression follows).
SUMMARY_FIELDS = ("network", "method", "backend", "images", "accuracy", "reference_accuracy", "bit_exact",
                  "mismatches", "cycles", "ideal_cycles", "utilization", "sim_cycles_per_second")


def add_parser(sub) -> None:
    """Add the ``run`` subcommand to the subparsers ``sub``."""
    r = sub.add_parser("run", help="run a program on a backend and compare with the golden model",
                       description="Run N test images through the program on a backend. RTL backends are "
                                   "checked against the golden model on every output and every counter.")
    r.add_argument("program", help="program file (.vqz)")
    r.add_argument("--backend", required=True,
                   help="golden, amaranth, icarus, verilator (the compiled C++ harness) or verilator-cocotb "
                        "(the cocotb testbench on Verilator)")
    r.add_argument("--images", type=int, default=None,
                   help="number of test images (default 1; with --inputs, every input of the file)")
    r.add_argument("--offset", type=int, default=0, help="first test image (default 0)")
    r.add_argument("--inputs", metavar="FILE.npz",
                   help="run on your own inputs: array x (N, *input shape), and optionally y, integer labels "
                        "(quality is accuracy) or float reference outputs (quality is the mean cosine and top-1 "
                        "agreement, in \"quality\"). A program of your own model (vqe compress --model) without "
                        "--inputs runs on seeded random int8 inputs; zoo networks default to their test sets")
    r.add_argument("--latency", type=int, default=10, help="DRAM read latency in cycles (default 10)")
    r.add_argument("--stall", type=int, default=0,
                   help="random DRAM stalls, probability in 1/256ths per handshake (default 0)")
    r.add_argument("--seed", type=int, default=1, help="stall LFSR seed / random-input seed (default 1)")
    r.add_argument("--vcd", help="write waveforms to this file (amaranth, icarus, verilator)")
    r.add_argument("--force", action="store_true", help="overwrite an existing --vcd file")
    r.add_argument("--chip", choices=["universal"],
                   help="run on the universal chip (what `vqe verilog` writes with no program) instead of the "
                        "engine the program was compressed for; the program must fit it")
    r.add_argument("--shard-images", type=int, default=None, metavar="N",
                   help=f"RTL backends: images per shard, one engine job each (default {DEFAULT_SHARD_IMAGES}); "
                        "several shards run in parallel on a Dask cluster")
    add_cluster_arguments(r)
    r.add_argument("--flip", metavar="WORD:BIT", action="append",
                   help="verification: invert bit BIT of word WORD of the program's image (its descriptors or "
                        "streams) before running, on one job (may be repeated); the RTL must then stop with the "
                        "golden model's error code, or match it; prints the verdict as JSON. What `vqe verify` "
                        "prints to replay a corrupted case")
    r.add_argument("--json", action="store_true", help="print the JSON summary")
    add_quiet_argument(r)
    r.set_defaults(func=cmd_run)


def _parse_flip(text: str) -> tuple[int, int]:
    """``WORD:BIT`` as a pair of ints."""
    try:
        word, bit = (int(v) for v in text.split(":"))
    except ValueError:
        raise CliError(f"--flip takes WORD:BIT, got {text!r}") from None
    return word, bit


def _replay_flips(program, args, x_int8) -> int:
    """``vqe run --flip``: the corrupted program on the backend, judged against the golden model."""
    from sim.verify.campaign import flip_bits, replay
    if args.backend == "golden":
        raise CliError("--flip compares the RTL with the golden model: choose an RTL backend")
    taken = [opt for opt, on in (("--vcd", args.vcd), ("--shard-images", args.shard_images),
                                 ("--scheduler", args.scheduler), ("--workers", args.workers)) if on]
    if taken:
        raise CliError(f"--flip runs one job in this process: leave out {', '.join(taken)}")
    flips = [_parse_flip(f) for f in args.flip]
    try:
        flip_bits(program, flips)
    except ValueError as e:
        raise CliError(f"--flip: {e}") from None
    result = replay(program, flips, x_int8, args.backend, latency=args.latency, stall=args.stall, seed=args.seed)
    print(json.dumps(result, indent=2))
    if not result["agree"]:
        print(f"vqe: error: the RTL disagrees with the golden model: {result['reason']}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _run_partitioned(program, args) -> int:
    """A partitioned program (engine and host segments), one job per engine segment: a zoo network's evaluation
    sentences, or a user's graph on ``--inputs``."""
    from sim.partitioned import run_partitioned
    taken = [opt for opt, on in (("--vcd", args.vcd), ("--flip", args.flip),
                                 ("--shard-images", args.shard_images), ("--scheduler", args.scheduler),
                                 ("--workers", args.workers), ("--chip", args.chip)) if on]
    if taken:
        raise CliError(f"a partitioned program runs one job per engine segment in this process: "
                       f"leave out {', '.join(taken)}")
    summary = run_partitioned(program, args.backend, inputs=args.inputs, images=args.images, offset=args.offset,
                              program_path=args.program, latency=args.latency, stall=args.stall, seed=args.seed,
                              progress=not args.quiet)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key in SUMMARY_FIELDS:
            print(f"{key:>22}: {summary[key]}")
        print(f"{'quality':>22}: {summary['quality']}")
        print(f"{'jobs':>22}: {summary['jobs']} ({summary['vectors']} vectors)")
        print(f"{'boundary':>22}: {summary['boundary']}")
        print(f"{'compression':>22}: {summary['compression']}")
    if summary["bit_exact"] is False:
        print("vqe: error: the RTL disagrees with the golden model"
              f" ({summary['mismatches']} vectors, counters {sorted(summary['counter_mismatches'])})", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_run(args) -> int:
    """Run ``args.program`` on ``args.backend`` and print its summary; exit 1 if the RTL disagrees."""
    from model.program.file import Program
    program = Program.load(args.program)
    if args.chip == "universal":
        from model.compress.universal.method import universal_engine_config
        from model.contract.config import WORDS_PER_KIB
        from sim.run import on_engine
        kib = program.config.weight_sram_words // WORDS_PER_KIB
        program = on_engine(program, universal_engine_config(kib, all_networks=True))
    if args.images is not None and args.images < 1:
        raise CliError("--images must be at least 1")
    if program.segmented:
        return _run_partitioned(program, args)
    if args.vcd:
        refuse_overwrite(args.vcd, args.force)
    from sim.api import run_inputs, run_summary
    x_int8, labels, x_float, y = run_inputs(program, args.inputs, args.images, args.offset, args.seed)
    if args.flip:
        return _replay_flips(program, args, x_int8)
    summary = run_summary(program, args.backend, x_int8, labels, x_float, y, program_path=args.program,
                          latency=args.latency, stall=args.stall, seed=args.seed,
                          vcd=args.vcd, shard_images=args.shard_images, scheduler=args.scheduler,
                          workers=args.workers, progress=not args.quiet)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key in SUMMARY_FIELDS:
            print(f"{key:>22}: {summary[key]}")
        print(f"{'compression':>22}: {summary['compression']}")
    if summary["bit_exact"] is False:
        print("vqe: error: the RTL disagrees with the golden model"
              f" ({summary['mismatches']} images, counters {sorted(summary['counter_mismatches'])})",
              file=sys.stderr)
        return EXIT_ERROR
    return 0
