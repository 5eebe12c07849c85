"""Resident layers: the weight SRAM filled in image 0 and read after, against the golden model."""
import numpy as np
import pytest

from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS
from model.golden.engine import GoldenEngine
from model.program.writer import place_streams

from engine_cases import assert_bit_exact, random_case, run_both


def test_first_fit_placement_skips_what_does_not_fit():
    assert place_streams([10, 30, 5, 20], 40) == [0, 10, None, None]
    assert place_streams([10, 30, 5, 20], 36) == [0, None, 10, 15]
    assert place_streams([3, 4], 0) == [None, None]


@pytest.mark.parametrize("kind", ["vq", "pvq", "huffman"])
@pytest.mark.parametrize("seed", range(3))
def test_random_resident_programs_amaranth(kind, seed):
    """Outputs and every counter, weight-SRAM reads and writes included, with random DRAM timing."""
    rng = np.random.default_rng(seed)
    modes = {"pvq": {"pvq_k_max": 6}, "huffman": {"huffman_k_max": 8}}.get(kind, {})
    for attempt in range(20):
        program, image, out_addr, out_words = random_case(900 + 37 * seed + attempt, 4, n_images=3,
                                                          weight_sram=True, **modes)
        placements = [l["placement"]["resident"] for l in program.meta["layers"]]
        if any(placements):
            break
    assert any(placements), "no random case placed a layer in the weight SRAM"
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth",
                           latency=int(rng.integers(3, 20)), stall=int(rng.choice([0, 64])), seed=seed + 1)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    resident_words = sum(l["placement"]["words"] for l in program.meta["layers"] if l["placement"]["resident"])
    assert golden.counters["weight_sram_writes"] == resident_words
    assert golden.counters["weight_sram_reads"] == 2 * resident_words


def test_resident_program_icarus():
    program, image, out_addr, out_words = random_case(77, 4, n_images=3, weight_sram=True, huffman_k_max=4)
    golden, rtl = run_both(program, image, out_addr, out_words, "icarus", latency=9, stall=64, seed=2)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def _descriptor(image, layer):
    addr = int(image[2]) + layer * DESC_WORDS
    return addr, Descriptor.decode(image[addr:addr + DESC_WORDS])


@pytest.mark.parametrize("kind", ["vq", "huffman"])
@pytest.mark.parametrize("defect", ["past_capacity", "no_weight_sram"])
def test_bad_placement_stops_with_bad_stream(kind, defect):
    """A resident stream that does not fit (or an engine with no weight SRAM) is BAD_STREAM in both."""
    modes = {"huffman_k_max": 8} if kind == "huffman" else {}
    program, image, out_addr, out_words = random_case(31, 4, n_images=2, weight_sram=defect == "past_capacity",
                                                      **modes)
    layer = len(program.meta["layers"]) - 1
    addr, d = _descriptor(image, layer)
    d.resident = True
    # One word past the end (or at 0 where the whole SRAM is too small).
    d.wsram_addr = max(0, program.config.weight_sram_words - program.meta["layers"][layer]["placement"]["words"] + 1)
    image = image.copy()
    image[addr:addr + DESC_WORDS] = d.encode()
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth", latency=4, stall=16)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_STREAM
    assert rtl["done"] and rtl["error"] == EngineError.BAD_STREAM


def test_overlapping_placements_follow_the_engine():
    """Two layers placed over each other (refused in program files): the golden model still matches the RTL."""
    for seed in range(40):
        program, image, out_addr, out_words = random_case(1000 + seed, 4, n_images=3)
        sizes = [l["placement"]["words"] for l in program.meta["layers"]]
        if len(sizes) >= 2:
            break
    cfg_words = sum(sizes)
    program.meta["engine"]["weight_sram_words"] = cfg_words
    image = image.copy()
    for layer in range(2):   # both at word 0: the second overwrites the first one's start
        addr, d = _descriptor(image, layer)
        d.resident, d.wsram_addr = True, 0
        image[addr:addr + DESC_WORDS] = d.encode()
    golden, rtl = run_both(program, image, out_addr, out_words, "amaranth", latency=5, stall=0)
    # The first layer's words were overwritten: images after the first differ from image 0's reading.
    engine = GoldenEngine(program.config)
    first = engine.decode(image)[1]
    try:
        assert not np.array_equal(engine._from_weight_sram(image, first)[0].weights(), first[0].weights())
    except EngineFault:
        pass   # or the overwritten stream is not even valid any more
    if isinstance(golden, EngineFault):
        assert rtl["done"] and rtl["error"] == golden.code
    else:
        assert_bit_exact(golden, rtl, program.meta["output_features"])
