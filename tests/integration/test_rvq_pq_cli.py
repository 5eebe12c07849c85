"""``vqe compress --method rq|pq`` on LeNet-300-100 end to end: coded, lowered, scored on the golden model, run
bit-exact on Verilator; and the command line writing and running such a program."""
from __future__ import annotations

import json
import os

import pytest

from model.compress.pipeline import compress
from model.nets.inputs import load_inputs
from sim.run import run_program

#: Calibration images (the method's default is 2000).
CALIBRATION = 300
#: The cache of trained networks the session started with (the ``cli`` fixture points elsewhere).
ORIGINAL_CACHE = os.environ.get("VQE_CACHE")


@pytest.fixture(scope="module", params=[("rq", dict(stages=2, codebook_size=16)), ("pq", dict(codebook_size=64))],
                ids=["rq", "pq"])
def coded(request):
    method, options = request.param
    return method, options, compress("lenet300", method, calibration=CALIBRATION, progress=False, **options)


def test_program_records_its_layers_and_accuracy(coded):
    method, options, program = coded
    info, layers = program.meta["info"], program.meta["layers"]
    mode = {"rq": "rvq", "pq": "pq"}[method]
    assert [layer["mode"] for layer in layers] == [mode] * 3
    assert program.meta["method"] == method
    assert info["int8_accuracy"] > 0.8 and info["float_accuracy"] - info["int8_accuracy"] < 0.05
    if method == "rq":
        assert program.config.rvq_stages_max == 2 and all(layer["stages"] == 2 for layer in layers)
        assert program.config.codebook_depth == 16   # two 4-bit stage indices: 2 bits per weight
        assert 2 < program.meta["compression"]["bits_per_weight"] < 2.5
    else:
        assert program.config.pq and not program.config.rvq_stages_max
        assert [layer["blocks"] for layer in layers] == [7, 3, 1]


def test_bit_exact_on_verilator_with_full_utilization(coded):
    _, _, program = coded
    x, labels, _ = load_inputs(program.meta, 3, 0, 1)
    r = run_program(program, x, labels, "verilator")
    assert r["bit_exact"] is True and r["mismatches"] == 0
    assert r["utilization"] >= 0.9


def test_the_command_line_runs_a_saved_program(coded, cli, tmp_path, monkeypatch):
    method, _, program = coded
    path = tmp_path / f"{method}.vqz"
    program.save(path)
    # The trained float network (reference accuracy) from the cache the compression above used, not a new one.
    if ORIGINAL_CACHE is None:
        monkeypatch.delenv("VQE_CACHE", raising=False)
    else:
        monkeypatch.setenv("VQE_CACHE", ORIGINAL_CACHE)
    res = cli("run", path, "--backend", "verilator", "--images", "2", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["bit_exact"] is True and out["method"] == method
    assert {layer["mode"] for layer in out["layers"]} == {"rvq" if method == "rq" else "pq"}


def test_command_line_refuses_engine_stages_beyond_the_unit(cli, tmp_path):
    res = cli("compress", "--network", "lenet300", "--method", "rq", "--stages", "5", "-o", tmp_path / "x.vqz")
    assert res.returncode == 1 and "--stages must be 1..4" in res.stderr
