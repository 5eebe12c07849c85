"""The whole engine against the golden model: random programs, timing, and bad input."""
import numpy as np
import pytest

from model.golden import EngineFault
from model.layout import EngineError

from engine_cases import assert_bit_exact, corrupt, random_case, run_both

LANES = (1, 2, 4, 8)


@pytest.mark.parametrize("lanes", LANES)
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


@pytest.mark.parametrize("what", [e.name for e in EngineError if e != EngineError.NONE])
@pytest.mark.parametrize("lanes", (2, 4))
def test_bad_images_stop_with_error(what, lanes):
    """Every defect: the golden model names it, the RTL flags the same code and stops."""
    rng = np.random.default_rng(hash((what, lanes)) & 0xFFFF)
    for attempt in range(20):
        program, image, out_addr, out_words = random_case(int(rng.integers(1 << 30)), lanes, n_images=1)
        if what == "BAD_INDEX" and program.config.codebook_depth < 4:
            continue
        bad = corrupt(image, program, what, rng)
        golden, rtl = run_both(program, bad, out_addr, out_words, "amaranth", latency=5, stall=32)
        assert isinstance(golden, EngineFault), "golden model accepted a corrupted image"
        assert golden.code == EngineError[what]
        assert rtl["done"], "engine hung on a bad image"
        assert rtl["error"] == golden.code
        return
    pytest.fail("no suitable random case")
