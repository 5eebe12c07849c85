"""The residual add (ADD) and the skip buffer (FLAG_SAVE) on the RTL against the golden model: random residual
programs under random DRAM timing, the add's own cases, the bad descriptors' statuses."""
from types import SimpleNamespace

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import LayerKind
from model.golden.engine import GoldenEngine
from model.program.file import Program
from model.program.synthetic import random_add, random_lowered, random_residual_lowered, random_windowed_lowered
from model.program.writer import build_program
from sim.simulate import simulate

from engine_cases import assert_bit_exact, edit_descriptor


def residual_case(seed: int, n_images: int = 2):
    """A random residual program: odd seeds fully connected (one or two blocks, any lanes, VQ, PVQ,
    compact and Huffman rows), even seeds a convolution with a "same" convolution block before pooling."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    if seed % 2:
        lowered = random_residual_lowered(rng, lanes, 40, 16, pvq_k_max=3, huffman_k_max=int(rng.choice([0, 8])))
        n_in = lowered.layers[0].in_features
    else:
        lowered, n_in = random_windowed_lowered(rng, lanes, 16, pvq_k_max=int(rng.choice([0, 3])), residual=True)
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
def test_random_residual_programs_amaranth(seed):
    """Outputs and every counter (the adds, the skip buffer's writes), with random DRAM stalls."""
    program, image, out_addr, out_words, rng = residual_case(seed)
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    assert program.config.residual and "add" in [l["kind"] for l in program.meta["layers"]]


@pytest.mark.parametrize("backend, seed", [("icarus", 3), ("verilator", 2), ("verilator", 5)])
def test_random_residual_program_verilog(backend, seed):
    program, image, out_addr, out_words, rng = residual_case(seed)
    golden, rtl = run_rtl(program, image, out_addr, out_words, backend, rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def test_random_residual_programs_draw_chained_blocks():
    """Blocks in sequence (an add that saves again) and single blocks both occur."""
    saving_adds = [any(l["kind"] == "add" and l.get("save") for l in residual_case(s)[0].meta["layers"])
                   for s in range(1, 16, 2)]
    assert any(saving_adds) and not all(saving_adds)


def add_case(seed: int, width: int, lanes: int = 4, n_images: int = 2, second: int | None = None, **activation):
    """FC (saved) -> FC -> ADD (``activation``) -> FC on ``lanes`` lanes, ``width`` values in the block; with
    ``second``, a second block (FC to ``second`` values, FC back, ADD) follows the first ADD, which saves."""
    rng = np.random.default_rng(seed)

    def fc(n_in, n_out):
        return random_lowered(rng, lanes, [n_in, n_out], 16).layers[0]

    first, inner = fc(9, width), fc(width, width)
    first.save = True
    add = random_add(rng, width, save=second is not None)
    add.relu, add.floor, add.act = (activation.get(k, d) for k, d in (("relu", False), ("floor", False), ("act", 0)))
    layers = [first, inner, add]
    if second is not None:
        layers += [fc(width, second), fc(second, width), random_add(rng, width)]
    lowered = SimpleNamespace(name="add", method="random", lanes=lanes, input_scale=1 / 127, output_scale=1.0,
                              layers=layers + [fc(width, 3)], info={})
    program = build_program(lowered, codebook_depth=16)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, 9))
    return program, image, out_addr, out_words * n_images, rng


@pytest.mark.parametrize("width, lanes, activation", [
    (5, 4, {"floor": True, "act": 7}),     # a part lane-word: its lanes past the vector stay zero under a floor
    (16, 4, {"relu": True, "act": -60}),   # leaky ReLU
    (1, 8, {}),                            # one value
    (13, 2, {"relu": True}),
])
def test_residual_add_is_bit_exact_on_the_rtl(width, lanes, activation):
    program, image, out_addr, out_words, rng = add_case(3, width, lanes, **activation)
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, 3)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    words = -(-width // lanes) if lanes >= 4 else -(-width // 4) * 4 // lanes
    add, first = golden.layer_counters[2], golden.layer_counters[0]
    assert (add["sram_reads"], add["sram_writes"], add["adds"]) == (4 * words, 2 * words, 2 * words * lanes)
    assert first["sram_writes"] == 2 * 2 * words   # two images, each output lane-word into the skip buffer too


def test_residual_add_golden_arithmetic():
    """The add is the requantized sum of the block's output and the saved vector, value by value."""
    from model.codecs.vectors import unpack_vectors
    from model.contract.fixedpoint import requantize
    from model.golden.windows import forward
    program, image, *_ = add_case(4, 6, relu=True)
    layers = program.meta["layers"]
    assert [l["kind"] for l in layers] == ["fc", "fc", "add", "fc"] and layers[0]["save"]
    cfg = program.config
    _, decoded = GoldenEngine(cfg).decode(image)
    x = unpack_vectors(image[int(image[3]):int(image[3]) + 2 * 4].reshape(2, -1), 9).astype(np.int64)
    saved = forward(decoded[0], x, cfg.lanes)
    block = forward(decoded[1], saved, cfg.lanes)
    d = decoded[2]
    want = requantize(block + saved, d.mult[0], d.shift[0], True, d.act[0])
    got = forward(d, block, cfg.lanes, saved)
    np.testing.assert_array_equal(got, want)
    assert np.any(got != np.clip(block, 0, None)) and np.any(got != np.clip(saved, 0, None))


@pytest.mark.parametrize("layer, fields, code", [
    (0, {"save": False}, EngineError.BAD_CHAIN),                 # an add with nothing saved
    (2, {"out_features": 4}, EngineError.BAD_SHAPE),             # in_features and out_features differ
    (2, {"in_features": 4, "out_features": 4}, EngineError.BAD_CHAIN),   # not its input's size
    (2, {"compact": True}, EngineError.BAD_MODE),
    (2, {"relu": True, "floor": True}, EngineError.BAD_MODE),
])
def test_bad_adds_stop_as_the_golden_model_does(layer, fields, code):
    program, image, out_addr, out_words, rng = add_case(5, 6, n_images=1)
    bad = edit_descriptor(image, layer, **fields)
    golden, rtl = run_rtl(program, bad, out_addr, out_words, "amaranth", rng, 5)
    assert isinstance(golden, EngineFault) and golden.code == code, golden
    assert rtl["done"] and rtl["error"] == golden.code


def test_add_with_a_saved_vector_of_another_size_is_bad_chain():
    """Two blocks; the first add no longer saves, the 5-value layer after it does: the second add of 6
    values finds 5 in the skip buffer."""
    program, image, out_addr, out_words, rng = add_case(6, 6, n_images=1, second=5)
    assert [l["kind"] for l in program.meta["layers"]] == ["fc", "fc", "add", "fc", "fc", "add", "fc"]
    bad = edit_descriptor(edit_descriptor(image, 2, save=False), 3, save=True)
    golden, rtl = run_rtl(program, bad, out_addr, out_words, "amaranth", rng, 6)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_CHAIN
    assert "skip buffer holds 5" in str(golden)
    assert rtl["done"] and rtl["error"] == golden.code


def test_blocks_in_sequence_are_bit_exact_on_the_rtl():
    program, image, out_addr, out_words, rng = add_case(9, 7, lanes=2, second=11, floor=True, act=-3)
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, 9)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def test_add_on_an_engine_without_the_skip_buffer_is_bad_mode_on_the_rtl():
    program, image, out_addr, out_words, rng = add_case(7, 6, n_images=1)
    meta = dict(program.meta, engine={k: v for k, v in program.meta["engine"].items() if k != "residual"})
    bare = Program(meta, program.image)
    assert not bare.config.residual and not bare.config.supports_kind(LayerKind.ADD, 0)
    golden, rtl = run_rtl(bare, image, out_addr, out_words, "amaranth", rng, 7)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_MODE
    assert rtl["done"] and rtl["error"] == golden.code


def test_an_engine_without_the_skip_buffer_ignores_flag_save():
    """FLAG_SAVE alone (no add) on an engine without ``residual``: ignored by RTL and golden model alike, so
    the engine's logic is what it was before the skip buffer; with it, the saved writes are counted."""
    rng = np.random.default_rng(8)
    layers = random_lowered(rng, 4, [9, 6, 3], 16).layers
    plain = build_program(SimpleNamespace(name="plain", method="random", lanes=4, input_scale=1 / 127,
                                          output_scale=1.0, layers=layers, info={}), codebook_depth=16)
    assert not plain.config.residual
    image, out_addr, out_words = plain.dram_image(random_vectors(rng, 1, 9))
    saving = edit_descriptor(image, 0, save=True)
    golden, rtl = run_rtl(plain, saving, out_addr, out_words, "amaranth", rng, 8)
    assert_bit_exact(golden, rtl, plain.meta["output_features"])
    assert golden.counters == GoldenEngine(plain.config).run(image).counters
    residual = Program(dict(plain.meta, engine=dict(plain.meta["engine"], residual=True)), plain.image)
    golden, rtl = run_rtl(residual, saving, out_addr, out_words, "amaranth", rng, 8)
    assert_bit_exact(golden, rtl, plain.meta["output_features"])
    assert golden.layer_counters[0]["sram_writes"] == 2 * 2   # 6 values: two lane-words, each written twice
