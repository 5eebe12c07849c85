"""Report generation on a tiny network: files, contents, and never overwriting user files."""
from __future__ import annotations

import json

import pytest

from sim import report
from sim.energy import SCENARIOS, EnergyTableError, LayerInfo, NetworkData
from tests.test_energy import IMAGES, IO_COUNTERS, SMALL, small_net

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def area_record(lanes, depth, lut4):
    """An area record shaped like `sim.area.sweep` output (numbers made up for the writer only)."""
    return {"lanes": lanes, "codebook_depth": depth, "lut4": lut4, "dff": 10, "carry": 3, "bram": 1, "dsp": 0,
            "transistors": 1000 + lut4, "transistors_logic": 900 + lut4, "transistors_memory": 100,
            "transistors_exact": True, "pnr_error": None, "fmax_mhz": 50.0 + lanes,
            "seconds": {"yosys_ice40": 1.0, "yosys_cmos": 0.5, "nextpnr": 2.0},
            "tools": {"yosys": "Yosys test", "nextpnr": "nextpnr test"},
            "modules": [{"module": "top", "instances": 1, "lut4": lut4, "dff": 10, "carry": 3, "bram": 1,
                         "dsp": 0, "other": {}, "transistors": 1000 + lut4, "memory_bits": 64}]}


AREA = [area_record(1, 16, 100), area_record(2, 16, 180)]


def tiny_networks():
    second = NetworkData("tiny2", 4, [LayerInfo(2, 3, 4, 16, (3,) + (0,) * 15, name="fc")],
                         [dict(SMALL, dram_read_words=9, sram_reads=3, rom_reads=3, macs=12, cycles=5)], 1,
                         method="kmeans", cross_check_backend="icarus", cross_check_images=1)
    return [small_net(io_counters=IO_COUNTERS), second]


def test_report_files_and_contents(tmp_path):
    out = tmp_path / "rep"
    written = report.write_report(out, tiny_networks(), AREA)
    assert set(written) == set(report.REPORT_FILES)
    md = (out / "REPORT.md").read_text()
    assert md.startswith(report.MARKER)
    for sc in SCENARIOS.values():
        assert sc.title in md and sc.derivation in md
    assert "**Not cross-checked**" in md  # the first network
    assert "`icarus` RTL simulation matched" in md and "on 1 input(s)" in md
    assert "**assumption**" in md and "rom_32b" in md and "control_per_cycle" in md
    assert "Horowitz" in md
    for png in (report.PLOT_ENERGY, report.PLOT_BITS, report.PLOT_AREA):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)
        assert f"]({png})" in md

    recs = json.loads((out / "energy.json").read_text())
    assert all(set(r) == {"network", "scenario", "layer", "component", "pj"} for r in recs)
    engine_total = sum(r["pj"] for r in recs
                       if r["network"] == "small" and r["scenario"] == "engine" and r["layer"] == "total")
    # Hand computation (see tests/test_energy.py): 21 DRAM words, 7 SRAM and
    # 4 ROM accesses of 32 bits, 16 MACs, 4 cycles; plus the job-level part:
    # 7 DRAM words and 3 SRAM accesses.
    assert engine_total == pytest.approx(21 * 640 + 7 * 5 + 4 * 5 + 16 * 0.3 + 4 * 0.1 + 7 * 640 + 3 * 5)
    assert "io (job header, input, output)" in md
    # The second network has an RTL cycle counter: 5 cycles x 0.1 pJ.
    control = [r["pj"] for r in recs if r["network"] == "tiny2" and r["scenario"] == "engine"
               and r["layer"] == "total" and r["component"] == "control"]
    assert control == [pytest.approx(0.5)]

    area = json.loads((out / "area.json").read_text())
    assert [(a["lanes"], a["lut4"]) for a in area] == [(1, 100), (2, 180)]
    for a in area:
        assert {"lanes", "codebook_depth", "lut4", "dff", "carry", "bram", "dsp", "transistors",
                "fmax_mhz"} <= set(a)
        assert "seconds" not in a  # volatile fields stay out of the JSON


def test_rerun_overwrites_own_files_and_keeps_others(tmp_path):
    out = tmp_path / "rep"
    report.write_report(out, tiny_networks(), AREA)
    (out / "notes.txt").write_text("mine")
    report.write_report(out, [small_net()], [])
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / report.PLOT_AREA).exists()  # stale plot of our own removed
    assert "No area results" in (out / "REPORT.md").read_text()
    assert json.loads((out / "area.json").read_text()) == []


@pytest.mark.parametrize("name", ["REPORT.md", "energy.json", "energy_breakdown.png"])
def test_refuses_to_overwrite_user_files(tmp_path, name):
    (tmp_path / name).write_text("user data")
    with pytest.raises(report.ReportError, match="refusing to overwrite"):
        report.write_report(tmp_path, [small_net()], [])
    assert (tmp_path / name).read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_energy_table_writes_nothing(tmp_path):
    with pytest.raises(EnergyTableError, match="file not found"):
        report.write_report(tmp_path / "rep", [small_net()], [], energy_table_path=tmp_path / "none.toml")
    assert not (tmp_path / "rep").exists()


def test_user_energy_table_is_used(tmp_path):
    from sim.energy import DEFAULT_TABLE
    table = tmp_path / "mine.toml"
    table.write_text(DEFAULT_TABLE.read_text().replace("pj = 640.0", "pj = 1300.0"))
    report.write_report(tmp_path / "rep", [small_net()], [], energy_table_path=table)
    recs = json.loads((tmp_path / "rep" / "energy.json").read_text())
    dram = [r["pj"] for r in recs if r["scenario"] == "engine" and r["layer"] == "total"
            and r["component"] == "dram"]
    assert dram == [pytest.approx(21 * 1300)]
    assert "mine.toml" in (tmp_path / "rep" / "REPORT.md").read_text()


def test_report_from_the_golden_model(tmp_path):
    """The contract with the golden model: its counters and decoded layers feed the report."""
    import numpy as np

    from model.golden import GoldenEngine
    from model.layout import JOB_WORDS, row_words, vector_words
    from model.program import build_program
    from model.synthetic import random_inputs, random_lowered
    from sim.energy import layers_from_decoded, network_energy, load_energy_table

    lanes, depth, shapes, images = 4, 16, [10, 7, 3], 3
    rng = np.random.default_rng(5)
    program = build_program(random_lowered(rng, lanes, shapes, depth), codebook_depth=depth,
                            config_max_features=64)
    image, _, _ = program.dram_image(random_inputs(rng, images, shapes[0]))
    golden = GoldenEngine(program.config)
    result = golden.run(image)
    _, decoded = golden.decode(image)
    net = NetworkData("random", lanes, layers_from_decoded(decoded, program.config.index_bits),
                      result.layer_counters, images, io_counters=result.io_counters, method="random")

    res = network_energy(net, load_energy_table())["engine"]
    # DRAM words per inference, by hand from the layout: descriptors and row
    # streams per layer, the job header once per job, input and output vectors.
    rows = sum(4 + n_out * row_words(n_in, lanes, program.config.index_bits)
               for n_in, n_out in zip(shapes[:-1], shapes[1:]))
    words = rows + JOB_WORDS / images + vector_words(shapes[0], lanes) + vector_words(shapes[-1], lanes)
    assert res.by_component()["dram"] == pytest.approx(words * 640)
    assert res.by_component()["mac"] == pytest.approx(sum(o * -(-i // lanes) * lanes * 0.3
                                                          for i, o in zip(shapes[:-1], shapes[1:])))
    written = report.write_report(tmp_path / "rep", [net], [])
    assert (tmp_path / "rep" / "REPORT.md").read_text().count("| 0 | 10 x 7 |") == 1
    assert written


def test_energy_unit_choice():
    assert report.energy_unit(0) == ("pJ", 1.0)
    assert report.energy_unit(999) == ("pJ", 1.0)
    assert report.energy_unit(1e3) == ("nJ", 1e3)
    assert report.energy_unit(2.5e7) == ("µJ", 1e6)


def test_images_divide_counters():
    assert IMAGES == 2
    net = small_net()
    assert net.counters(0)["dram_read_words"] == SMALL["dram_read_words"]
