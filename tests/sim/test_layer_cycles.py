"""Cycles per layer in ``vqe run --json``: from the RTL's cycle counter where its phase output changes."""
import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.ints import ceil_div
from sim.run import run_program

from engine_cases import random_case


@pytest.mark.parametrize("backend", ["icarus"])   # the cocotb testbench tracks the phase
def test_layer_cycles_partition_the_run(backend):
    program, *_ = random_case(5, 4, weight_sram=True)
    n = 3
    x = random_vectors(np.random.default_rng(0), n, program.meta["input_features"])
    summary = run_program(program, x, None, backend, latency=6, stall=32)
    assert summary["bit_exact"]
    layers = summary["layers"]
    assert len(layers) == len(program.meta["layers"])
    lanes = program.meta["engine"]["lanes"]
    for layer, meta in zip(layers, program.meta["layers"]):
        assert layer["kind"] == "fc" and layer["mode"] == meta["mode"]
        assert layer["ideal_cycles"] == n * ceil_div(meta["in_features"] * meta["out_features"], lanes)
        assert 0 < layer["utilization"] <= 1
        assert layer["utilization"] == layer["ideal_cycles"] / layer["cycles"]
    # The layers take most of the run; the rest is the job header, the input loads and output stores.
    between = summary["cycles"] - sum(layer["cycles"] for layer in layers)
    assert 0 < between < summary["cycles"]


def test_golden_backend_has_no_layer_cycles():
    program, *_ = random_case(6, 2)
    x = random_vectors(np.random.default_rng(1), 2, program.meta["input_features"])
    layers = run_program(program, x, None, "golden")["layers"]
    assert [layer["cycles"] for layer in layers] == [None] * len(layers)
    assert all(layer["ideal_cycles"] > 0 and layer["utilization"] is None for layer in layers)
