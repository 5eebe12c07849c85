"""The FPGA block-RAM rule for the weight SRAM: blocks by device geometry, and whether they fit."""
from __future__ import annotations

import pytest

from model.contract.config import WORDS_PER_KIB
from sim.report.block_ram import DEVICES, ECP5_25F, ECP5_85F, ICE40_HX8K
from sim.report.sections.resident import area_lines


def test_ecp5_takes_one_block_per_512_words_of_32_bits():
    assert [ECP5_85F.blocks_for(w) for w in (0, 1, 512, 513, 4096)] == [0, 1, 1, 2, 8]
    assert ECP5_85F.blocks_for(16 * WORDS_PER_KIB) == 8
    assert ECP5_85F.blocks_for(1024 * WORDS_PER_KIB) == 512
    assert ECP5_85F.blocks_for(100, width_bits=40) == 2  # wider than one block: two side by side


def test_ice40_takes_two_blocks_per_256_words_of_32_bits():
    assert [ICE40_HX8K.blocks_for(w) for w in (1, 256, 257)] == [2, 2, 4]
    assert ICE40_HX8K.blocks_for(16 * WORDS_PER_KIB) == 32


def test_fits_against_the_device_block_count():
    assert (ICE40_HX8K.blocks, ECP5_25F.blocks, ECP5_85F.blocks) == (32, 56, 208)
    assert ICE40_HX8K.fits(16 * WORDS_PER_KIB) and not ICE40_HX8K.fits(64 * WORDS_PER_KIB)
    assert ECP5_25F.fits(64 * WORDS_PER_KIB) and not ECP5_25F.fits(256 * WORDS_PER_KIB)
    assert ECP5_85F.fits(256 * WORDS_PER_KIB) and not ECP5_85F.fits(1024 * WORDS_PER_KIB)


def test_the_rule_as_printed():
    assert ICE40_HX8K.rule == "2 x ceil(W / 256)" and ECP5_85F.rule == "ceil(W / 512)"


@pytest.mark.parametrize("bad", [(-1, 32), (4, 0)])
def test_refuses_an_impossible_memory(bad):
    with pytest.raises(ValueError):
        ECP5_85F.blocks_for(*bad)


def test_area_lines_state_bits_blocks_and_misfits():
    md = "\n".join(area_lines([16, 1024]))
    assert "| 16 KiB | 4,096 | 131,072 | 32 of 32 | 8 of 56 | 8 of 208 |" in md
    assert "| 1024 KiB | 262,144 | 8,388,608 | 2048 of 32: **does not fit** | 512 of 56: **does not fit** | " \
           "512 of 208: **does not fit** |" in md
    assert all(dev.source in md for dev in DEVICES)
