"""Convolution, max and average pooling on the RTL against the golden model: random windowed programs,
bad windows, average pooling's own cases."""
import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS, LayerKind
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_windowed_lowered
from model.program.writer import build_program
from sim.simulate import simulate

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
    kinds = [l["kind"] for l in program.meta["layers"]]
    assert kinds[0] == "conv" and kinds[1] in ("maxpool", "avgpool") and kinds[2:] == ["conv", "fc"]


def test_random_windowed_programs_draw_both_poolings():
    assert {program_kinds(seed)[1] for seed in range(8)} == {"maxpool", "avgpool"}


def program_kinds(seed):
    return [l["kind"] for l in windowed_case(seed)[0].meta["layers"]]


@pytest.mark.parametrize("backend, seed", [("icarus", 4), ("verilator", 4), ("icarus", 0)])
def test_random_windowed_program_verilog(backend, seed):
    program, image, out_addr, out_words, rng = windowed_case(seed)
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
    cfg = dataclasses.replace(program.config, windows=False, avgpool=False)
    with pytest.raises(EngineFault) as e:
        GoldenEngine(cfg).run(image)
    assert e.value.code == EngineError.BAD_MODE
    assert LayerKind.CONV == Descriptor.decode(image[int(image[2]):int(image[2]) + DESC_WORDS]).kind


def avgpool_case(seed: int, kernel, stride, pad, n_images: int = 2, **activation):
    """conv -> average pooling of ``kernel`` / ``stride`` / ``pad`` ((h, w) each) -> FC, on 4 lanes."""
    from types import SimpleNamespace
    from model.contract.window import Window
    from model.program.synthetic import random_lowered
    rng = np.random.default_rng(seed)
    lanes, h, w = 4, 5, 6
    conv = random_lowered(rng, lanes, [4, 7], 16).layers[0]
    conv.kind, conv.window, conv.relu, conv.floor = "conv", Window(1, w, h, w, h, 1, 1), True, False
    (kh, kw), (sy, sx), (pt, pl) = kernel, stride, pad
    oh, ow = (h + 2 * pt - kh) // sy + 1, (w + 2 * pl - kw) // sx + 1
    win = Window(2, w, h, ow, oh, kw, kh, sx, sy, pl, pt)
    pool = SimpleNamespace(kind="avgpool", window=win, in_features=kh * kw * 8, out_features=8,
                           mult=int(rng.integers(1 << 14, 1 << 16)), shift=15 + (kh * kw - 1).bit_length(),
                           relu=activation.get("relu", False), floor=activation.get("floor", False),
                           act=activation.get("act", 0))
    fc = random_lowered(rng, lanes, [oh * ow * 8, 5], 16).layers[0]
    lowered = SimpleNamespace(name="avg", method="random", lanes=lanes, input_scale=1 / 127, output_scale=1.0,
                              layers=[conv, pool, fc], info={})
    program = build_program(lowered, codebook_depth=16, config_max_features=1024)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, h * w * 4))
    return program, image, out_addr, out_words * n_images, rng


@pytest.mark.parametrize("kernel, stride, pad, activation", [
    ((1, 1), (1, 1), (0, 0), {}),                            # a row ends every cycle
    ((2, 2), (2, 2), (1, 1), {"relu": True, "act": -77}),    # padding taps, leaky ReLU
    ((5, 6), (1, 1), (0, 0), {"floor": True, "act": 3}),     # global pooling, a floor
    ((3, 2), (2, 3), (1, 0), {"relu": True}),
])
def test_average_pooling_is_bit_exact_on_the_rtl(kernel, stride, pad, activation):
    program, image, out_addr, out_words, rng = avgpool_case(5, kernel, stride, pad, **activation)
    assert program.config.avgpool
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, 5)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert golden.layer_counters[1]["adds"] > 0


@pytest.mark.parametrize("fields, code", [
    ({"kernel_h": 0}, EngineError.BAD_SHAPE),
    ({"channel_groups": 1}, EngineError.BAD_SHAPE),     # taps * channels no longer in_features
    ({"in_height": 6, "kernel_h": 3, "kernel_w": 2}, EngineError.BAD_CHAIN),
    ({"out_width": 400, "out_height": 40}, EngineError.BAD_SHAPE),
])
def test_bad_average_pooling_windows_stop_as_the_golden_model_does(fields, code):
    program, image, out_addr, out_words, rng = avgpool_case(6, (2, 3), (2, 3), (0, 0), n_images=1)
    bad = _with_window(program, image, 1, **fields)
    golden, rtl = run_rtl(program, bad, out_addr, out_words, "amaranth", rng, 6)
    assert isinstance(golden, EngineFault) and golden.code == code
    assert rtl["done"] and rtl["error"] == golden.code


def test_average_pooling_with_relu_and_floor_is_bad_mode_on_the_rtl():
    program, image, out_addr, out_words, rng = avgpool_case(7, (2, 2), (2, 2), (0, 0), n_images=1, relu=True)
    image = image.copy()
    at = int(image[2]) + DESC_WORDS
    desc = Descriptor.decode(image[at:at + DESC_WORDS])
    desc.floor = True
    image[at:at + DESC_WORDS] = desc.encode()
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, 7)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_MODE
    assert rtl["done"] and rtl["error"] == golden.code


def test_average_pooling_on_an_engine_without_its_unit_is_bad_mode_on_the_rtl():
    import dataclasses
    from model.program.file import Program
    program, image, out_addr, out_words, rng = avgpool_case(8, (2, 2), (2, 2), (0, 0), n_images=1)
    meta = dict(program.meta, engine=dict(program.meta["engine"], avgpool=False))
    bare = Program(meta, program.image)
    assert not bare.config.avgpool and dataclasses.replace(program.config, avgpool=False) == bare.config
    golden, rtl = run_rtl(bare, image, out_addr, out_words, "amaranth", rng, 8)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_MODE
    assert rtl["done"] and rtl["error"] == golden.code
