"""``vqe compress --method lr2vq`` on the engine: LR²VQ's codewords (``mu + B c``, rank ``r``) expanded into the
ROM and run as VQ layers, scored on the golden model and bit-exact on Verilator."""
from __future__ import annotations

import numpy as np
import pytest

from model.compress.baselines import code_lr2vq
from model.compress.lr2vq import code_lowrank
from model.compress.pipeline import CompressError, compress
from model.contract.fixedpoint import ACT_MAX
from model.nets.inputs import load_inputs
from sim.run import run_program


def test_the_rom_codewords_are_the_low_rank_ones_at_int8():
    w = np.random.default_rng(0).normal(size=(48, 64)).astype(np.float32)
    _, _, params = code_lr2vq(w, 4, 32, 2, seed=1)
    cb = np.asarray(params["codebook"])
    # mu + B c: the codewords minus their affine part span r = 2 dimensions.
    centred = cb - cb.mean(axis=0)
    assert np.linalg.matrix_rank(centred, tol=1e-6 * np.abs(cb).max()) <= 2
    coding, rec = code_lowrank(w, 4, 32, 2, seed=1)
    scale = coding.weight_scale[0]
    assert np.abs(coding.codebook).max() == ACT_MAX
    assert np.allclose(coding.codebook * scale, cb, atol=scale / 2 + 1e-9)
    assert coding.mode == "vq" and coding.section_size == len(cb)
    assert np.allclose(rec.reshape(48, 16, 4), (coding.codebook[coding.indices] * scale), atol=1e-6)


@pytest.fixture(scope="module")
def program():
    return compress("lenet300", "lr2vq", calibration=300, progress=False, codebook_size=64, rank=2)


def test_lenet300_lr2vq_is_a_vq_program_and_bit_exact_on_verilator(program):
    info = program.meta["info"]
    assert [layer["mode"] for layer in program.meta["layers"]] == ["vq"] * 3
    assert program.config.codebook_depth == 64 and info["rank"] == 2
    assert info["int8_accuracy"] > 0.6
    x, labels, _ = load_inputs(program.meta, 3, 0, 1)
    r = run_program(program, x, labels, "verilator", stall=40)
    assert r["bit_exact"] is True and r["utilization"] >= 0.9


def test_a_rank_beyond_the_lanes_is_refused():
    with pytest.raises(CompressError, match="--rank must be 1..--lanes"):
        compress("lenet300", "lr2vq", rank=5)
