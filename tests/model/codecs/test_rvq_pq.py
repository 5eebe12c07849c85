"""The RVQ and PQ layer codecs: the writer and the golden model agree on the weights, the writer's refusals,
a shared multi-stage ROM, the coders of ``--method rq|pq`` and the energy report's reading of the layers."""
from types import SimpleNamespace

import numpy as np
import pytest

from model.codecs.layers.rvq import rvq_weights
from model.compress.lowering import LoweredLayer
from model.compress.multicodebook import code_pqvq, code_rvq
from model.contract.errors import ProgramError
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered, random_pq_layer, random_rvq_layer
from model.program.writer import build_program


def network(layer, lanes=4, depth=16):
    net = random_lowered(np.random.default_rng(0), lanes, [layer.in_features, layer.out_features], depth)
    net.layers = [layer]
    return net


@pytest.mark.parametrize("mode", ["rvq", "pq"])
def test_golden_decodes_the_weights_the_lowered_layer_has(mode):
    rng = np.random.default_rng(1)
    make = random_rvq_layer if mode == "rvq" else random_pq_layer
    raw = make(rng, 4, 70, 9, 16, 4) if mode == "rvq" else make(rng, 4, 70, 9, 16)
    fields = dict(mode=mode, section_size=raw.section_size, block_subvectors=getattr(raw, "block_subvectors", 0))
    lowered = LoweredLayer(70, 9, raw.codebook.astype(np.int8), raw.indices, raw.bias, raw.mult, raw.shift, False,
                           **fields)
    program = build_program(network(lowered), codebook_depth=16)
    _, decoded = GoldenEngine(program.config).decode(program.dram_image(np.zeros((1, 70), np.int8))[0])
    np.testing.assert_array_equal(decoded[0].weights()[:, :70], lowered.weight())


@pytest.mark.parametrize("change, message", [
    (lambda l: setattr(l, "indices", np.zeros((*l.indices.shape[:2], 5), np.int64)), "1..4 stages"),
    (lambda l: setattr(l, "section_size", l.section_size + 1), "must be"),
    (lambda l: setattr(l, "codebook", l.codebook + 300), "outside int8"),
    (lambda l: setattr(l, "indices", l.indices + l.section_size), "indices out of range"),
])
def test_writer_refuses_bad_rvq_layers_in_one_line(change, message):
    layer = random_rvq_layer(np.random.default_rng(2), 4, 10, 3, 16, 2)
    change(layer)
    with pytest.raises(ProgramError, match=message):
        build_program(network(layer), codebook_depth=16)


def test_writer_refuses_a_block_width_that_is_not_a_power_of_two():
    layer = random_pq_layer(np.random.default_rng(3), 4, 40, 3, 16)
    layer.block_subvectors = 3
    with pytest.raises(ProgramError, match="power of two"):
        build_program(network(layer), codebook_depth=16)


def test_rvq_layers_index_a_shared_multi_stage_rom():
    """A universal ROM of 2 sections of 8: a layer whose stages are those sections reads it from entry 0."""
    rng = np.random.default_rng(4)
    rom = rng.integers(-128, 128, size=(16, 4))
    layer = SimpleNamespace(mode="rvq", in_features=12, out_features=5, section_size=8, codebook=rom,
                            indices=rng.integers(0, 8, size=(5, 3, 2)), bias=np.zeros(5, np.int64),
                            mult=np.ones(5, np.int64), shift=np.zeros(5, np.int64), relu=False)
    program = build_program(network(layer), codebook_depth=8, shared_rom=rom)
    assert program.meta["rom_shared"] and program.config.rom_entries == 16
    x = rng.integers(-5, 5, size=(1, 12)).astype(np.int8)
    out = GoldenEngine(program.config).run(program.dram_image(x)[0]).outputs
    w = rvq_weights(rom, 0, 8, layer.indices).reshape(5, -1)
    np.testing.assert_array_equal(out[0], np.clip(w @ x[0].astype(np.int64), -128, 127))
    layer.codebook = rom[::-1].copy()
    with pytest.raises(ProgramError, match="shared ROM's first 2 sections"):
        build_program(network(layer), codebook_depth=8, shared_rom=rom)


def test_more_residual_stages_reconstruct_better():
    w = np.random.default_rng(5).normal(size=(24, 40)).astype(np.float32)
    errors = []
    for stages in (1, 2, 3):
        coding, rec = code_rvq(w, 4, 16, stages, seed=0)
        assert coding.indices.shape == (24, 10, stages) and coding.codebook.shape == (16 * stages, 4)
        errors.append(float(np.mean((rec - w) ** 2)))
    assert errors[0] > errors[1] > errors[2]


def test_product_vq_has_a_codebook_per_block():
    w = np.random.default_rng(6).normal(size=(32, 96)).astype(np.float32)   # 24 sub-vectors: 3 blocks of 8
    coding, rec = code_pqvq(w, 4, 16, seed=0, block=8)
    assert coding.mode == "pq" and coding.codebook.shape == (3 * 16, 4) and coding.indices.shape == (32, 24)
    single, rec1 = code_pqvq(w, 4, 16, seed=0, block=32)
    assert single.codebook.shape == (16, 4)
    assert np.mean((rec - w) ** 2) < np.mean((rec1 - w) ** 2)


def test_energy_report_counts_each_stage_read():
    from sim.report.energy.golden import golden_network_data
    layer = random_rvq_layer(np.random.default_rng(7), 4, 16, 6, 16, 4)
    layer.indices = layer.indices[..., :1].repeat(3, axis=-1) % max(1, layer.section_size)
    layer.codebook = np.concatenate([layer.codebook[:layer.section_size]] * 3)
    program = build_program(network(layer), codebook_depth=16)
    net = golden_network_data(program, np.zeros((2, 16), np.int8))
    beats = 6 * 4   # per image
    assert net.layers[0].mode == "rvq" and net.counters(0)["rom_reads"] == 3 * beats
    assert net.counters(0)["adds"] == 2 * 4 * beats
