"""The equal-bits table of `make experiments` (scripts/experiments/methods.py) and its report section."""
from __future__ import annotations

from scripts.experiments.methods import BUDGETS, equal_bits, markdown
from sim.report.sections.experiments import methods_lines, minilm_lines


def _row(method, bits, quality, network="net"):
    return {"network": network, "method": method, "options": {}, "bits_per_weight": bits, "int8_quality": quality,
            "float_quality": 0.9, "ratio_vs_fp32": 32 / bits, "energy_pj_per_inference": 1e6 * bits,
            "cycles_per_image": 100, "bit_exact": True}


ROWS = [_row("kmeans", 1.4, 0.80), _row("kmeans", 1.9, 0.85), _row("kmeans", 2.9, 0.88), _row("pq", 2.4, 0.86),
        _row("rq", 4.2, 0.89)]


def test_each_budget_keeps_the_best_point_within_it():
    table = {t["budget_bits_per_weight"]: t["best"] for t in equal_bits(ROWS)}
    assert list(table) == list(BUDGETS)
    assert table[1.5] == {"kmeans": {"int8_quality": 0.80, "bits_per_weight": 1.4}}
    assert table[2.5]["kmeans"]["int8_quality"] == 0.85 and table[2.5]["pq"]["bits_per_weight"] == 2.4
    assert "rq" not in table[4.0]   # 4.2 bits is over every budget
    md = markdown(ROWS, equal_bits(ROWS))
    assert "| <= 2.5 | 0.8500 (1.90) | 0.8600 (2.40) | - |" in md


def test_the_report_section_says_when_the_sweeps_were_not_run():
    assert any("Not run" in line for line in methods_lines(None))
    assert any("Not run" in line for line in minilm_lines(None))
    lines = methods_lines({"rows": ROWS, "equal_bits": equal_bits(ROWS)})
    assert "| <= 1.5 | 0.8000 (1.40) | - | - |" in lines
    assert "5 of 5 programs ran bit-exact on Verilator." in lines


def test_the_minilm_section_sets_the_roms_side_by_side():
    from sim.report.sections.experiments import minilm_variant_lines
    assert minilm_variant_lines([]) == []

    def variant(name, rom_bits, ratio, golden, fit):
        return {"variant": name, "rom_bits": rom_bits, "coding": "c", "compression": {"bits_per_weight": 32 / ratio,
                "ratio_vs_fp32": ratio}, "golden": {"embedding_cosine": golden}, "fit": fit,
                "rtl": {"images": 4, "bit_exact": True, "cycles": 1234567, "energy": {"engine_pj_per_input": 2.5e9}}}
    lines = minilm_variant_lines([variant("flat-16384", 524288, 9.0, 0.913, None),
                                  variant("staged-2x128-fit", 8192, 8.84, 0.9518, {"quality": 0.9475})])
    assert "| flat-16384 | 524,288 | c | 3.56 | 9.00x | - | **0.9130** | 4 sentences, bit-exact True | 1,234,567 | " \
           "2.50 mJ |" in lines
    assert any(line.startswith("| staged-2x128-fit | 8,192 |") and "| 0.9475 | **0.9518** |" in line for line in lines)
