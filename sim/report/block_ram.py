"""FPGA block RAM a memory of a given size takes: a rule from each device's block geometry, not a synthesis result.

The weight SRAM is ``words`` x 32 bits.  On a device whose block RAM holds
``depth`` words of ``width`` bits in its widest mode, it takes
``ceil(32 / width) x ceil(words / depth)`` blocks (`blocks_for`).  The report
compares that with the device's block count (`BlockRamDevice.fits`); the
engine's own memories (activation SRAM, codebook ROM) take blocks too, so a
fit is a fit of the weight SRAM alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from model.contract.ints import ceil_div
from model.contract.layout import WORD_BITS


@dataclass(frozen=True)
class BlockRamDevice:
    """An FPGA and its block RAM.

    Parameters
    ----------
    device : str
        The device ("iCE40 HX8K").
    primitive : str
        The block as the tools name it, in the mode the rule uses.
    depth, width : int
        Words and bits per word of one block in its widest mode.
    blocks : int
        Blocks on the device.
    source : str
        Where ``depth``, ``width`` and ``blocks`` come from.
    """
    device: str
    primitive: str
    depth: int
    width: int
    blocks: int
    source: str

    def blocks_for(self, words: int, width_bits: int = WORD_BITS) -> int:
        """Blocks a memory of ``words`` words of ``width_bits`` bits takes: ``ceil(width_bits / width) x
        ceil(words / depth)`` (0 for no words).

        Raises
        ------
        ValueError
            If ``words`` is negative or ``width_bits`` not positive.
        """
        if words < 0 or width_bits < 1:
            raise ValueError(f"a memory of {words} words of {width_bits} bits")
        return ceil_div(width_bits, self.width) * ceil_div(words, self.depth)

    def fits(self, words: int, width_bits: int = WORD_BITS) -> bool:
        """Whether such a memory fits the device's blocks (with nothing else using them)."""
        return self.blocks_for(words, width_bits) <= self.blocks

    @property
    def rule(self) -> str:
        """`blocks_for` for a 32-bit memory, in words, for the report."""
        per = ceil_div(WORD_BITS, self.width)
        lanes = f"{per} x " if per > 1 else ""
        return f"{lanes}ceil(W / {self.depth})"


#: The device the report's area and fmax figures come from (``sim.report.area``): 32 blocks of 4 Kbit,
#: 256 x 16 in their widest mode, so a 32-bit word takes two blocks side by side.
ICE40_HX8K = BlockRamDevice(
    "iCE40 HX8K", "SB_RAM40_4K (256 x 16)", 256, 16, 32,
    "Lattice DS1040 iCE40 LP/HX Family Data Sheet (HX8K: 32 blocks, 128 Kbit); TN1250 iCE40 Memory Usage "
    "Guide (4 Kbit, 256 x 16 widest)")
#: ECP5: 18 Kbit sysMEM blocks, 512 x 36 in their widest (pseudo-dual-port) mode.
ECP5_25F = BlockRamDevice(
    "ECP5 LFE5U-25F", "DP16KD (512 x 36 as PDPW16KD)", 512, 36, 56,
    "Lattice FPGA-DS-02012 ECP5 Family Data Sheet (LFE5U-25F: 56 blocks, 1008 Kbit); yosys "
    "techlibs/ecp5/brams.txt (PDPW16KD widths up to 36 over 2^14 bit addresses)")
ECP5_85F = BlockRamDevice(
    "ECP5 LFE5U-85F", "DP16KD (512 x 36 as PDPW16KD)", 512, 36, 208,
    "Lattice FPGA-DS-02012 ECP5 Family Data Sheet (LFE5U-85F: 208 blocks, 3744 Kbit)")
#: Devices the report sizes the weight SRAM for.
DEVICES = (ICE40_HX8K, ECP5_25F, ECP5_85F)
