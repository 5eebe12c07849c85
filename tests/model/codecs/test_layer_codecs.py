"""The layer-codec registry: one codec per layer mode, and a codec's rows read back as they were written."""
import numpy as np
import pytest

from model.codecs.layers import registry
from model.codecs.layers.base import LayerCodec
from model.codecs.layers.registry import codec_for_mode, codec_named, decode_job, layer_codecs, register_layer_codec
from model.codecs.sparse_rows import row_symbols
from model.codecs.vectors import random_vectors
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS, JOB_WORDS, MODE_SHIFT, LayerMode
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered
from model.program.writer import build_program


def test_every_layer_mode_has_exactly_one_codec():
    codecs = layer_codecs()
    assert sorted(c.mode for c in codecs) == sorted(LayerMode)
    for c in codecs:
        assert codec_for_mode(c.mode) is c and codec_named(c.name) is c
        assert c.name == c.mode.name.lower()


def test_unknown_modes_and_names_are_refused():
    with pytest.raises(ValueError, match="unknown layer mode 'conv'.*vq"):
        codec_named("conv")
    with pytest.raises(EngineFault) as e:
        codec_for_mode(15)
    assert e.value.code == EngineError.BAD_MODE


def test_a_mode_or_name_registers_once(monkeypatch):
    monkeypatch.setattr(registry, "_BY_MODE", dict(registry._BY_MODE))
    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))
    with pytest.raises(ValueError, match="already registered"):
        register_layer_codec(type(codec_named("vq"))())

    class Renamed(LayerCodec):
        name = "vq"
        mode = 9
    with pytest.raises(ValueError, match="already registered"):
        register_layer_codec(Renamed())


def lowered_with_every_mode(seed: int):
    """A random network with VQ, PVQ and sparse Huffman layers (at least one of each)."""
    for attempt in range(100):
        rng = np.random.default_rng(seed * 1000 + attempt)
        low = random_lowered(rng, 4, [23, 17, 30, 9, 12, 6], 16, pvq_k_max=4, huffman_k_max=8)
        modes = {getattr(layer, "mode", "vq") for layer in low.layers}
        if modes == {"vq", "pvq", "huffman"}:
            return low
    raise AssertionError("no network with every mode")


def written_weights(layer) -> np.ndarray:
    """The integer weights a lowered layer describes, (out, in), from its own fields."""
    mode = getattr(layer, "mode", "vq")
    if mode == "huffman":
        return np.asarray(layer.codebook)[:, 0][np.asarray(layer.indices)]
    if mode == "pvq":
        w = np.asarray(layer.pvq_scale)[:, :, None] * np.asarray(layer.pvq_y)
    else:
        w = np.asarray(layer.codebook)[np.asarray(layer.indices)]
    return w.reshape(layer.out_features, -1)[:, :layer.in_features]


@pytest.mark.parametrize("seed", range(4))
def test_each_codec_reads_back_what_it_wrote(seed):
    low = lowered_with_every_mode(seed)
    program = build_program(low, codebook_depth=16, config_max_features=64, pvq_k_max=4)
    cfg = program.config
    _, layers = decode_job(program.job_image(1), cfg, np.asarray(cfg.rom, dtype=np.int64).reshape(-1, cfg.lanes))
    assert [codec_for_mode(d.desc.mode).name for d in layers] == [m["mode"] for m in program.meta["layers"]]
    for lowered, decoded in zip(low.layers, layers):
        np.testing.assert_array_equal(decoded.weights()[:, :lowered.in_features], written_weights(lowered))
        np.testing.assert_array_equal(decoded.bias, np.asarray(lowered.bias))
        np.testing.assert_array_equal(decoded.mult, np.asarray(lowered.mult))
        np.testing.assert_array_equal(decoded.shift, np.asarray(lowered.shift))


def test_codec_counters_follow_from_the_layers_by_hand():
    """Each codec's counters, against what the lowered layers imply (the golden run adds up the same)."""
    low = lowered_with_every_mode(7)
    program = build_program(low, codebook_depth=16, config_max_features=64, pvq_k_max=4)
    n, lanes = 3, program.config.lanes
    x = random_vectors(np.random.default_rng(1), n, program.meta["input_features"])
    image, _, _ = program.dram_image(x)
    golden = GoldenEngine(program.config)
    result = golden.run(image)
    for lowered, counters, meta in zip(low.layers, result.layer_counters, program.meta["layers"]):
        beats = lowered.out_features * -(-lowered.in_features // lanes)   # sub-vectors of every row
        mode = meta["mode"]
        if mode == "huffman":
            kept = int(np.count_nonzero(lowered.indices))                   # stored non-zero weights
            # A weight meeting a zero activation is not multiplied (zero_skips), but is read.
            assert counters["macs"] + counters["zero_skips"] == counters["rom_reads"] == counters["sram_reads"] \
                == n * kept
            assert counters["huffman_symbols"] >= n * kept
            symbols = [len(row_symbols(row)[0]) for row in np.asarray(lowered.indices)]   # fillers included
            assert counters["huffman_symbols"] == n * sum(symbols)
            assert counters["huffman_busy_cycles"] == n * sum((k + 1) // 2 for k in symbols)   # two a step
            assert counters["adds"] == 0
        else:
            assert counters["sram_reads"] == n * beats
            if mode == "vq":
                assert (counters["rom_reads"], counters["macs"], counters["adds"]) == (n * beats, n * beats * lanes, 0)
            else:   # one signed add per pulse, K per sub-vector; no ROM, no multiplier lanes
                assert (counters["rom_reads"], counters["macs"], counters["adds"]) == (0, 0, n * beats * lowered.pvq_k)
            assert counters["huffman_symbols"] == counters["zero_skips"] == 0
        assert counters["sram_writes"] == n * -(-lowered.out_features // lanes)


def test_a_descriptor_of_an_unknown_mode_stops_the_job_with_bad_mode():
    low = lowered_with_every_mode(3)
    program = build_program(low, codebook_depth=16, config_max_features=64, pvq_k_max=4)
    image = program.job_image(1)
    w3 = JOB_WORDS + DESC_WORDS * 1 + 3
    image[w3] = (int(image[w3]) & ~(0xF << (16 + MODE_SHIFT))) | (7 << (16 + MODE_SHIFT))
    with pytest.raises(EngineFault) as e:
        GoldenEngine(program.config).decode(image)
    assert e.value.code == EngineError.BAD_MODE and "layer 1" in str(e.value)
