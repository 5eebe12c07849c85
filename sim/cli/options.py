"""What the subcommands share: the parser class, the output-file and ``--quiet`` options, and writing outputs.

An output file is never overwritten without ``--force`` (`refuse_overwrite`)
and is written through a temporary file (`write_atomically`), so a failure
never leaves half a file behind.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from sim.errors import EXIT_USAGE, CliError


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors."""

    def error(self, message):
        """Print ``message`` as one line pointing at ``--help`` and exit with `EXIT_USAGE`."""
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def add_output_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``-o/--output`` (required; ``what`` is its help) and ``--force`` (overwrite it) to ``parser``."""
    parser.add_argument("-o", "--output", required=True, help=what)
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``-q/--quiet`` (no progress bars) to ``parser``."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def refuse_overwrite(path: str | Path, force: bool) -> Path:
    """``path``, its directory created, unless it exists and ``force`` is off.

    Raises
    ------
    sim.errors.CliError
        If ``path`` exists and ``force`` is False.
    """
    path = Path(path)
    if path.exists() and not force:
        raise CliError(f"{path} exists; pass --force to overwrite it")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_atomically(path: Path, write: Callable[[Path], None], suffix: str = ".tmp") -> None:
    """Write ``path`` through ``write(temporary path)`` and a rename: never half a file, even on failure.

    Parameters
    ----------
    path : Path
        File to write.
    write : callable
        ``write(tmp)`` writes the whole file at ``tmp``.
    suffix : str
        Added to the file name for the temporary file (``.tmp.npz`` where the writer needs the extension).
    """
    tmp = path.with_name(path.name + suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler`` and ``--workers``: where sharded work runs (`sim.shards`)."""
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster at ADDRESS (tcp://host:port; `dask scheduler` and "
                             "`dask worker ADDRESS` with this repository installed) instead of an embedded "
                             "LocalCluster with one worker per core")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the embedded LocalCluster (default: one per core)")


def check_cluster_arguments(args) -> None:
    """Refuse a ``--workers`` below 1 (one line)."""
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be at least 1, got {args.workers}")

