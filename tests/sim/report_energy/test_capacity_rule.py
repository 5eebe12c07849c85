"""On-chip memory energy by capacity: the rule's anchors, clamp, extrapolation, width scaling and table checks."""
from __future__ import annotations

import math

import pytest

from sim.report.energy.events import ROM_32B, SRAM_32B, memory_access_energy
from sim.report.energy.table import KIB, SRAM_CAPACITY_ANCHORS, EnergyTableError, load_energy_table

MIB = KIB * KIB


@pytest.fixture(scope="module")
def table():
    return load_energy_table()


def pj(table, capacity, width, entry=SRAM_32B):
    return memory_access_energy(table, capacity, width, entry)[0]


def test_the_8kb_32bit_point_is_the_old_flat_figure(table):
    assert pj(table, 8 * KIB, 32) == 5.0 == table.pj("sram_8kb_32b")


def test_every_anchor_is_hit_exactly(table):
    assert [name for name, _ in SRAM_CAPACITY_ANCHORS] == ["sram_8kb_64b", "sram_32kb_64b", "sram_1mb_64b"]
    for name, capacity in SRAM_CAPACITY_ANCHORS:
        assert pj(table, capacity, 64) == table.pj(name)
    assert (pj(table, 8 * KIB, 64), pj(table, 32 * KIB, 64), pj(table, MIB, 64)) == (10.0, 20.0, 100.0)


def test_interpolation_is_linear_in_log2_capacity(table):
    # 64 KiB lies 1/5 of the way from 32 KiB (2^15) to 1 MiB (2^20): 20 + (100 - 20) / 5 = 36 pJ per 64 bits.
    assert pj(table, 64 * KIB, 64) == pytest.approx(36.0)
    # 16 KiB: halfway (in log2) between 8 and 32 KiB.
    assert pj(table, 16 * KIB, 64) == pytest.approx(15.0)
    # Not a power of two: 48 KiB at log2 = 15 + log2(1.5).
    assert pj(table, 48 * KIB, 64) == pytest.approx(20 + 80 * math.log2(1.5) / 5)


def test_below_8kb_is_clamped_and_above_1mb_extrapolated(table):
    for small in (0, 1, 576, 2 * KIB, 8 * KIB - 1):
        assert pj(table, small, 32) == 5.0
    # Unknown capacity: the 8 KB point, as every memory was priced before capacities were known.
    assert pj(table, None, 32) == 5.0
    assert "capacity unknown" in memory_access_energy(table, None, 32)[1]
    # 4 MiB (2^22): the 32 KiB-1 MiB segment (16 pJ per doubling) extended two doublings: 132 pJ.
    assert pj(table, 4 * MIB, 64) == pytest.approx(132.0)


def test_monotonic_in_capacity(table):
    capacities = sorted({round(2 ** (e / 4)) for e in range(0, 4 * 25)} | {c for _, c in SRAM_CAPACITY_ANCHORS})
    energies = [pj(table, c, 32) for c in capacities]
    assert all(b >= a for a, b in zip(energies, energies[1:]))
    # Strictly rising above the smallest anchor, where the table's anchors rise.
    above = [e for c, e in zip(capacities, energies) if c > 8 * KIB]
    assert all(b > a for a, b in zip(above, above[1:]))


@pytest.mark.parametrize("capacity", [2 * KIB, 8 * KIB, 64 * KIB, 300 * KIB, 4 * MIB])
def test_linear_in_width(table, capacity):
    at_32 = pj(table, capacity, 32)
    for width in (8, 16, 64, 128):
        assert pj(table, capacity, width) == pytest.approx(at_32 * width / 32, rel=1e-12)


def test_rom_follows_its_own_8kb_entry(tmp_path):
    # A table whose ROM costs 2 pJ per 32-bit read at 8 KB: a 64 KiB ROM costs 2 x 3.6, not the SRAM's 5 x 3.6.
    text = open(load_energy_table().path).read()
    text = text.replace('[entries.rom_32b]\nsame_as = "sram_8kb_32b"\nscale = 1.0', '[entries.rom_32b]\npj = 2.0')
    path = tmp_path / "rom.toml"
    path.write_text(text)
    user = load_energy_table(path)
    assert user.pj(ROM_32B) == 2.0
    assert pj(user, 64 * KIB, 32, ROM_32B) == pytest.approx(2.0 * 3.6)
    assert pj(user, 64 * KIB, 32) == pytest.approx(5.0 * 3.6)
    assert pj(user, 2 * KIB, 32, ROM_32B) == 2.0


def test_the_basis_names_the_entry_and_the_capacity(table):
    _, basis = memory_access_energy(table, 64 * KIB, 32)
    assert basis.startswith("sram_8kb_32b x 3.6 x 32/32 bits") and "64 KiB" in basis


def test_bad_arguments_are_refused(table):
    with pytest.raises(ValueError, match="negative"):
        memory_access_energy(table, -1, 32)
    with pytest.raises(ValueError, match="width"):
        memory_access_energy(table, 8 * KIB, 0)


@pytest.mark.parametrize("entry, published, bad", [("sram_8kb_64b", "10.0", "0.0"),
                                                     ("sram_1mb_64b", "100.0", "15.0")])
def test_anchors_that_are_zero_or_fall_are_refused(tmp_path, entry, published, bad):
    text = open(load_energy_table().path).read()
    anchor = f"[entries.{entry}]\npj = "
    assert anchor + published in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(anchor + published, anchor + bad))
    with pytest.raises(EnergyTableError, match="capacity anchors"):
        load_energy_table(path)
