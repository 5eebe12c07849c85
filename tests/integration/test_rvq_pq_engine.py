"""Residual VQ (RVQ) and product VQ (PQ) layers on the RTL against the golden model: random programs under random
DRAM timing, an RVQ layer's utilization, bad descriptors and indices, engines without the units."""
import numpy as np
import pytest

from model.codecs.layers.rvq import pack_stages
from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.ints import ceil_div
from model.contract.layout import DESC_WORDS, ROW_HEADER_WORDS, LayerMode
from model.program.file import Program
from model.program.synthetic import random_lowered, random_pq_layer, random_rvq_layer, random_windowed_lowered
from model.program.writer import build_program

from engine_cases import assert_bit_exact, edit_descriptor, golden_and_rtl


def rvq_pq_case(seed: int, n_images: int = 2):
    """A random program of RVQ, PQ and VQ layers (odd seeds fully connected on 1 to 8 lanes with PVQ too,
    even seeds a convolution / pooling / FC network), resident or streamed."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice([1, 2, 4, 8]))
    stages = int(rng.integers(2, 5))
    for _ in range(20):   # at least one RVQ or PQ layer
        if seed % 2:
            shapes = [int(rng.integers(1, 40)) for _ in range(int(rng.integers(2, 5)))]
            lowered = random_lowered(rng, lanes, shapes, 16, pvq_k_max=3, rvq_stages_max=stages, pq=True)
            n_in = shapes[0]
        else:
            lowered, n_in = random_windowed_lowered(rng, lanes, 16, rvq_stages_max=stages, pq=True)
        if any(getattr(layer, "mode", "vq") in ("rvq", "pq") for layer in lowered.layers):
            break
    program = build_program(lowered, codebook_depth=16, config_max_features=1024, pvq_k_max=3,
                            weight_sram_words=int(rng.integers(0, 400)))
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, n_in))
    return program, image, out_addr, out_words * n_images, rng


def modes(program) -> set:
    return {layer["mode"] for layer in program.meta["layers"]}


@pytest.mark.parametrize("seed", range(6))
def test_random_rvq_pq_programs_amaranth(seed):
    """Outputs and every counter (each stage's ROM read, the stages' adds), with random DRAM stalls."""
    program, image, out_addr, out_words, rng = rvq_pq_case(seed)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("backend, seed", [("icarus", 7), ("verilator", 9), ("verilator", 10)])
def test_random_rvq_pq_program_verilog(backend, seed):
    program, image, out_addr, out_words, rng = rvq_pq_case(seed)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, backend, rng, seed, stall=64)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


def test_random_cases_draw_both_modes_and_several_stages():
    programs = [rvq_pq_case(s)[0] for s in range(11)]
    assert all({"rvq", "pq"} & modes(p) for p in programs)
    assert {"rvq", "pq", "vq"} <= set().union(*map(modes, programs))
    assert len({p.config.rvq_stages_max for p in programs if "rvq" in modes(p)}) >= 2
    assert any(p.config.windows and {"rvq", "pq"} & modes(p) for p in programs)


def big_layer_case(mode: str, stages: int = 4, lanes: int = 4, n_in: int = 784, n_out: int = 48, depth: int = 256):
    """One LeNet-300-100-sized FC layer (784 inputs) of ``mode``, full-size 8-bit indices (RVQ: 4 stages, a
    32-bit entry per sub-vector), one image."""
    rng = np.random.default_rng(3)
    if mode == "rvq":
        layer = random_rvq_layer(rng, lanes, n_in, n_out, depth * stages, stages)
        while layer.indices.shape[-1] != stages:
            layer = random_rvq_layer(rng, lanes, n_in, n_out, depth * stages, stages)
        layer.section_size = depth
        layer.codebook = rng.integers(-128, 128, size=(stages * depth, lanes))
        layer.indices = rng.integers(0, depth, size=layer.indices.shape)
    else:
        layer = random_pq_layer(rng, lanes, n_in, n_out, depth)
    lowered = random_lowered(rng, lanes, [n_in, n_out], depth)
    lowered.layers = [layer]
    program = build_program(lowered, codebook_depth=depth, config_max_features=1024)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 1, n_in))
    return program, image, out_addr, out_words, rng


@pytest.mark.parametrize("mode", ["rvq", "pq"])
def test_lenet_sized_layer_keeps_one_entry_per_cycle(mode):
    """An RVQ layer of four 8-bit stages (a whole DRAM word per entry) and a PQ layer: utilization, MACs / lanes
    over the layer's cycles (descriptor and stream start included), at least 0.9."""
    program, image, out_addr, out_words, rng = big_layer_case(mode)
    golden, rtl = golden_and_rtl(program, image, out_addr, out_words, "verilator", rng, 1, stall=0)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    d = program.meta["layers"][0]
    ideal = d["out_features"] * ceil_div(d["in_features"], program.config.lanes)
    if mode == "rvq":
        assert d["stages"] == 4 and golden.counters["rom_reads"] == 4 * ideal
        assert golden.counters["adds"] == 3 * program.config.lanes * ideal
    utilization = ideal / rtl["counters"]["cycles"]
    assert utilization >= 0.9, utilization


def small_case(mode: str, seed: int = 5):
    """FC (``mode``) -> FC (VQ), 4 lanes, depth 16, 3 RVQ stages of 5 or PQ blocks of 2 sub-vectors, one image."""
    rng = np.random.default_rng(seed)
    first = (random_rvq_layer(rng, 4, 21, 6, 15, 1) if mode == "rvq" else random_pq_layer(rng, 4, 21, 6, 16))
    if mode == "rvq":
        first.section_size, first.codebook = 5, rng.integers(-128, 128, size=(15, 4))
        first.indices = rng.integers(0, 5, size=(6, 6, 3))
    else:
        first.section_size, first.block_subvectors = 4, 2
        first.codebook, first.indices = rng.integers(-128, 128, size=(12, 4)), rng.integers(0, 4, size=(6, 6))
    lowered = random_lowered(rng, 4, [6, 5], 16)
    lowered.layers.insert(0, first)
    program = build_program(lowered, codebook_depth=16, config_max_features=64)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 1, 21))
    return program, image, out_addr, out_words, rng


@pytest.mark.parametrize("mode, fields, code", [
    ("rvq", {"mode_param": 3}, EngineError.BAD_CODEBOOK),            # 4 stages on a 3-stage engine
    ("rvq", {"codebook_size": 0}, EngineError.BAD_CODEBOOK),
    ("rvq", {"codebook_base": 5}, EngineError.BAD_CODEBOOK),          # the third stage past the ROM's end
    ("rvq", {"codebook_size": 17}, EngineError.BAD_CODEBOOK),         # above the depth
    ("rvq", {"mode_param": 1}, EngineError.BAD_STREAM),              # 2 stages: rows of the wrong length
    ("rvq", {"compact": True}, EngineError.BAD_MODE),
    ("rvq", {"codebook_size": 4}, EngineError.BAD_INDEX),             # an index 4 in some stage
    ("pq", {"mode_param": 0}, EngineError.BAD_CODEBOOK),              # 6 blocks of 4 past the ROM's end
    ("pq", {"mode_param": 2}, None),                                  # 2 blocks: fits, another network
    ("pq", {"codebook_size": 17}, EngineError.BAD_CODEBOOK),
    ("pq", {"codebook_size": 2}, EngineError.BAD_INDEX),
    ("pq", {"row_words": 4}, EngineError.BAD_STREAM),
])
def test_bad_rvq_pq_descriptors_stop_as_the_golden_model_does(mode, fields, code):
    program, image, out_addr, out_words, rng = small_case(mode)
    assert program.meta["layers"][0]["mode"] == mode and program.config.rom_entries == len(program.meta["rom"])
    bad = edit_descriptor(image, 0, **fields)
    golden, rtl = golden_and_rtl(program, bad, out_addr, out_words, "amaranth", rng, 5, stall=0)
    if code is None:
        assert_bit_exact(golden, rtl, program.meta["output_features"])
        return
    assert isinstance(golden, EngineFault) and golden.code == code, golden
    assert rtl["done"] and rtl["error"] == golden.code


def test_bad_index_in_a_later_stage_is_caught():
    """Stage 2's index at the stage size, stage 0's fine: ``BAD_INDEX`` from RTL and golden model."""
    program, image, out_addr, out_words, rng = small_case("rvq")
    d = Descriptor.decode(image[int(image[2]):int(image[2]) + DESC_WORDS])
    bad = image.copy()
    w = d.stream_addr + 2 * d.row_words + ROW_HEADER_WORDS     # row 2, its first entry (12 bits: 3 x 4)
    bad[w] = (int(bad[w]) & ~(0xF << 8)) | (5 << 8)
    golden, rtl = golden_and_rtl(program, bad, out_addr, out_words, "amaranth", rng, 5, stall=0)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_INDEX
    assert rtl["done"] and rtl["error"] == golden.code


@pytest.mark.parametrize("mode, unit", [("rvq", "rvq_stages_max"), ("pq", "pq")])
def test_layer_on_an_engine_without_the_unit_is_bad_mode(mode, unit):
    program, image, out_addr, out_words, rng = small_case(mode)
    meta = dict(program.meta, engine={k: v for k, v in program.meta["engine"].items() if k != unit})
    bare = Program(meta, program.image)
    assert not bare.config.supports_mode(LayerMode.RVQ if mode == "rvq" else LayerMode.PQ)
    golden, rtl = golden_and_rtl(bare, image, out_addr, out_words, "amaranth", rng, 5, stall=0)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_MODE
    assert rtl["done"] and rtl["error"] == golden.code


def test_stage_entries_pack_stage_zero_lowest():
    assert pack_stages(np.array([[[1, 2, 3]]]), 4).tolist() == [[1 | 2 << 4 | 3 << 8]]
