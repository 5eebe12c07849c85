"""Convolution and max pooling on the RTL against the golden model: random windowed programs, bad windows."""
import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS, LayerKind
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_windowed_lowered
from model.program.writer import build_program
from sim.run import simulate

from engine_cases import assert_bit_exact


def windowed_case(seed: int, n_images: int = 2):
    """A random conv -> maxpool -> conv -> FC program (VQ or PVQ rows, some resident) and its DRAM image."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    lowered, n_in = random_windowed_lowered(rng, lanes, 16, pvq_k_max=int(rng.choice([0, 3])))
    program = build_program(lowered, codebook_depth=16, config_max_features=1024, pvq_k_max=3,
                            weight_sram_words=int(rng.integers(0, 400)))
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, n_in))
    return program, image, out_addr, out_words * n_images, rng


def run_rtl(program, image, out_addr, out_words, backend, rng, seed):
    try:
        golden = GoldenEngine(program.config).run(image)
        bound = 20 * sum(golden.counters.values()) + 10_000
    except EngineFault as fault:
        golden, bound = fault, 100_000
    rtl = simulate(program, image, backend, out_addr=out_addr, out_words=out_words, max_cycles=bound,
                   latency=int(rng.integers(3, 12)), stall=int(rng.choice([0, 64])), seed=seed, vcd=None)
    return golden, rtl


@pytest.mark.parametrize("seed", range(8))
def test_random_windowed_programs_amaranth(seed):
    """Outputs and every counter, with padding taps, overhanging pooling windows and random DRAM timing."""
    program, image, out_addr, out_words, rng = windowed_case(seed)
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert [l["kind"] for l in program.meta["layers"]] == ["conv", "maxpool", "conv", "fc"]


@pytest.mark.parametrize("backend", ["icarus", "verilator"])
def test_random_windowed_program_verilog(backend):
    program, image, out_addr, out_words, rng = windowed_case(4)
    golden, rtl = run_rtl(program, image, out_addr, out_words, backend, rng, 4)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def _with_window(program, image, layer: int, **fields):
    """``image`` with layer ``layer``'s window fields changed."""
    import dataclasses
    image = image.copy()
    at = int(image[2]) + layer * DESC_WORDS
    desc = Descriptor.decode(image[at:at + DESC_WORDS])
    desc.window = dataclasses.replace(desc.window, **fields)
    image[at:at + DESC_WORDS] = desc.encode()
    return image


@pytest.mark.parametrize("layer, fields, code", [
    (0, {"kernel_w": 0}, EngineError.BAD_SHAPE),
    (0, {"in_width": 200}, EngineError.BAD_CHAIN),      # taps * channels still match; the map no longer does
    (1, {"channel_groups": 7}, EngineError.BAD_SHAPE),
    (2, {"kernel_w": 255}, EngineError.BAD_SHAPE),           # taps * channels no longer in_features
    (1, {"out_width": 4000, "out_height": 40}, EngineError.BAD_SHAPE),
])
def test_bad_windows_stop_as_the_golden_model_does(layer, fields, code):
    program, image, out_addr, out_words, rng = windowed_case(1, n_images=1)
    bad = _with_window(program, image, layer, **fields)
    golden, rtl = run_rtl(program, bad, out_addr, out_words, "amaranth", rng, 1)
    assert isinstance(golden, EngineFault)
    assert rtl["done"] and rtl["error"] == golden.code
    assert golden.code == code


def test_windowed_kinds_on_an_fc_only_engine_are_bad_mode():
    program, image, *_ = windowed_case(2, n_images=1)
    import dataclasses
    cfg = dataclasses.replace(program.config, windows=False)
    with pytest.raises(EngineFault) as e:
        GoldenEngine(cfg).run(image)
    assert e.value.code == EngineError.BAD_MODE
    assert LayerKind.CONV == Descriptor.decode(image[int(image[2]):int(image[2]) + DESC_WORDS]).kind
