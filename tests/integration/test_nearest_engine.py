"""The nearest-prototype unit (``NEAREST`` layers) on the RTL against the golden model: random programs under
random DRAM timing, ties to the lowest row, the unit's one beat per cycle, bad descriptors and labels, engines
without the unit."""
import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS, LayerKind
from model.golden.nearest import nearest_labels
from model.program.file import Program
from model.program.synthetic import random_lowered, random_nearest_layer, random_nearest_lowered
from model.program.writer import build_program

from engine_cases import assert_bit_exact, edit_descriptor, golden_and_rtl


def nearest_case(seed: int, n_images: int = 3):
    """A random network ending in a nearest-prototype layer, 1 to 8 lanes, resident or streamed."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    lowered, n_in = random_nearest_lowered(rng, lanes, 16)
    program = build_program(lowered, codebook_depth=16, config_max_features=1024,
                            weight_sram_words=int(rng.integers(0, 400)))
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, n_in))
    return program, image, out_addr, out_words * n_images, rng


@pytest.mark.parametrize("seed", range(5))
def test_random_nearest_programs_amaranth(seed):
    """Outputs (the labels) and every counter (squares as macs, differences as adds), random DRAM stalls."""
    program, image, out_addr, out_words, rng = nearest_case(seed)
    assert program.meta["layers"][-1]["kind"] == "nearest" and program.meta["output_features"] == 1
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def test_random_nearest_program_verilator():
    program, image, out_addr, out_words, rng = nearest_case(11)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "verilator", rng, 11, stall=64)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def tie_case(lanes: int = 4):
    """Prototype rows 1, 3 and 4 all equal (labels 11, 33, 44), row 0 far, row 2 the input's mirror: the input
    is nearest to the three equal rows.  One image, the input itself a codeword sequence."""
    rng = np.random.default_rng(0)
    layer = random_nearest_layer(rng, lanes, 8, 5, 16)
    layer.codebook = np.array([[127] * lanes, [3, -5, 7, 1][:lanes], [-3, 5, -7, -1][:lanes], [1, 1, 1, 1][:lanes]])
    layer.indices = np.array([[0, 0], [1, 3], [2, 2], [1, 3], [1, 3]])
    layer.bias = np.array([7, 11, 22, 33, 44])
    lowered = random_lowered(rng, lanes, [8, 8], 16)
    lowered.layers = [layer]
    program = build_program(lowered, codebook_depth=16, config_max_features=64)
    x = np.array([[2, -4, 6, 1, 1, 0, 1, 1]])   # distance 3 to rows 1, 3, 4
    image, out_addr, out_words = program.dram_image(x)
    return program, image, out_addr, out_words, rng, x


def test_ties_go_to_the_lowest_row():
    program, image, out_addr, out_words, rng, x = tie_case()
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "amaranth", rng, 1, stall=0)
    assert golden.outputs.tolist() == [[11]]
    assert_bit_exact(golden, rtl, 1)
    p = program.config.rom
    assert nearest_labels(x, np.array([p[0] + p[0], p[1] + p[3], p[2] + p[2], p[1] + p[3], p[1] + p[3]]),
                          [7, 11, 22, 33, 44]).tolist() == [11]


def test_unit_takes_one_lanes_wide_step_per_cycle():
    """100 prototypes of 128 values, 4 lanes, one image: the job's cycles (header, input load, descriptor,
    stream start and output store included) within 10 % of the layer's beats, ``in * out / lanes``."""
    rng = np.random.default_rng(4)
    layer = random_nearest_layer(rng, 4, 128, 100, 256)
    lowered = random_lowered(rng, 4, [128, 100], 256)
    lowered.layers = [layer]
    program = build_program(lowered, codebook_depth=256, config_max_features=1024)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 1, 128))
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "verilator", rng, 1, stall=0)
    assert_bit_exact(golden, rtl, 1)
    beats = 100 * 128 // 4
    assert golden.counters["macs"] == golden.counters["adds"] == 4 * beats
    assert beats / rtl["counters"]["cycles"] >= 0.9, rtl["counters"]["cycles"]


@pytest.mark.parametrize("fields, code", [
    ({"relu": True}, EngineError.BAD_MODE),          # a label has no activation
    ({"floor": True}, EngineError.BAD_MODE),
    ({"mode": 2}, EngineError.BAD_MODE),             # prototypes are VQ rows only (PVQ)
    ({"in_features": 6}, EngineError.BAD_SHAPE),     # not whole lane-words
    ({"in_features": 12}, EngineError.BAD_CHAIN),    # not the input's size
    ({"codebook_size": 0}, EngineError.BAD_CODEBOOK),
    ({"codebook_size": 2}, EngineError.BAD_INDEX),   # index 3 at or above the size
    ({"row_words": 5}, EngineError.BAD_STREAM),
    ({"out_features": 3}, None),                     # fewer prototypes: rows 0..2 (label 11)
])
def test_bad_nearest_descriptors_stop_as_the_golden_model_does(fields, code):
    program, image, out_addr, out_words, rng, _ = tie_case()
    bad = edit_descriptor(image, 0, **fields)
    golden, rtl = golden_and_rtl(program, bad, out_addr, out_words, "amaranth", rng, 5, stall=0)
    if code is None:
        assert golden.outputs.tolist() == [[11]]
        assert_bit_exact(golden, rtl, 1)
        return
    assert isinstance(golden, EngineFault) and golden.code == code, golden
    assert rtl["done"] and rtl["error"] == golden.code


@pytest.mark.parametrize("label", [-1, 128])
def test_label_outside_int8_range_is_bad_index(label):
    program, image, out_addr, out_words, rng, _ = tie_case()
    d = Descriptor.decode(image[int(image[2]):int(image[2]) + DESC_WORDS])
    bad = image.copy()
    bad[d.stream_addr + 4 * d.row_words] = label & 0xFFFFFFFF   # the last row's label word
    golden, rtl = golden_and_rtl(program, bad, out_addr, out_words, "amaranth", rng, 5, stall=0)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_INDEX
    assert rtl["done"] and rtl["error"] == golden.code


def test_layer_on_an_engine_without_the_unit_is_bad_mode():
    program, image, out_addr, out_words, rng, _ = tie_case()
    meta = dict(program.meta, engine={k: v for k, v in program.meta["engine"].items() if k != "nearest_prototype"})
    bare = Program(meta, program.image)
    assert not bare.config.supports_kind(LayerKind.NEAREST, 0)
    golden, rtl = golden_and_rtl(bare, image, out_addr, out_words, "amaranth", rng, 5, stall=0)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_MODE
    assert rtl["done"] and rtl["error"] == golden.code


def test_verify_family_draws_nearest_programs_on_one_engine():
    from sim.backends.top import placeholder_rom
    from sim.verify.families import BY_NAME
    family = BY_NAME["vq-pvq-nearest"]
    programs = [family.program(seed) for seed in range(8)]
    kinds = [[layer["kind"] for layer in p.meta["layers"]] for p in programs]
    assert any(k[-1] == "nearest" for k in kinds) and any("nearest" not in k for k in kinds)
    assert len({placeholder_rom(p.config) for p in programs}) == 1
    assert all(p.config.nearest_prototype for p in programs)
