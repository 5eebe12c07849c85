"""Compact rows (one header word per row, the layer's shift, activation and bias scale in descriptor word 5):
the conversion, the golden model's reading of them, the RTL bit-exact on them, and their refusals."""
from __future__ import annotations

import numpy as np
import pytest

from model.codecs.layers.vq import make_compact
from model.codecs.vectors import random_vectors
from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.fixedpoint import MULT_BITS, compact_row_params, requantize
from model.contract.layout import DESC_WORDS, KIND_SHIFT, LayerKind, LayerMode
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered
from model.program.writer import build_program
from sim.simulate import hang_bound, simulate

SHAPES = [30, 13, 7]


def compact_program(seed: int, **writer):
    """A random two-layer VQ program whose layers all have compact rows."""
    rng = np.random.default_rng(seed)
    lowered = random_lowered(rng, 4, SHAPES, 16)
    for layer in lowered.layers:
        layer.act = np.full(layer.out_features, layer.act[0])
        assert make_compact(layer)
    return build_program(lowered, codebook_depth=16, config_max_features=64, **writer), lowered, rng


def test_conversion_keeps_the_requantization():
    """One shift, 16-bit multipliers, 16-bit biases of one scale, and outputs within a step of the rows'."""
    rng = np.random.default_rng(0)
    bias = rng.integers(-(1 << 24), 1 << 24, size=50)
    mult = rng.integers(1 << 14, 1 << 16, size=50)
    shift = rng.integers(18, 24, size=50)
    act = np.zeros(50, dtype=np.int64)
    bias16, mult16, common, bias_shift, _ = compact_row_params(bias, mult, shift, act)
    assert np.all((bias16 >= -(1 << 15)) & (bias16 < 1 << 15))
    assert np.all(mult16 < 1 << MULT_BITS) and common == int(np.min(shift + 16 - np.array(
        [int(m).bit_length() for m in mult])))
    acc = rng.integers(-(1 << 26), 1 << 26, size=50)
    before = requantize(acc + bias, mult, shift, False)
    after = requantize(acc + (bias16 << bias_shift), mult16, common, False)
    assert np.max(np.abs(before - after)) <= 1
    with pytest.raises(ValueError, match="activation"):
        compact_row_params(bias, mult, shift, np.arange(50))


def test_golden_reads_back_exactly_what_the_lowering_holds():
    program, lowered, _ = compact_program(1)
    assert all(layer["compact"] for layer in program.meta["layers"])
    _, decoded = GoldenEngine(program.config).decode(program.job_image(1))
    for want, got in zip(lowered.layers, decoded):
        for name in ("bias", "mult", "shift"):
            np.testing.assert_array_equal(np.asarray(getattr(want, name)), getattr(got, name))
    # A compact row is one header word shorter.
    two_word = build_program(random_lowered(np.random.default_rng(1), 4, SHAPES, 16), codebook_depth=16,
                             config_max_features=64)
    assert len(program.image) == len(two_word.image) - sum(SHAPES[1:])


@pytest.mark.parametrize("backend", ["verilator", "amaranth"])
def test_compact_rows_bit_exact(backend):
    program, _, rng = compact_program(2, weight_sram_words=40)
    x = random_vectors(rng, 2, SHAPES[0])
    image, out_addr, out_words = program.dram_image(x)
    golden = GoldenEngine(program.config).run(image)
    rtl = simulate(program, image, backend, out_addr=out_addr, out_words=2 * out_words, latency=6, stall=50, seed=3,
                   max_cycles=hang_bound(golden.counters, 2, 2, 6, 4), vcd=None)
    assert rtl["done"] and rtl["error"] == 0
    from model.codecs.vectors import unpack_vectors
    out = unpack_vectors(np.asarray(rtl["outputs"], dtype=np.uint32).reshape(2, -1), SHAPES[-1])
    np.testing.assert_array_equal(out, golden.outputs)
    assert {k: rtl["counters"][k] for k in golden.counters} == golden.counters


@pytest.mark.parametrize("defect", ["pvq-mode", "conv-kind"])
def test_compact_rows_outside_fc_vq_are_bad_mode(defect):
    """On an engine that runs PVQ and convolutions, so only the compact flag makes them BAD_MODE."""
    from model.program.file import Program
    program, _, rng = compact_program(3)
    program = Program(dict(program.meta, engine=dict(program.meta["engine"], pvq_k_max=5, windows=True)),
                      program.image)
    image, out_addr, out_words = program.dram_image(random_vectors(rng, 1, SHAPES[0]))
    at = int(image[2])
    desc = Descriptor.decode(image[at:at + DESC_WORDS])
    word3 = int(image[at + 3])
    if defect == "pvq-mode":
        desc.mode = LayerMode.PVQ
        image[at:at + DESC_WORDS] = desc.encode()
    else:   # the kind field says convolution; the rest of the descriptor as it was
        image[at + 3] = word3 | (LayerKind.CONV << (16 + KIND_SHIFT))
    with pytest.raises(EngineFault) as fault:
        GoldenEngine(program.config).run(image)
    assert fault.value.code == EngineError.BAD_MODE
    rtl = simulate(program, image, "verilator", out_addr=out_addr, out_words=out_words, latency=5, stall=0, seed=1,
                   max_cycles=20000, vcd=None)
    assert rtl["done"] and rtl["error"] == EngineError.BAD_MODE
