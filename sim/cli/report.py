"""``vqe report``: REPORT.md, energy.json, area.json and plots (`sim.report.build.make_report`)."""
from __future__ import annotations

from sim.cli.options import add_quiet_argument


def add_parser(sub) -> None:
    """Add the ``report`` subcommand to the subparsers ``sub``."""
    from sim.report.area.targets import TARGETS
    rep = sub.add_parser("report", help="write the energy and area report",
                         description="Regenerate REPORT.md, energy.json, area.json and plots.")
    rep.add_argument("-o", "--output", required=True, help="report directory")
    rep.add_argument("--energy-table", help="energy table (TOML) to use instead of the default")
    rep.add_argument("--program", action="append",
                     help="program(s) to report on (repeatable; default build/lenet300.vqz)")
    rep.add_argument("--images", type=int, default=100, help="test images for the golden counters (default 100)")
    rep.add_argument("--cross-check", type=int, default=2,
                     help="images also run on the RTL backend, outputs and counters compared (default 2; 0 = none)")
    rep.add_argument("--backend", default="icarus", help="RTL backend of the cross-check (default icarus)")
    rep.add_argument("--quick", action="store_true",
                     help="synthesize only the lanes=4, depth=256 engine instead of the lanes x depth sweep")
    rep.add_argument("--area-only", action="store_true",
                     help="regenerate only area.json, the area plot and REPORT.md's area section of the report "
                          "already in --output (no simulation; synthesis results are cached)")
    rep.add_argument("--pes", type=int, nargs="+", default=None, metavar="P",
                     help="processing elements of the area sweep (default: 1 until the engine has the parameter)")
    rep.add_argument("--cached-only", action="store_true",
                     help="run no synthesis: report the area of the configurations already in the cache "
                          "(reports/area-cache/; the others are listed as not synthesized). `make` uses it; "
                          "`make reports` runs the tools for what is missing")
    rep.add_argument("--targets", nargs="+", default=None, metavar="TARGET", choices=sorted(TARGETS),
                     help="with --area-only: synthesize only these targets' missing configurations "
                          f"({', '.join(sorted(TARGETS))}; default all); the report keeps every cached one")
    rep.add_argument("--jobs", type=int, default=None,
                     help="synthesis and place-and-route runs at once (default: the CPUs)")
    add_quiet_argument(rep)
    rep.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    """Write the report into ``args.output``."""
    from sim.report.build import make_area_report, make_report
    if args.area_only:
        make_area_report(args.output, quick=args.quick, pes=args.pes, jobs=args.jobs, progress=not args.quiet,
                         cached_only=args.cached_only, targets=args.targets)
        return 0
    make_report(args.output, args.program, images=args.images, cross_check=args.cross_check,
                backend=args.backend, quick=args.quick, energy_table=args.energy_table, progress=not args.quiet,
                pes=args.pes, jobs=args.jobs, cached_only=args.cached_only)
    return 0
