"""``vqe verify``: a verification campaign of random and corrupted programs on the compiled RTL."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from sim.cli.options import add_cluster_arguments, add_quiet_argument, check_cluster_arguments
from sim.errors import EXIT_ERROR, CliError


def add_parser(sub) -> None:
    """Add the ``verify`` subcommand to the subparsers ``sub``."""
    from sim.verify.campaign import DEFAULT_BATCH
    from sim.verify.families import FAMILIES
    v = sub.add_parser(
        "verify", help="random and corrupted programs on the Verilator harness against the golden model",
        description="A verification campaign: random programs (every layer mode and kind, shapes that do not "
                    "divide by lanes, random codebooks, requantization and activations, DRAM latency 3..32 and "
                    "random stalls) must match the golden model on every output and counter; programs with one "
                    "random bit flipped in a descriptor or a row stream must stop with the golden model's error "
                    "code, or match it. Nothing may hang. Batches are sharded on a Dask cluster like `vqe run`. "
                    "Each failing case is saved with the `vqe run` command that replays it. "
                    f"Engine families: {', '.join(f.name for f in FAMILIES)}.")
    v.add_argument("--random", type=int, default=1000, metavar="N", help="random programs (default 1000)")
    v.add_argument("--corrupt", type=int, default=10000, metavar="N", help="corrupted programs (default 10000)")
    v.add_argument("--seed", type=int, default=0, help="first case's seed (default 0)")
    v.add_argument("--families", help="comma-separated engine families (default: all)")
    v.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"cases per batch, one harness process each (default {DEFAULT_BATCH})")
    add_cluster_arguments(v)
    v.add_argument("--out", default="build/verify", help="directory for failing cases (default build/verify)")
    v.add_argument("--json", action="store_true", help="print the JSON summary")
    add_quiet_argument(v)
    v.set_defaults(func=cmd_verify)


def cmd_verify(args) -> int:
    """Run the campaign; exit 1 on any mismatch or hang."""
    from sim.verify.campaign import run_campaign
    if args.random < 0 or args.corrupt < 0 or args.random + args.corrupt == 0:
        raise CliError("--random and --corrupt must not be negative, and not both zero")
    if args.batch < 1:
        raise CliError("--batch must be at least 1")
    check_cluster_arguments(args)
    families = args.families.split(",") if args.families else None
    try:
        summary = run_campaign(args.random, args.corrupt, seed=args.seed, families=families, batch=args.batch,
                               scheduler=args.scheduler, workers=args.workers, out_dir=Path(args.out),
                               progress=not args.quiet)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        runs, faults = summary["runs"], summary["faults"]
        print(f"random programs:    {runs['random']:>6}")
        print(f"corrupted programs: {runs['corrupt']:>6} ({faults['corrupt']} stopped with an error status, "
              f"the rest ran)")
        codes = ", ".join(f"{name} {n}" for name, n in sorted(summary["fault_codes"].items(), key=lambda kv: -kv[1]))
        print(f"error statuses the golden model and the RTL both gave: {codes or 'none'}")
        print(f"mismatches: {summary['mismatches']}, hangs: {summary['hangs']}")
        print(f"families: {', '.join(summary['families'])}")
        print(f"simulated cycles: {summary['cycles']:,}; wall time {summary['wall_seconds']:.1f} s")
        for f in summary["failures"]:
            print(f"FAILED {f['program']}: {f['reason']}")
    if summary["mismatches"] or summary["hangs"]:
        print(f"vqe: error: {summary['mismatches']} mismatches and {summary['hangs']} hangs; the failing cases "
              f"are in {args.out} (each .json gives the vqe run that replays it)", file=sys.stderr)
        return EXIT_ERROR
    return 0
