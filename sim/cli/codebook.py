"""``vqe codebook build``: a universal codebook (the engine's ROM) extracted from donor networks."""
from __future__ import annotations

import sys

from model.contract.config import LANES
from model.contract.layout import RVQ_STAGES_MAX
from sim.cli.options import Parser, add_output_arguments, refuse_overwrite, write_atomically
from sim.errors import CliError


def add_parser(sub) -> None:
    """Add the ``codebook`` subcommand (with its ``build`` action) to the subparsers ``sub``."""
    cb = sub.add_parser("codebook", help="build a universal codebook (the engine's ROM)",
                        description="Universal codebook tools (VQ4ALL, arXiv 2412.06875).")
    cbsub = cb.add_subparsers(dest="codebook_command", metavar="ACTION", required=True, parser_class=Parser)
    cbb = cbsub.add_parser("build", help="extract a codebook from donor networks by kernel density estimation",
                           description="Sample row-normalized weight sub-vectors equally from each donor, fit a "
                                       "Gaussian KDE (bandwidth by held-out likelihood), draw from it and cluster "
                                       "the draws into the codewords; write an int8 codebook file (.npz).")
    cbb.add_argument("--donors", nargs="+", required=True,
                     help="donor networks (space or comma separated), e.g. minilm crepe-tiny onet")
    cbb.add_argument("--dim", type=int, default=None, help="codeword dimension = engine lanes (default 4)")
    cbb.add_argument("--size", type=int, default=None, help="codewords, a power of two (default 128)")
    cbb.add_argument("--seed", type=int, default=0, help="sampling and k-means seed (default 0)")
    cbb.add_argument("--stages", type=int, default=None, metavar="S",
                     help="a staged ROM for the engine's residual-VQ mode: S sections of --size codewords, a "
                          "sub-vector the sum of one per section (k-means on the donors' sub-vectors, then on "
                          "what the earlier int8 stages leave; model/compress/universal/staged.py), 2 to "
                          f"{RVQ_STAGES_MAX}; default a flat KDE codebook")
    add_output_arguments(cbb, "codebook file to write (.npz)")
    cbb.set_defaults(func=cmd_codebook_build)


def _donors(args_donors: list[str], known: list[str]) -> list[str]:
    """The donor networks named (space or comma separated), each known and named once.

    Raises
    ------
    sim.errors.CliError
        If none is named, one is unknown, or one is named twice.
    """
    donors = [d for arg in args_donors for d in arg.split(",") if d]
    if not donors:
        raise CliError("--donors is empty: name at least one donor network")
    unknown = [d for d in donors if d not in known]
    if unknown:
        raise CliError(f"unknown donor network(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if len(set(donors)) != len(donors):
        raise CliError(f"a donor is named twice: {', '.join(donors)}")
    return donors


def cmd_codebook_build(args) -> int:
    """Build a universal codebook from ``args.donors`` and write it to ``args.output``."""
    from model.compress.universal.codebook import DEFAULT_DIM, DEFAULT_K, save_codebook
    from model.compress.universal.extract import build_codebook
    from model.nets.registry import network_names
    donors = _donors(args.donors, network_names())
    dim = DEFAULT_DIM if args.dim is None else args.dim
    k = DEFAULT_K if args.size is None else args.size
    if dim not in LANES:   # a codeword is one lanes-wide ROM entry
        raise CliError(f"--dim must be the engine's lanes: one of {', '.join(map(str, LANES))}, got {dim}")
    if k < 2 or k & (k - 1):
        raise CliError(f"--size must be a power of two >= 2 (the engine's codebook depth), got {k}")
    if args.stages is not None and not 2 <= args.stages <= RVQ_STAGES_MAX:
        raise CliError(f"--stages must be 2 to {RVQ_STAGES_MAX} (the engine's residual-VQ stages), got {args.stages}")
    out = refuse_overwrite(args.output, args.force)
    if args.stages is None:
        cb = build_codebook(donors, dim, k, seed=args.seed)
        shape = f"{cb.k} codewords"
    else:
        from model.compress.universal.extract import donor_subvectors
        from model.compress.universal.staged import build_staged
        cb = build_staged(donor_subvectors(donors, dim)[0], k, args.stages, seed=args.seed)
        shape = f"{args.stages} sections of {k} codewords"
    write_atomically(out, lambda tmp: save_codebook(cb, tmp), suffix=".tmp.npz")
    print(f"wrote {out}: {shape} x {cb.dim}, int8, donors {', '.join(cb.donors)}, "
          f"sha256 {cb.content_hash()[:16]}", file=sys.stderr)
    return 0
