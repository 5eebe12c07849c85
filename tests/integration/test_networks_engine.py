"""Whole convolutional networks, lowered from their torch graphs, compressed and run bit-exact on the RTL.

LeNet-5 runs with no host front end; R-Net brings PReLU and two output heads (its box regression
and its softmaxed face score).  Both compress quickly here (plain k-means, no fine-tuning);
the README's commands and the closing notes have the fine-tuned figures.
"""
from __future__ import annotations

import pytest

from model.compress.pipeline import compress
from model.nets.inputs import load_inputs
from model.nets.zoo import missing_packages
from sim.run import run_program

#: Utilization every convolution layer reaches at 4 lanes (the issue's floor).
CONV_UTILIZATION = 0.85


def _rtl_run(program, n: int):
    x, labels, _ = load_inputs(program.meta, n, 0, 1)
    return run_program(program, x, labels, "verilator")


@pytest.fixture(scope="module")
def lenet5():
    return compress("lenet5", "kmeans", finetune_epochs=0, calibration=500, progress=False)


def test_lenet5_is_whole_on_the_engine(lenet5):
    meta = lenet5.meta
    assert [layer["kind"] for layer in meta["layers"]] == ["conv", "maxpool", "conv", "maxpool", "fc", "fc", "fc"]
    assert "frontend" not in meta and len(meta["input_index"]) == meta["input_features"] == 28 * 28 * 4
    info = meta["info"]
    assert info["int8_accuracy"] > info["float_accuracy"] - 0.015     # plain k-means, 10k test images


def test_lenet5_bit_exact_on_verilator(lenet5):
    s = _rtl_run(lenet5, 1)
    assert s["bit_exact"] is True, s["counter_mismatches"]
    conv = [layer for layer in s["layers"] if layer["kind"] == "conv"]
    assert len(conv) == 2 and all(layer["utilization"] >= CONV_UTILIZATION for layer in conv), conv
    assert s["ideal_cycles"] <= s["cycles"]


@pytest.mark.skipif(bool(missing_packages("rnet")), reason="R-Net needs facenet-pytorch")
def test_rnet_heads_and_prelu_bit_exact_on_verilator():
    program = compress("rnet", "kmeans", finetune_epochs=0, calibration=200, progress=False)
    meta = program.meta
    assert meta["dataset"] == "zoo:rnet"
    assert [o["activation"] for o in meta["outputs"]] == [None, "softmax"] and len(meta["output_scales"]) == 2
    assert {layer["activation"] for layer in meta["layers"] if layer["kind"] != "maxpool"} == {"leaky", None}
    assert 0 < meta["info"]["int8_quality"] <= 1
    s = _rtl_run(program, 2)
    assert s["bit_exact"] is True, s["counter_mismatches"]
    assert s["accuracy"] is None        # a fidelity metric, not labels
    assert all(layer["utilization"] >= CONV_UTILIZATION for layer in s["layers"] if layer["kind"] == "conv")


def test_lenet5_on_four_pes_bit_exact_on_verilator(lenet5):
    """The same program laid out for 4 processing elements: bit-exact, in fewer cycles than one PE's ideal."""
    from model.program.writer import lay_out_for_pes
    s = _rtl_run(lay_out_for_pes(lenet5, 4), 1)
    assert s["bit_exact"] is True, s["counter_mismatches"]
    assert s["pes"] == 4 and s["cycles"] < 4 * s["ideal_cycles"]   # ideal_cycles is at lanes x 4 PEs
