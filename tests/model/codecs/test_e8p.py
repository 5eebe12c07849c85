"""The E8P lattice codebook against brute force: its codewords are distinct points of E8 + 1/4 at scale 4, the
nearest-codeword search is exact (masked coordinates included), and the layer codec writes and reads them."""
from types import SimpleNamespace

import numpy as np
import pytest

from model.codecs.e8p import (E8P_CODEWORDS, E8P_SCALE, E8P_TABLE_ENTRIES, e8p_codewords, e8p_decode, e8p_nearest,
                              e8p_table, source_vectors)
from model.codecs.layers.registry import decode_job
from model.codecs.vectors import random_vectors
from model.contract.errors import ProgramError
from model.program.synthetic import random_e8p_layer
from model.program.writer import build_program


def test_table_holds_the_227_sources_up_to_norm_10_and_29_of_norm_12():
    src = source_vectors()
    norm2 = (src * src).sum(1) / 4
    assert src.shape == (E8P_TABLE_ENTRIES, 8) and np.all(src % 2 == 1) and np.all(src > 0)
    assert (norm2 <= 10).sum() == 227 and (norm2 == 12).sum() == 29 and norm2.max() == 12
    assert len(np.unique(src, axis=0)) == E8P_TABLE_ENTRIES
    assert set(np.unique(e8p_table()).tolist()) == {2, 6, 10}


def test_all_codewords_are_distinct_points_of_the_shifted_e8_lattice():
    """Brute force over every index: (cw -+ 1) / 4 has half-integer coordinates with an even sum (D8^, in E8),
    the shift bit is the sign of the 1/4, the magnitudes are the table's and every codeword is different."""
    idx = np.arange(E8P_CODEWORDS)
    cw = e8p_codewords().astype(np.int64)
    assert len(np.unique(cw, axis=0)) == E8P_CODEWORDS
    shift = np.where(idx >> 15 & 1, 1, -1)[:, None]
    twice = (cw - shift) // 2                       # 2x: x in Z + 1/2, so odd
    assert np.all((cw - shift) % 2 == 0) and np.all(twice % 2 == 1)
    assert np.all(twice.sum(1) % 4 == 0)             # sum(x) = sum(2x) / 2 is even
    assert np.array_equal(np.abs(twice) * (E8P_SCALE // 2), e8p_table()[idx & 0xFF])
    assert np.array_equal(np.sign(twice[:, :7]) < 0, (idx[:, None] >> (8 + np.arange(7)) & 1) == 1)
    assert cw.min() == -11 and cw.max() == 11


def test_decode_of_any_shape_matches_the_codeword_table():
    idx = np.random.default_rng(0).integers(0, E8P_CODEWORDS, size=(3, 5))
    assert np.array_equal(e8p_decode(idx), e8p_codewords()[idx].astype(np.int64))
    with pytest.raises(ValueError):
        e8p_decode([E8P_CODEWORDS])


@pytest.mark.parametrize("masked", [False, True])
def test_nearest_search_equals_brute_force(masked):
    rng = np.random.default_rng(1 + masked)
    y = rng.normal(size=(150, 8)) * rng.choice([1, 4, 9], size=(150, 1))
    mask = (rng.random((150, 8)) < 0.6).astype(float) if masked else np.ones((150, 8))
    idx = e8p_nearest(y, mask if masked else None)
    cw = e8p_codewords().astype(float)
    dist = (((y[:, None, :] - cw[None]) ** 2) * mask[:, None, :]).sum(-1)
    np.testing.assert_allclose(dist[np.arange(len(y)), idx], dist.min(1))


def test_codewords_are_their_own_nearest():
    idx = np.random.default_rng(2).integers(0, E8P_CODEWORDS, size=500)
    assert np.array_equal(e8p_nearest(e8p_decode(idx)), idx)


def _lowered(layers, lanes=8):
    return SimpleNamespace(name="t", method="t", lanes=lanes, input_scale=1 / 127, output_scale=1.0, layers=layers,
                           info={})


def test_writer_and_golden_decode_agree():
    rng = np.random.default_rng(3)
    layer = random_e8p_layer(rng, 29, 7)
    program = build_program(_lowered([layer]), config_max_features=1024)
    assert program.meta["engine"]["lattice"] and program.meta["rom"] == []
    image, _, _ = program.dram_image(random_vectors(rng, 1, 29))
    _, (decoded,) = decode_job(image, program.config, np.zeros((0, 8), np.int64))
    assert np.array_equal(decoded.weights()[:, :29], e8p_decode(layer.indices).reshape(7, -1)[:, :29])


@pytest.mark.parametrize("edit, message", [
    (lambda layer: setattr(layer, "codebook", layer.codebook[:100]), "must be the E8P codewords"),
    (lambda layer: setattr(layer, "indices", layer.indices[:, :2]), "does not match the layer"),
    (lambda layer: layer.indices.__setitem__((0, 0), -1), "out of range"),
])
def test_writer_refuses_bad_e8p_layers_in_one_line(edit, message):
    layer = random_e8p_layer(np.random.default_rng(4), 29, 7)
    edit(layer)
    with pytest.raises(ProgramError, match=message):
        build_program(_lowered([layer]), config_max_features=1024)


def test_writer_refuses_e8p_at_other_lanes():
    layer = random_e8p_layer(np.random.default_rng(4), 29, 7)
    with pytest.raises(ProgramError, match="8 lanes"):
        build_program(_lowered([layer], lanes=4), config_max_features=1024)
