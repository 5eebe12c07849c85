"""Report generation on a tiny network: files, contents, and never overwriting user files."""
from __future__ import annotations

import json

import pytest

from sim.report import document as report
from sim.report.energy.network import LayerInfo, NetworkData
from sim.report.energy.registry import SCENARIOS
from sim.report.energy.table import EnergyTableError
from sim.report.files import (EXTRA_FILES, MARKER, PLOT_AREA, PLOT_BITS, PLOT_ENERGY, PLOT_PVQ, PLOT_PVQ_ZOO,
                              PLOT_RESIDENT, REPORT_FILES)
from sim.report.formatting import energy_unit, significant
from sim.report.plots import plot_pvq_accuracy, plot_pvq_zoo
from sim.report.sections.energy import engine_comparison

from energy_cases import IMAGES, IO_COUNTERS, SMALL, small_net

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def area_record(lanes, depth, lut4, target="ice40-hx8k", pes=1, engine="kmeans", fmax="auto"):
    """An area record shaped like `sim.report.build.area_records` output (numbers made up for the writer only)."""
    return {"target": target, "engine": engine, "lanes": lanes, "pes": pes, "codebook_depth": depth, "lut4": lut4, "dff": 10, "carry": 3, "bram": 1, "dsp": 0,
            "transistors": 1000 + lut4, "transistors_logic": 900 + lut4, "transistors_memory": 100,
            "transistors_exact": True, "pnr_error": None, "fmax_mhz": 50.0 + lanes if fmax == "auto" else fmax,
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
    # No residency sweep given: no plot of it (tests/sim/report_energy/test_resident.py writes one).
    assert set(written) == set(REPORT_FILES) - set(EXTRA_FILES) - {PLOT_RESIDENT}
    md = (out / "REPORT.md").read_text()
    assert md.startswith(MARKER)
    for sc in SCENARIOS.values():
        assert sc.title in md and sc.derivation in md
    assert "**Not cross-checked**" in md  # the first network
    assert "`icarus` RTL simulation matched" in md and "on 1 input(s)" in md
    assert "**assumption**" in md and "rom_32b" in md and "control_per_cycle" in md
    assert "Horowitz" in md
    for png in (PLOT_ENERGY, PLOT_BITS, PLOT_AREA):
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
        assert {"target", "lanes", "pes", "codebook_depth", "lut4", "dff", "carry", "bram", "dsp", "transistors",
                "fmax_mhz", "engine", "pnr_error"} <= set(a)
        assert a["target"] == "ice40-hx8k" and a["pes"] == 1
        assert "seconds" not in a  # volatile fields stay out of the JSON


def test_area_only_rewrites_the_area_part_and_keeps_the_rest(tmp_path):
    out = tmp_path / "rep"
    report.write_report(out, tiny_networks(), AREA, extra_md=["## A later section", "", "kept as it is", ""])
    before = (out / "REPORT.md").read_text()
    energy = (out / "energy.json").read_bytes()
    ice = area_record(4, 256, 7000, fmax=61.5)
    full = area_record(4, 256, 9000, engine="all-units", fmax=None)
    full["pnr_error"] = "nextpnr-ice40 failed (exit 255): ERROR: Failed to expand region"
    ecp = [area_record(n, 256, 5000 + n, target="ecp5-85f", pes=p, fmax=100.0 + n) for n in (4, 8) for p in (1, 4)]
    ecp_full = area_record(4, 256, 9100, target="ecp5-85f", engine="all-units", fmax=77.0)
    report.write_area_only(out, [ice, *ecp, full, ecp_full])
    md = (out / "REPORT.md").read_text()
    area = json.loads((out / "area.json").read_text())
    assert [(a["target"], a["lanes"], a["pes"], a["engine"]) for a in area] == \
        [("ice40-hx8k", 4, 1, "kmeans"), ("ecp5-85f", 4, 1, "kmeans"), ("ecp5-85f", 4, 4, "kmeans"),
         ("ecp5-85f", 8, 1, "kmeans"), ("ecp5-85f", 8, 4, "kmeans"), ("ice40-hx8k", 4, 1, "all-units"),
         ("ecp5-85f", 4, 1, "all-units")]
    assert (out / "energy.json").read_bytes() == energy   # nothing else is written
    head, tail = before.split("## Area and fmax")
    assert md.startswith(head)   # everything before the area section is kept
    rest = tail[tail.index("\n## "):]
    assert md.endswith(rest) and "kept as it is" in rest    # and everything after it
    section = md[len(head):len(md) - len(rest)]
    assert "### ice40-hx8k" in section and "### ecp5-85f" in section
    assert "61.5 MHz, goal of 60 MHz met" in section
    assert "every optional unit (lanes 4), ice40-hx8k" in section and "**does not fit**" in section
    assert "ecp5-85f: 9,100 LUT4" in section and "fmax 77 MHz" in section
    assert (out / PLOT_AREA).read_bytes().startswith(PNG_MAGIC)
    # The default grid's points without a record are listed as not synthesized.
    assert "Not synthesized for this report" in section and "ice40-hx8k lanes 8 PEs 1 depth 16" in section
    assert "ecp5-85f lanes 4 PEs 4 depth 256" not in section.split("Not synthesized")[1].split("\n")[0]
    # A missed goal says so.
    report.write_area_only(out, [area_record(4, 256, 7000, fmax=45.25)])
    assert "45.25 MHz, goal of 60 MHz **missed**" in (out / "REPORT.md").read_text()


def test_area_only_needs_a_report(tmp_path):
    with pytest.raises(report.ReportError, match="write the whole report first"):
        report.write_area_only(tmp_path, AREA)


def test_rerun_overwrites_own_files_and_keeps_others(tmp_path):
    out = tmp_path / "rep"
    report.write_report(out, tiny_networks(), AREA)
    (out / "notes.txt").write_text("mine")
    report.write_report(out, [small_net()], [])
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / PLOT_AREA).exists()  # stale plot of our own removed
    assert "No area results" in (out / "REPORT.md").read_text()
    assert json.loads((out / "area.json").read_text()) == []


def test_a_report_of_an_earlier_version_is_ours_to_overwrite(tmp_path):
    from sim.report.files import EARLIER_MARKERS
    (tmp_path / "REPORT.md").write_text(EARLIER_MARKERS[0] + "\n\n# an older report\n")
    report.write_report(tmp_path, [small_net()], [])
    assert (tmp_path / "REPORT.md").read_text().startswith(MARKER)
    # A marker anywhere but the first line is the user's text, not ours.
    (tmp_path / "REPORT.md").write_text("my notes\n" + MARKER + "\n")
    with pytest.raises(report.ReportError, match="refusing to overwrite"):
        report.write_report(tmp_path, [small_net()], [])


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
    from sim.report.energy.table import DEFAULT_TABLE
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

    from model.codecs.vectors import random_vectors
    from model.contract.layout import DESC_WORDS, JOB_WORDS, row_words, vector_words
    from model.golden.engine import GoldenEngine
    from model.program.synthetic import random_lowered
    from model.program.writer import build_program
    from sim.report.energy.golden import layers_from_decoded
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.table import load_energy_table

    lanes, depth, shapes, images = 4, 16, [10, 7, 3], 3
    rng = np.random.default_rng(5)
    program = build_program(random_lowered(rng, lanes, shapes, depth), codebook_depth=depth,
                            config_max_features=64)
    image, _, _ = program.dram_image(random_vectors(rng, images, shapes[0]))
    golden = GoldenEngine(program.config)
    result = golden.run(image)
    _, decoded = golden.decode(image)
    net = NetworkData("random", lanes, layers_from_decoded(decoded, program.config.index_bits),
                      result.layer_counters, images, io_counters=result.io_counters, method="random")

    res = network_energy(net, load_energy_table())["engine"]
    # DRAM words per inference, by hand from the layout: descriptors and row
    # streams per layer, the job header once per job, input and output vectors.
    rows = sum(DESC_WORDS + n_out * row_words(n_in, lanes, program.config.index_bits, layer["compact"])
               for n_in, n_out, layer in zip(shapes[:-1], shapes[1:], program.meta["layers"]))
    words = rows + JOB_WORDS / images + vector_words(shapes[0], lanes) + vector_words(shapes[-1], lanes)
    assert res.by_component()["dram"] == pytest.approx(words * 640)
    assert res.by_component()["mac"] == pytest.approx(sum(o * -(-i // lanes) * lanes * 0.3
                                                          for i, o in zip(shapes[:-1], shapes[1:])))
    written = report.write_report(tmp_path / "rep", [net], [])
    assert (tmp_path / "rep" / "REPORT.md").read_text().count("| 0 | 10 x 7 |") == 1
    assert written


def test_energy_unit_choice():
    assert energy_unit(0) == ("pJ", 1.0)
    assert energy_unit(999) == ("pJ", 1.0)
    assert energy_unit(1e3) == ("nJ", 1e3)
    assert energy_unit(2.5e7) == ("µJ", 1e6)


def test_images_divide_counters():
    assert IMAGES == 2
    net = small_net()
    assert net.counters(0)["dram_read_words"] == SMALL["dram_read_words"]


def pvq_lowered(rng, lanes: int, shapes: list[int], k: int):
    """A lowered network of ``shapes`` whose every layer is PVQ-coded with ``k`` pulses."""
    import types

    import numpy as np

    from model.contract.ints import ceil_div
    from model.program.synthetic import random_pvq_vectors
    layers = []
    for i, (n_in, n_out) in enumerate(zip(shapes[:-1], shapes[1:])):
        s = ceil_div(n_in, lanes)
        layers.append(types.SimpleNamespace(
            mode="pvq", in_features=n_in, out_features=n_out, pvq_k=k,
            pvq_y=random_pvq_vectors(rng, (n_out, s), lanes, k), pvq_scale=rng.integers(0, 256, size=(n_out, s)),
            codebook=np.zeros((0, lanes), dtype=np.int64), indices=None,
            bias=rng.integers(-(1 << 20), 1 << 20, size=n_out), mult=rng.integers(0, 1 << 15, size=n_out),
            shift=rng.integers(16, 28, size=n_out), relu=i < len(shapes) - 2))
    return types.SimpleNamespace(name="random", method="pvq", lanes=lanes, input_scale=1 / 127, output_scale=1.0,
                                 layers=layers, info={})


def test_pvq_program_has_the_kmeans_programs_dense_baselines():
    """Regression: the report sized a PVQ program's streams with the VQ index width (and kept its
    adds in the dense baselines), so its fp32 baseline read more than the k-means program's."""
    import dataclasses

    import numpy as np

    from model.codecs.vectors import random_vectors
    from model.program.synthetic import random_lowered
    from model.program.writer import build_program
    from sim.report.energy.golden import golden_network_data
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.table import load_energy_table

    lanes, depth, shapes, k = 4, 16, [22, 9, 5], 3
    rng = np.random.default_rng(11)
    x = random_vectors(rng, 3, shapes[0])
    vq_prog = build_program(random_lowered(rng, lanes, shapes, depth), codebook_depth=depth, config_max_features=64)
    pvq_prog = build_program(pvq_lowered(rng, lanes, shapes, k), codebook_depth=depth, config_max_features=64,
                             pvq_k_max=k)
    vq, pvq = golden_network_data(vq_prog, x), golden_network_data(pvq_prog, x)
    assert pvq.name == "random-pvq" and pvq.method == "pvq"
    # 15-bit entries (7-bit index + 8-bit scale), not the 4-bit VQ index of this engine.
    assert [layer.index_bits for layer in pvq.layers] == [15, 15]
    assert [layer.index_bits for layer in vq.layers] == [4, 4]
    table = load_energy_table()
    res_vq, res_pvq = network_energy(vq, table), network_energy(pvq, table)
    for key in ("fp32", "int8"):
        assert res_pvq[key].total() == pytest.approx(res_vq[key].total(), rel=1e-12)
        assert res_pvq[key].by_component() == pytest.approx(res_vq[key].by_component(), rel=1e-12)
    assert list(res_pvq) == ["fp32", "int8", "pvq_engine", "pvq_entropy_floor"]
    assert "vq_sram" in res_vq and "pvq_engine" not in res_vq
    # The engine scenario's DRAM is the PVQ program's real stream: every row word the golden read.
    dram_words = sum(pvq.counters(i)["dram_read_words"] for i in range(len(pvq.layers)))
    assert res_pvq["pvq_engine"].by_component()["dram"] == pytest.approx(
        (dram_words + pvq.counters("io")["dram_read_words"] + pvq.counters("io")["dram_write_words"]) * 640)
    lines = engine_comparison([(vq, res_vq), (pvq, res_pvq)],
                                     {"random-pvq": {"bits_per_weight": 3.9, "accuracy": 0.5}})
    assert "(e) this engine, PVQ unit: adds, no codebook" in lines[0] and "(d) this engine" in lines[0]
    assert "| random-pvq | `pvq` | 4 | (e) this engine, PVQ unit: adds, no codebook | 3.9 | 50.00 % |" in lines[0]
    # No RTL cycle counter in golden-only data: no work per cycle.
    assert "| - | - | - |" in lines[0].splitlines()[-1]
    timed = dataclasses.replace(pvq, cycles=1000 * pvq.images)
    adds = sum(pvq.counters(i)["adds"] for i in range(len(pvq.layers)))
    row = engine_comparison([(timed, res_pvq)])[0].splitlines()[-1]
    assert f"| 1000 | - | {significant(adds / 1000)} |" in row
    assert "| random-random | `random` | 4 | (d) this engine, codebook in ROM | - | - |" in lines[0]


def test_pvq_plots_and_extra_files(tmp_path):
    acc = {"network": "lenet300", "test_images": 100, "float_accuracy": 0.9, "rows": [
        {"method": m, "lanes": 4, "bits_per_weight": b, "init_accuracy": a - 0.1, "int8_accuracy": a}
        for m, b, a in (("pvq", 3.0, 0.8), ("pvq", 4.0, 0.85), ("vq", 2.9, 0.86), ("vq", 3.9, 0.87))]}
    zoo = {"networks": [{"network": n, "metric_name": "accuracy", "float_metric": 0.9, "rows": [
        {"method": "kmeans", "dim": 4, "bits_per_weight": 2.0, "metric": 0.8, "skipped": False},
        {"method": "pvq", "dim": 8, "bits_per_weight": 2.1, "metric": 0.7, "skipped": False},
        {"method": "pvq", "dim": 4, "bits_per_weight": 2.9, "skipped": True}]} for n in ("a", "b")]}
    files = {PLOT_PVQ: plot_pvq_accuracy(acc), PLOT_PVQ_ZOO: plot_pvq_zoo(zoo)}
    out = tmp_path / "rep"
    written = report.write_report(out, tiny_networks(), AREA, extra_md=["## PVQ", "", "text"], extra_files=files)
    assert set(written) == set(REPORT_FILES) - {PLOT_RESIDENT}
    assert (out / PLOT_PVQ).read_bytes().startswith(PNG_MAGIC)
    assert (out / PLOT_PVQ_ZOO).read_bytes().startswith(PNG_MAGIC)
    assert (out / "REPORT.md").read_text().rstrip().endswith("## PVQ\n\ntext")
    # A later run without them removes the stale plots; a file outside the list is refused.
    report.write_report(out, tiny_networks(), AREA)
    assert not (out / PLOT_PVQ).exists()
    with pytest.raises(report.ReportError, match="extra report file"):
        report.write_report(out, tiny_networks(), AREA, extra_files={"notes.txt": b"x"})


def test_programs_of_one_network_and_method_get_distinct_names():
    import dataclasses

    from sim.errors import CliError
    from sim.report.programs import distinct_names
    a = small_net(histogram=())
    b = dataclasses.replace(a, lanes=8)
    named = distinct_names([a, b], ["a.vqz", "b.vqz"])
    assert [n.name for n in named] == ["small", "small-8lanes"]
    with pytest.raises(CliError, match="both small-4lanes"):
        distinct_names([a, a, a], ["a.vqz", "c.vqz", "d.vqz"])


def test_pvq_zoo_section_names_what_was_not_run():
    from sim.report.sections.pvq import pvq_zoo_lines
    rows = [{"method": "kmeans", "dim": 4, "budget": 3.0, "skipped": False, "bits_per_weight": 2.9, "metric": 0.8,
             "quantize_seconds": 600.0}]
    z = {"kmeans_d": 4, "fit_vectors_per_codeword": 32, "bias_bits": 32, "total_seconds": 900.0,
         "budgets": [3.0, 4.0], "table_markdown": "| t |",
         "networks": [{"network": "big", "description": "a net", "metric_name": "m", "float_metric": 0.9,
                       "rows": rows}]}
    text = "\n".join(pvq_zoo_lines(z))
    assert "Not run: big at 4 bits (its k-means at 3 bits took 10 min; each further bit per weight " \
           "multiplies its codebooks by 16)." in text
    assert "took 15 min" in text and "big: a net" in text and "| big (" in text
    assert "parentheses" not in text  # no secondary metric for this network


def test_layer_modes_without_an_engine_scenario_get_the_dense_baselines():
    """A network with sparse Huffman-coded layers (no scenario registered for them here) is still
    reported, with the dense baselines only, and they equal a k-means program's of the same shapes."""
    import numpy as np

    from model.codecs.vectors import random_vectors
    from model.program.synthetic import random_lowered
    from model.program.writer import build_program
    from sim.report.energy.golden import golden_network_data
    from sim.report.energy.pricing import network_energy
    from sim.report.energy.table import load_energy_table

    rng = np.random.default_rng(3)
    shapes = [20, 9, 5]
    x = random_vectors(rng, 2, shapes[0])
    mixed = golden_network_data(build_program(random_lowered(rng, 4, shapes, 16, huffman_k_max=8),
                                              codebook_depth=16, config_max_features=64), x)
    assert [layer.mode for layer in mixed.layers] == ["huffman", "vq"]
    vq = golden_network_data(build_program(random_lowered(rng, 4, shapes, 16), codebook_depth=16,
                                           config_max_features=64), x)
    table = load_energy_table()
    res = network_energy(mixed, table)
    assert list(res) == ["fp32", "int8"]
    assert res["fp32"].total() == pytest.approx(network_energy(vq, table)["fp32"].total(), rel=1e-12)
    assert engine_comparison([(mixed, res)]) == []  # no measured engine scenario to compare


def test_pvq_area_lines_without_a_record_say_not_synthesized():
    """`vqe report --cached-only` (what `make` writes) without the PVQ engine in the area cache."""
    from sim.report.sections.pvq import pvq_area_lines
    lines = pvq_area_lines(None, 4, 256, 3)
    assert lines[0] == "### Area" and any(line.startswith("Not synthesized") for line in lines)
    assert not any(line.startswith("|") for line in lines)


def test_report_cli_cached_only_reaches_the_whole_report(monkeypatch, tmp_path):
    """`--cached-only` without `--area-only` is passed to the whole report, so `make` runs no synthesis."""
    import sim.report.build as build
    from sim.cli.report import cmd_report
    seen = {}
    monkeypatch.setattr(build, "make_report", lambda output, programs, **kw: seen.update(kw))
    import argparse
    args = argparse.Namespace(area_only=False, output=str(tmp_path), program=None, images=1, cross_check=0,
                              backend="icarus", quick=False, energy_table=None, quiet=True, pes=None, jobs=None,
                              cached_only=True)
    assert cmd_report(args) == 0 and seen["cached_only"] is True
