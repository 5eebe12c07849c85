"""What a ``vqe`` command raises for a user's mistake, and the exit statuses it ends with.

Shared by the command line (`sim.cli`) and the ``vqe report`` driver
(`sim.report.build`), which must not import the command line.
"""
from __future__ import annotations

from model.contract.errors import VqeError

#: Exit status of a usage error (argparse).
EXIT_USAGE = 2
#: Exit status of a failure the user can fix (any `VqeError` or `OSError`), or of an RTL mismatch.
EXIT_ERROR = 1
#: Exit status of a bug: any other exception.
EXIT_INTERNAL = 3


class CliError(VqeError):
    """A user-facing failure: printed as one line."""
