"""E8P lattice layers on the RTL against the golden model: random programs (E8P, VQ, RVQ and PVQ layers, FC and
convolutions) under random DRAM timing, a lattice-only engine with no ROM, a LeNet-sized layer's utilization, bad
descriptors, engines without the lattice codebook."""
from types import SimpleNamespace

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.errors import EngineError, EngineFault
from model.contract.ints import ceil_div
from model.contract.layout import LayerMode
from model.program.file import Program
from model.program.synthetic import random_e8p_layer, random_lowered, random_windowed_lowered
from model.program.writer import build_program

from engine_cases import assert_bit_exact, edit_descriptor, run_both

LANES = 8


def e8p_case(seed: int, n_images: int = 2):
    """A random 8-lane program with at least one E8P layer beside VQ (and RVQ / PVQ) layers: odd seeds fully
    connected, even seeds a convolution / pooling / FC network; resident or streamed."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        if seed % 2:
            shapes = [int(rng.integers(1, 40)) for _ in range(int(rng.integers(2, 5)))]
            lowered = random_lowered(rng, LANES, shapes, 16, pvq_k_max=2, rvq_stages_max=2, lattice=True)
            n_in = shapes[0]
        else:
            lowered, n_in = random_windowed_lowered(rng, LANES, 16, lattice=True)
        if any(getattr(layer, "mode", None) == "e8p" for layer in lowered.layers):
            break
    program = build_program(lowered, codebook_depth=16, config_max_features=1024, pvq_k_max=2,
                            weight_sram_words=int(rng.integers(0, 400)))
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, n_in))
    return program, image, out_addr, out_words * n_images, rng


def lattice_only_case(seed: int, shapes=(37, 19, 6), n_images: int = 2):
    """Every layer E8P: a program with no ROM at all (the engine has the lattice table only)."""
    rng = np.random.default_rng(seed)
    layers = [random_e8p_layer(rng, n_in, n_out) for n_in, n_out in zip(shapes[:-1], shapes[1:])]
    lowered = SimpleNamespace(name="random-e8p", method="random", lanes=LANES, input_scale=1 / 127, output_scale=1.0,
                              layers=layers, info={})
    program = build_program(lowered, config_max_features=1024)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, n_images, shapes[0]))
    return program, image, out_addr, out_words * n_images, rng


def run_rtl(program, image, out_addr, out_words, backend, rng, seed, stall=None):
    """(golden result or fault, RTL result) with a random DRAM latency and, unless given, random stalls."""
    return run_both(program, image, out_addr, out_words, backend, latency=int(rng.integers(3, 12)),
                    stall=int(rng.choice([0, 64])) if stall is None else stall, seed=seed)


def modes(program) -> set:
    return {layer["mode"] for layer in program.meta["layers"]}


@pytest.mark.parametrize("seed", range(4))
def test_random_e8p_programs_amaranth(seed):
    """Outputs and every counter (a table read per E8P entry), with random DRAM stalls."""
    program, image, out_addr, out_words, rng = e8p_case(seed)
    assert program.config.lattice and "e8p" in modes(program)
    golden, rtl = run_rtl(program, image, out_addr, out_words, "amaranth", rng, seed)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("backend, seed", [("icarus", 5), ("verilator", 6), ("verilator", 7)])
def test_random_e8p_program_verilog(backend, seed):
    program, image, out_addr, out_words, rng = e8p_case(seed)
    golden, rtl = run_rtl(program, image, out_addr, out_words, backend, rng, seed, stall=64)
    assert_bit_exact(golden, rtl, program.meta["output_features"])


@pytest.mark.parametrize("backend", ["amaranth", "verilator"])
def test_lattice_only_engine_has_no_rom(backend):
    program, image, out_addr, out_words, rng = lattice_only_case(11)
    assert program.meta["rom"] == [] and program.config.rom_entries == 0 and program.config.lattice
    golden, rtl = run_rtl(program, image, out_addr, out_words, backend, rng, 11, stall=64)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    beats = sum(d["out_features"] * ceil_div(d["in_features"], LANES) for d in program.meta["layers"])
    assert golden.counters["rom_reads"] == 2 * beats and golden.counters["macs"] == 2 * beats * LANES


def test_random_cases_draw_e8p_beside_other_modes_and_in_convolutions():
    programs = [e8p_case(s)[0] for s in range(8)]
    assert all("e8p" in modes(p) for p in programs)
    assert {"e8p", "vq"} <= set().union(*map(modes, programs))
    assert any(p.config.windows for p in programs)


def test_lenet_sized_e8p_layer_keeps_one_entry_per_cycle():
    """784 inputs, 48 rows of 16-bit entries: utilization (MACs / lanes over the layer's cycles) at least 0.9."""
    program, image, out_addr, out_words, rng = lattice_only_case(3, shapes=(784, 48), n_images=1)
    golden, rtl = run_rtl(program, image, out_addr, out_words, "verilator", rng, 1, stall=0)
    assert_bit_exact(golden, rtl, program.meta["output_features"])
    utilization = 48 * ceil_div(784, LANES) / rtl["counters"]["cycles"]
    assert utilization >= 0.9, utilization


@pytest.mark.parametrize("fields, code", [
    ({"row_words": 9}, EngineError.BAD_STREAM),          # rows of 5 x 16-bit entries take 2 + 3 words
    ({"compact": True}, EngineError.BAD_MODE),
    ({"codebook_base": 77, "codebook_size": 5}, None),   # word 1 is not read
])
def test_bad_e8p_descriptors_stop_as_the_golden_model_does(fields, code):
    program, image, out_addr, out_words, rng = lattice_only_case(5, shapes=(37, 6), n_images=1)
    bad = edit_descriptor(image, 0, **fields)
    golden, rtl = run_rtl(program, bad, out_addr, out_words, "amaranth", rng, 5, stall=0)
    if code is None:
        assert_bit_exact(golden, rtl, program.meta["output_features"])
        return
    assert isinstance(golden, EngineFault) and golden.code == code, golden
    assert rtl["done"] and rtl["error"] == golden.code


def test_e8p_layer_on_an_engine_without_the_lattice_codebook_is_bad_mode():
    """The same program on an engine with a ROM but no lattice codebook: ``BAD_MODE`` from both."""
    program, image, out_addr, out_words, rng = lattice_only_case(5, shapes=(37, 6), n_images=1)
    meta = dict(program.meta, engine={k: v for k, v in program.meta["engine"].items() if k != "lattice"},
                rom=[[1] * LANES] * 4)
    bare = Program(meta, program.image)
    assert not bare.config.supports_mode(LayerMode.E8P)
    golden, rtl = run_rtl(bare, image, out_addr, out_words, "amaranth", rng, 5, stall=0)
    assert isinstance(golden, EngineFault) and golden.code == EngineError.BAD_MODE
    assert rtl["done"] and rtl["error"] == golden.code
