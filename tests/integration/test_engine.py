"""The whole engine against the golden model: random programs, timing, and bad input."""
import numpy as np
import pytest

from model.contract.config import LANES
from model.contract.errors import EngineError, EngineFault

from engine_cases import assert_bit_exact, corrupt, random_case, run_both


@pytest.mark.parametrize("lanes", LANES)   # every lane count the engine is built for
@pytest.mark.parametrize("seed", range(3))
def test_random_programs_amaranth(lanes, seed):
    rng = np.random.default_rng(seed)
    latency = int(rng.integers(3, 20))
    stall = int(rng.choice([0, 40, 128]))
    program, image, out_addr, out_words = random_case(100 * lanes + seed, lanes)
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth",
                           latency=latency, stall=stall, seed=seed + 1)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("lanes", (1, 4, 8))
def test_random_programs_icarus(lanes):
    program, image, out_addr, out_words = random_case(7 + lanes, lanes, n_images=3)
    golden, rtl = run_both(program, image, out_addr, out_words, "icarus", latency=13, stall=64, seed=5)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("what", [e.name for e in EngineError if EngineError.NONE < e <= EngineError.BAD_INDEX])
@pytest.mark.parametrize("lanes,pvq_k_max", [(2, 0), (4, 0), (4, 5)])
def test_bad_images_stop_with_error(what, lanes, pvq_k_max):
    """Every defect of dense layers: the golden model names it, the RTL flags the same code and stops.

    The sparse layers' codes (and these codes in sparse layers) are tested in test_sparse.py."""
    rng = np.random.default_rng(sum(map(ord, what)) + 100 * lanes + pvq_k_max)
    for attempt in range(40):
        program, image, out_addr, out_words = random_case(int(rng.integers(1 << 30)), lanes, n_images=1,
                                                          pvq_k_max=pvq_k_max)
        if what == "BAD_INDEX" and program.config.codebook_depth < 4:
            continue
        try:
            bad = corrupt(image, program, what, rng)
        except ValueError:   # this random case has no room for the defect
            continue
        golden, rtl = run_both(program, bad, out_addr, out_words, "amaranth", latency=5, stall=32)
        assert isinstance(golden, EngineFault), "golden model accepted a corrupted image"
        assert golden.code == EngineError[what]
        assert rtl["done"], "engine hung on a bad image"
        assert rtl["error"] == golden.code
        return
    pytest.fail("no suitable random case")


@pytest.mark.parametrize("lanes", (2, 4, 8))
@pytest.mark.parametrize("seed", range(2))
def test_random_pvq_programs_amaranth(lanes, seed):
    """Mixed VQ and PVQ layers: outputs and counters (adds, not MACs, for PVQ) match the golden model."""
    rng = np.random.default_rng(seed)
    program, image, out_addr, out_words = random_case(500 + 10 * lanes + seed, lanes, pvq_k_max=6)
    assert any(l["mode"] == "pvq" for l in program.meta["layers"])
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth",
                           latency=int(rng.integers(3, 16)), stall=int(rng.choice([0, 64])), seed=seed + 3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.counters["adds"] > 0


def test_random_pvq_program_icarus():
    """PVQ layers in the generated Verilog under Icarus (the PVQ unit idles from reset)."""
    program, image, out_addr, out_words = random_case(541, 4, pvq_k_max=6)
    golden, rtl = run_both(program, image, out_addr, out_words, "icarus", latency=10, stall=64, seed=3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def test_verilog_has_time_zero_events():
    """Every combinational block gets an event after time zero (see sim.backends.top.settle_at_time_zero)."""
    from sim.backends.top import engine_verilog
    program, *_ = random_case(541, 4, pvq_k_max=6)
    text = engine_verilog(program.config)
    import re
    declared = len(re.findall(r"^\s*reg \\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+\s+= 0;$", text, re.M))
    assert text.count("initial #0") == declared > 0
    assert "initial #0" not in engine_verilog(program.config, simulation=False)
