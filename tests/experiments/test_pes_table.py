"""The processing-elements table of `make experiments` (scripts/experiments/pes.py) and its report section."""
from __future__ import annotations

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.golden.engine import GoldenEngine
from model.program.writer import place_in_weight_sram
from scripts.experiments.pes import add_efficiency, laid_out, measure, steady_state_net
from sim.report.sections.pes import HEADING, NOT_SYNTHESIZED, area_index, pes_lines, replace_section, table_lines

from engine_cases import random_case


def _row(network, method, pes, cycles, lanes=4, depth=256, refused=None):
    return {"network": network, "method": method, "pes": pes, "lanes": lanes, "codebook_depth": depth,
            "cycles_per_inference": cycles, "energy_pj_per_inference": None if cycles is None else 1000.0 * pes,
            "bit_exact": None if refused else True, "backend": "verilator", "refused": refused}


def test_the_core_measures_a_small_program_on_one_and_two_pes():
    """A random program with a weight SRAM, on the Amaranth simulator at P = 1 and 2: bit-exact jobs of 1 and 2
    images, the second image's cycles and energy, and the efficiency as defined."""
    program, *_ = random_case(11, 4, weight_sram=True)
    x = random_vectors(np.random.default_rng(3), 2, program.meta["input_features"])
    rows = []
    for pes in (1, 2):
        laid = laid_out(program, pes)
        assert laid.config.pes == pes
        row = measure(laid, x, None, "amaranth")
        assert row["bit_exact"] is True
        assert row["job_cycles_2_images"] == row["first_image_cycles"] + row["cycles_per_inference"]
        assert 0 < row["cycles_per_inference"] < row["job_cycles_2_images"]
        assert row["energy_pj_per_inference"] > 0 and row["energy_scenario"]
        # The golden model's MACs of the second image: every weight once.
        assert row["macs_per_inference"] == sum(l["in_features"] * l["out_features"] for l in program.meta["layers"])
        rows.append({"network": "random", "method": "kmeans", "pes": pes, **row})
    add_efficiency(rows)
    one, two = (r["cycles_per_inference"] for r in rows)
    assert rows[0]["scaling_efficiency"] == 1.0
    assert rows[1]["scaling_efficiency"] == pytest.approx(one / (2 * two))
    assert rows[1]["speedup"] == pytest.approx(one / two)


def test_the_steady_state_is_the_second_image_of_the_job():
    """With every layer resident, the second image reads no stream from DRAM and writes none into the weight SRAM:
    those are the first image's (the job's load)."""
    program, *_ = random_case(14, 2)   # three layers
    program = place_in_weight_sram(program, sum(l["placement"]["words"] for l in program.meta["layers"]))
    x = random_vectors(np.random.default_rng(4), 2, program.meta["input_features"])
    n = len(program.meta["layers"])
    assert n == 3
    runs = [{"cycles": 1000 * k, "layers": [{"cycles": (100 + 10 * i) * k} for i in range(n)]} for k in (1, 2)]
    net = steady_state_net(program, x, *runs)
    assert net.images == 1
    assert sum(c["weight_sram_writes"] for c in net.per_layer_counters) == 0
    assert sum(c["weight_sram_reads"] for c in net.per_layer_counters) > 0
    assert [c["cycles"] for c in net.per_layer_counters] == [100 + 10 * i for i in range(n)]
    assert net.io_counters["cycles"] == 1000 - sum(100 + 10 * i for i in range(n))
    image, _, _ = program.dram_image(x[:1])
    first = GoldenEngine(program.config).run(image).layer_counters
    assert [c["macs"] for c in net.per_layer_counters] == [c["macs"] for c in first]


def test_pvq_programs_are_refused_above_one_pe():
    program, *_ = random_case(13, 4, pvq_k_max=2)
    assert "PVQ" in laid_out(program, 2)
    assert laid_out(program, 1) is program


def test_sparse_programs_are_compressed_again_for_p(tmp_path):
    """A program with sparse layers is not laid out for P (its streams depend on P) but compressed with --pes P
    (program_for with the Makefile's options), kept beside the P = 1 program."""
    from scripts.experiments import pes as experiment
    program, *_ = random_case(11, 4, huffman_k_max=4)
    assert experiment.has_sparse_layers(program) and "compress it again with --pes 4" in laid_out(program, 4)
    assert experiment.pes_path("build/lenet300-deepcomp.vqz", 4) == "build/lenet300-deepcomp-pes4.vqz"
    asked = []

    def program_for(network, method, path, options=()):
        asked.append((network, method, path, tuple(options)))
        return "compressed"
    saved, experiment.program_for = experiment.program_for, program_for
    try:
        assert experiment.program_at("lenet300", "deepcomp", "build/d.vqz", (), 4, program) == \
            ("compressed", "build/d-pes4.vqz")
        assert experiment.program_at("lenet300", "deepcomp", "build/d.vqz", (), 1, program) == (program, "build/d.vqz")
        dense, *_ = random_case(12, 4)
        laid, at = experiment.program_at("lenet300", "kmeans", "build/k.vqz", (), 2, dense)
        assert laid.config.pes == 2 and at == "build/k.vqz"
    finally:
        experiment.program_for = saved
    assert asked == [("lenet300", "deepcomp", "build/d-pes4.vqz", ("--pes", "4"))]


def test_efficiency_is_against_the_same_programs_one_pe():
    rows = add_efficiency([_row("a", "kmeans", 1, 1000), _row("a", "kmeans", 4, 300), _row("b", "kmeans", 2, 500),
                           _row("a", "deepcomp", 1, 800), _row("a", "deepcomp", 2, None, refused="sparse")])
    assert rows[1]["scaling_efficiency"] == pytest.approx(1000 / (4 * 300))
    assert rows[1]["speedup"] == pytest.approx(1000 / 300)
    assert rows[2]["scaling_efficiency"] is None      # no P = 1 row of b
    assert rows[4]["scaling_efficiency"] is None


def test_the_table_reads_area_by_engine_target_lanes_pes_and_depth():
    rows = add_efficiency([_row("n", "kmeans", 1, 1000), _row("n", "kmeans", 2, 520), _row("n", "universal", 1, 900),
                           _row("n", "deepcomp", 2, None, refused="layer 0 is sparse"), _row("n", "pvq", 1, 950)])
    area = [{"lanes": 4, "codebook_depth": 256, "lut4": 6783, "fmax_mhz": 36.5},          # before targets: iCE40, 1 PE
            {"target": "ecp5-85f", "lanes": 4, "pes": 2, "codebook_depth": 256, "lut4": 9000, "fmax_mhz": 101.0},
            {"target": "ecp5-85f", "lanes": 4, "pes": 1, "codebook_depth": 256, "lut4": 1, "engine": "all-units"},
            {"target": "ecp5-85f", "lanes": 4, "pes": 1, "codebook_depth": 256, "lut4": 4321, "fmax_mhz": None,
             "pnr_error": "does not fit", "engine": "universal"}]
    assert set(area_index(area)) == {("kmeans", "ice40-hx8k", 4, 1, 256), ("kmeans", "ecp5-85f", 4, 2, 256),
                                     ("all-units", "ecp5-85f", 4, 1, 256), ("universal", "ecp5-85f", 4, 1, 256)}
    lines = table_lines(rows, area)
    assert lines[2] == ("| n | kmeans | 1 | 1,000 | 1.00x | 1.000 | 1.0 | 6,783 LUT4, 36.5 MHz | "
                        f"{NOT_SYNTHESIZED} |")
    assert lines[3] == (f"| n | kmeans | 2 | 520 | 1.92x | 0.962 | 2.0 | {NOT_SYNTHESIZED} | 9,000 LUT4, 101.0 MHz |")
    assert lines[4].endswith(f"| {NOT_SYNTHESIZED} | 4,321 LUT4, does not place |")   # the method's own engine
    assert "refused: layer 0 is sparse" in lines[5]
    assert lines[6].endswith(f"| {NOT_SYNTHESIZED} | {NOT_SYNTHESIZED} |")   # no record of the PVQ engine: none
    # (the all-units record is no method's engine)


def test_the_report_section_and_its_rewrite(tmp_path):
    assert any("Not run" in line for line in pes_lines(None))
    rows = add_efficiency([_row("n", "kmeans", 1, 1000), _row("n", "kmeans", 2, 520)])
    lines = pes_lines({"rows": rows}, [])
    assert lines[0] == HEADING and "2 runs measured, 2 of them bit-exact on verilator" in lines[4]
    md = tmp_path / "REPORT.md"
    md.write_text("# r\n\n## A\n\na\n")
    replace_section(md, lines)
    replace_section(md, pes_lines({"rows": rows[:1]}, []))
    text = md.read_text()
    assert text.startswith("# r\n\n## A\n\na\n\n" + HEADING) and text.count(HEADING) == 1
    assert "1 runs measured" in text and "| n | kmeans | 2 |" not in text
    md.write_text(text + "\n## B\n\nb\n")
    replace_section(md, lines)
    assert md.read_text().endswith("| n | kmeans | 2 | 520 | 1.92x | 0.962 | 2.0 | not synthesized | "
                                   "not synthesized |\n\n## B\n\nb\n")
