"""scripts/experiments/columns_engine.py and its report section: the figures they print are the rows' own."""
import pytest

from scripts.experiments import columns_engine
from sim.report.sections.experiments import columns_engine_lines

ROWS = [{"format": "huffman", "lanes": 4, "images": 10, "bytes": 21736, "cycles_per_inference": 24799.0,
         "cycles_per_layer": [20042.0, 4127.0, 414.0], "first_image_cycles": 30000, "macs_per_inference": 5080.0,
         "zero_skips_per_inference": 12000.0, "utilization_layers": 0.0521, "utilization_inference": 0.0512,
         "energy_pj_per_inference": 519800.0, "energy_scenario": "deepcomp_engine", "bit_exact": True},
        {"format": "columns", "lanes": 4, "images": 10, "bytes": 59256, "cycles_per_inference": 2168.0,
         "cycles_per_layer": [1223.0, 599.0, 131.0], "first_image_cycles": 30000, "macs_per_inference": 5080.0,
         "zero_skips_per_inference": 12000.0, "utilization_layers": 0.6503, "utilization_inference": 0.5858,
         "energy_pj_per_inference": 386200.0, "energy_scenario": "columns_engine", "bit_exact": True}]


def test_markdown_and_report_section_show_each_row():
    text = columns_engine.markdown(ROWS)
    assert "| 4 | columns | 59,256 | 1,223 / 599 / 131 | 2,168 | 5,080 | 0.650 | 0.586 | 386.2 |" in text
    lines = columns_engine_lines({"network": "lenet300", "backend": "verilator", "aim": 0.8, "rows": ROWS})
    assert "| 4 | huffman | 21,736 | 24,799 | 0.052 | 0.051 | 519.8 |" in lines
    assert any("columns_engine.png" in line for line in lines)
    assert "Not run" in columns_engine_lines(None)[2]


def test_plot_writes_a_png(tmp_path):
    columns_engine.plot(ROWS, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv", [["--lanes", "3"], ["--images", "0"]])
def test_bad_arguments_exit_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        columns_engine.main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_replot_writes_every_output_from_the_json(tmp_path):
    import json
    data = {"network": "lenet300", "method": "deepcomp", "backend": "verilator", "aim": 0.8, "rows": ROWS}
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "REPORT.md").write_text("# Report\n\n## Other\n\ntext\n")
    assert columns_engine.main(["--replot", "--json", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md"),
                                "--plot", str(tmp_path / "c.png"), "--report", str(tmp_path / "REPORT.md")]) == 0
    assert "| 4 | columns |" in (tmp_path / "c.md").read_text()
    report = (tmp_path / "REPORT.md").read_text()
    assert "## Other" in report and "## Sparse layers column-wise on the engine" in report
    assert (tmp_path / "c.png").exists()


def test_replot_without_its_json_is_one_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        columns_engine.main(["--replot", "--json", str(tmp_path / "none.json")])
    assert exc.value.code == 2 and "--replot" in capsys.readouterr().err
