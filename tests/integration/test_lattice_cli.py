"""``vqe compress --method lattice`` on LeNet-300-100 end to end: every layer coded against the E8P lattice
codebook, lowered, scored on the golden model, run bit-exact on Verilator; the command line running the saved
program and refusing other lane counts."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from model.codecs.e8p import e8p_decode
from model.compress.lattice import code_e8p
from model.compress.pipeline import compress
from model.nets.inputs import load_inputs
from sim.run import run_program

#: Calibration images (the method's default is 2000).
CALIBRATION = 300
ORIGINAL_CACHE = os.environ.get("VQE_CACHE")


@pytest.fixture(scope="module")
def program():
    return compress("lenet300", "lattice", lanes=8, calibration=CALIBRATION, progress=False)


def test_every_layer_is_e8p_at_two_bits_per_weight(program):
    info, layers = program.meta["info"], program.meta["layers"]
    assert [layer["mode"] for layer in layers] == ["e8p"] * 3
    assert program.config.lattice and program.meta["rom"] == [] and program.config.lanes == 8
    assert 2 < program.meta["compression"]["bits_per_weight"] < 2.2       # 16 bits per 8 weights, row headers
    assert info["int8_accuracy"] > 0.85 and info["float_accuracy"] - info["int8_accuracy"] < 0.03


def test_bit_exact_on_verilator_with_full_utilization(program):
    x, labels, _ = load_inputs(program.meta, 3, 0, 1)
    r = run_program(program, x, labels, "verilator")
    assert r["bit_exact"] is True and r["mismatches"] == 0
    assert r["utilization"] >= 0.9


def test_coding_is_nearest_per_row_scaled_subvector():
    """Each sub-vector's codeword is the nearest to the row divided by its scale (brute force on a few rows);
    all-zero (padding) columns are left out of the search and of the reconstruction."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 21)) * 0.1
    w[:, 3] = 0.0
    coding, rec = code_e8p(w)
    assert np.all(rec[:, 3] == 0) and coding.indices.shape == (4, 3)
    cw = e8p_decode(np.arange(1 << 16)).astype(float)
    for r in range(4):
        y = np.zeros(24)
        y[:21] = w[r] / coding.weight_scale[r]
        mask = np.ones(24)
        mask[3], mask[21:] = 0, 0
        for j in range(3):
            d = (((y[8 * j:8 * j + 8] - cw) ** 2) * mask[8 * j:8 * j + 8]).sum(1)
            assert d[coding.indices[r, j]] == pytest.approx(d.min())


def test_the_command_line_runs_a_saved_program(program, cli, tmp_path, monkeypatch):
    path = tmp_path / "lattice.vqz"
    program.save(path)
    if ORIGINAL_CACHE is None:
        monkeypatch.delenv("VQE_CACHE", raising=False)
    else:
        monkeypatch.setenv("VQE_CACHE", ORIGINAL_CACHE)
    res = cli("run", path, "--backend", "verilator", "--images", "2", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["bit_exact"] is True and out["method"] == "lattice"
    assert {layer["mode"] for layer in out["layers"]} == {"e8p"}


def test_command_line_refuses_other_lanes(cli, tmp_path):
    res = cli("compress", "--network", "lenet300", "--method", "lattice", "--lanes", "4", "-o", tmp_path / "x.vqz")
    assert res.returncode == 1 and "--lanes 8" in res.stderr
