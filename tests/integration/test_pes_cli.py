"""``--pes`` on the command line: compress, verilog and run, and the one-line errors."""
import json

import numpy as np
import pytest

from model.contract.ints import ceil_div
from model.program.file import Program
from model.program.synthetic import random_lowered
from model.program.writer import build_program

from cli_helpers import assert_user_error


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """The same synthetic network laid out for 1 and for 4 PEs."""
    work = tmp_path_factory.mktemp("pes_cli")
    lowered = random_lowered(np.random.default_rng(5), 4, [23, 9, 6], 16)
    paths = {}
    for pes in (1, 4):
        paths[pes] = work / f"p{pes}.vqz"
        build_program(lowered, codebook_depth=16, config_max_features=64, pes=pes).save(paths[pes])
    return paths


@pytest.mark.parametrize("args, needles", [
    (("--method", "kmeans", "--pes", "3"), ("--pes must be one of 1, 2, 4, 8, got 3",)),
    (("--method", "deepcomp", "--pes", "3"), ("--pes must be one of 1, 2, 4, 8, got 3",)),
    (("--method", "pvq", "--pes", "4"), ("--pes applies to --method",)),
])
def test_bad_pes_on_compress(args, needles, tmp_path, cli):
    out = tmp_path / "never.vqz"
    assert_user_error(cli("compress", "--network", "lenet300", *args, "-o", out), *needles)
    assert not out.exists()


def test_verilog_pes(programs, tmp_path, cli):
    # A program's PEs are its streams' layout: the engine is built for them, and another P is refused.
    out = tmp_path / "p4.v"
    res = cli("verilog", "--program", programs[4], "-o", out)
    assert res.returncode == 0, res.stderr
    assert "4 processing elements" in res.stderr and "rom_pe3" in out.read_text()
    assert_user_error(cli("verilog", "--program", programs[1], "--pes", "2", "-o", tmp_path / "x.v"),
                      "laid out for 1 processing element(s), not --pes 2", "--pes 2")
    assert_user_error(cli("verilog", "--pes", "5", "-o", tmp_path / "y.v"), "--pes must be one of 1, 2, 4, 8")
    assert not (tmp_path / "x.v").exists() and not (tmp_path / "y.v").exists()


def test_run_json_ideal_cycles_use_every_pe(programs, cli):
    """The golden run of a 4-PE program: the outputs of the 1-PE program, ideal cycles at lanes x pes."""
    summaries = {}
    for pes, path in programs.items():
        res = cli("run", path, "--backend", "golden", "--images", 3, "--json")
        assert res.returncode == 0, res.stderr
        summaries[pes] = json.loads(res.stdout)
    one, four = summaries[1], summaries[4]
    assert four["pes"] == 4 and one["pes"] == 1
    assert four["accuracy"] == one["accuracy"]
    macs = 3 * (23 * 9 + 9 * 6)
    assert one["ideal_cycles"] == ceil_div(macs, 4) and four["ideal_cycles"] == ceil_div(macs, 16)
    assert [l["ideal_cycles"] for l in four["layers"]] == [3 * ceil_div(23 * 9, 16), 3 * ceil_div(9 * 6, 16)]
    assert four["counters"]["sram_reads"] < one["counters"]["sram_reads"]
    assert Program.load(programs[4]).config.pes == 4
