"""Sparse layers' hidden units permuted so that the processing elements' rows take equal time
(model.program.balance): never worse than row r on PE r mod P, exact (the program's outputs and the
counters that do not depend on the coding are those of P = 1), recorded in ``row_order``, and P = 1
programs untouched."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

import model.program.writer as writer
from model.codecs.sparse_rows import row_symbols
from model.codecs.vectors import random_vectors
from model.golden.engine import GoldenEngine
from model.program.balance import (SPARSE_ROW_OVERHEAD, balance_hidden_units, pe_balanced_order, pe_work,
                                   sparse_row_work)
from model.program.synthetic import random_lowered, random_sparse_layer
from model.program.writer import build_program, layer_mode

LANES = 4
#: Stream words: the P-layout and the balanced sub-streams' padding change them.
STREAM_COUNTERS = {"dram_read_words", "weight_sram_reads", "weight_sram_writes"}
#: A layer whose input columns moved has other runs, so other fillers and codes.
CODING_COUNTERS = {"huffman_symbols", "huffman_bits", "huffman_busy_cycles"}


# --- the order ---------------------------------------------------------------------------------------------------
def test_a_lopsided_layer_is_balanced():
    # Rows 0 and 2 are long: round-robin puts both on PE 0.
    order = pe_balanced_order([10, 1, 10, 1], 2)
    assert pe_work([10, 1, 10, 1], 2).tolist() == [20, 2]
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    assert pe_work([10, 1, 10, 1], 2, order).tolist() == [11, 11]


def test_an_already_balanced_layer_is_left_alone():
    assert pe_balanced_order([5, 5, 5, 5, 5, 5], 4) is None
    assert pe_balanced_order([7], 4) is None and pe_balanced_order([3, 9], 1) is None


@pytest.mark.parametrize("pes", [2, 4, 8])
def test_balanced_work_is_never_worse_and_typically_better(pes):
    rng = np.random.default_rng(pes)
    better = 0
    cases = 300
    for _ in range(cases):
        n = int(rng.integers(1, 120))
        kind = int(rng.integers(0, 3))
        work = (rng.integers(2, 40, size=n) if kind == 0 else rng.geometric(0.05, size=n) + SPARSE_ROW_OVERHEAD
                if kind == 1 else np.where(rng.random(n) < 0.2, 200, 3))
        before = pe_work(work, pes)
        order = pe_balanced_order(work, pes)
        if order is None:
            continue
        # A permutation that gives each PE as many rows as round-robin does (the layer's shape is kept).
        assert sorted(order.tolist()) == list(range(n))
        after = pe_work(work, pes, order)
        assert after.sum() == before.sum()
        assert after.max() < before.max()
        # Each PE's rows stay in their original order.
        assert all(np.all(np.diff(order[p::pes]) > 0) for p in range(pes))
        better += 1
    assert better > cases // 2


def test_row_work_counts_fillers_and_the_row_overhead():
    rng = np.random.default_rng(0)
    idx = np.where(rng.random((12, 300)) < 0.03, rng.integers(1, 5, size=(12, 300)), 0)
    idx[3] = 0   # an empty row still has one symbol
    expected = [len(row_symbols(r)[0]) + SPARSE_ROW_OVERHEAD for r in idx]
    assert sparse_row_work(idx, pairs=False).tolist() == expected
    assert expected[3] == 1 + SPARSE_ROW_OVERHEAD and max(expected) > 2 + 300 * 0.03
    # Two codes a step: a filler first of its step costs no cycle of its own.
    paired = sparse_row_work(idx)
    assert all(p <= e for p, e in zip(paired, expected)) and paired.sum() < sum(expected)


def test_row_work_pairs_fillers_with_the_next_symbol():
    """Symbols (run, idx) of a row with fillers at both step positions: only those first of a step go free."""
    row = np.zeros(100, dtype=np.int64)
    row[[40, 41, 99]] = [3, 2, 1]      # fillers (15, 0) at symbols 0, 1 then weights at 2, 3; fillers 4, 5, 6 + weight 7
    runs, idx = row_symbols(row)
    assert idx.tolist() == [0, 0, 3, 2, 0, 0, 0, 1]
    # Steps (0, 1), (2, 3), (4, 5), (6, 7): fillers 0, 4 and 6 are first of their step.
    assert sparse_row_work(row[None, :]).tolist() == [8 - 3 + SPARSE_ROW_OVERHEAD]
    assert sparse_row_work(row[None, :], pairs=False).tolist() == [8 + SPARSE_ROW_OVERHEAD]


# --- which layers ------------------------------------------------------------------------------------------------
def skewed_sparse_layer(rng, n_in: int, n_out: int, relu: bool):
    """A random sparse layer whose rows have very different lengths (some nearly empty, some dense)."""
    layer = random_sparse_layer(rng, n_in, n_out, 16, relu)
    if len(layer.codebook) == 1:   # one centroid: every row is empty; give it weights to move
        layer.codebook = np.array([[0], [37]])
    keep = rng.random((n_out, n_in)) < rng.choice([0.02, 0.2, 0.9], size=n_out)[:, None]
    layer.indices = np.where(keep, rng.integers(1, len(layer.codebook), size=(n_out, n_in)), 0)
    return layer


def sparse_network(seed: int, shapes):
    rng = np.random.default_rng(seed)
    layers = [skewed_sparse_layer(rng, n_in, n_out, i < len(shapes) - 2)
              for i, (n_in, n_out) in enumerate(zip(shapes[:-1], shapes[1:]))]
    return SimpleNamespace(name="sparse", method="deepcomp", lanes=LANES, input_scale=1 / 127, output_scale=1.0,
                           layers=layers, info={})


def test_only_sparse_fc_layers_feeding_a_sparse_fc_layer_are_permuted():
    net = sparse_network(0, [40, 33, 29, 21, 9])
    net.layers[2].save = True                 # its output goes to the skip buffer too
    dense = copy.copy(net.layers[3])
    dense.mode = "vq"
    for layers, permuted in ((net.layers, {0, 1}), (net.layers[:2] + [dense], {0}),
                             ([net.layers[0], dense, net.layers[2], net.layers[3]], set())):
        out, orders = balance_hidden_units(layers, 4, lambda l: layer_mode(net, l))
        assert set(orders) <= permuted and len(layers) - 1 not in orders
        assert all(out[i] is layers[i] for i in range(len(layers))
                   if i not in orders and i - 1 not in orders)
    assert set(balance_hidden_units(net.layers, 4, lambda l: layer_mode(net, l))[1]) == {0, 1}
    assert balance_hidden_units(net.layers, 1, lambda l: layer_mode(net, l))[1] == {}


# --- whole programs ----------------------------------------------------------------------------------------------
def golden(program, x):
    image, _, _ = program.dram_image(x)
    return GoldenEngine(program.config).run(image)


def decoded(program):
    return GoldenEngine(program.config).decode(program.dram_image(np.zeros((1, program.meta["input_features"]),
                                                                           dtype=np.int8))[0])[1]


NETWORKS = [(0, [45, 37, 10]), (1, [60, 41, 33, 7]), (2, [30, 64, 50, 23, 12]), (3, [17, 80, 5])]


@pytest.mark.parametrize("seed, shapes", NETWORKS)
def test_balanced_programs_compute_what_p_1_computes(seed, shapes):
    """2 to 4 sparse FC layers at P = 2, 4, 8: the outputs of P = 1 bit for bit, the same counters but the stream's
    words and, in a layer whose input columns moved, its coding's; row_order maps the stored rows back."""
    lowered = sparse_network(seed, shapes)
    before = copy.deepcopy(lowered)
    x = random_vectors(np.random.default_rng(seed + 50), 5, shapes[0])
    x[:, ::3] = 0    # zero activations: zero_skips follow the permuted columns
    one = build_program(lowered, codebook_depth=32, pes=1)
    ref = golden(one, x)
    permuted = 0
    for pes in (2, 4, 8):
        program = build_program(lowered, codebook_depth=32, pes=pes)
        run = golden(program, x)
        np.testing.assert_array_equal(run.outputs, ref.outputs)
        metas = program.meta["layers"]
        assert "row_order" not in metas[-1]
        layers, ref_layers = decoded(program), decoded(one)
        for i, meta in enumerate(metas):
            rows = np.asarray(meta.get("row_order", range(meta["out_features"])))
            cols = np.asarray(metas[i - 1].get("row_order", range(meta["in_features"]))) if i else \
                np.arange(meta["in_features"])
            assert sorted(rows.tolist()) == list(range(meta["out_features"]))
            # Stored row s is original row rows[s]; stored column j is the previous layer's original unit cols[j].
            w, ref_w = layers[i].weights(), ref_layers[i].weights()
            np.testing.assert_array_equal(w[:, :meta["in_features"]], ref_w[rows][:, cols])
            np.testing.assert_array_equal(layers[i].bias, ref_layers[i].bias[rows])
            # The balanced layer's PEs: never busier than round-robin's.
            work = sparse_row_work(lowered.layers[i].indices[:, cols])
            assert pe_work(work, pes, rows).max() <= pe_work(work, pes).max()
            if "row_order" in meta:
                permuted += 1
                assert pe_work(work, pes, rows).max() < pe_work(work, pes).max()
            moved = i > 0 and "row_order" in metas[i - 1]
            skip = STREAM_COUNTERS | (CODING_COUNTERS if moved else set())
            assert {n: v for n, v in run.layer_counters[i].items() if n not in skip} == \
                {n: v for n, v in ref.layer_counters[i].items() if n not in skip}
            # What the coding changes is the layer's own symbols: fillers of its new runs.
            assert run.layer_counters[i]["huffman_symbols"] == len(x) * meta["sparse"]["symbols"]
            symbols = sparse_row_work(lowered.layers[i].indices[:, cols], pairs=False)
            assert meta["sparse"]["symbols"] == int((symbols - SPARSE_ROW_OVERHEAD).sum())
        assert run.io_counters == ref.io_counters
    assert permuted
    # The caller's network is not changed.
    for layer, old in zip(lowered.layers, before.layers):
        for name in ("indices", "bias", "mult", "shift"):
            np.testing.assert_array_equal(getattr(layer, name), getattr(old, name))


def test_mixed_networks_keep_their_outputs():
    """random_lowered networks with some sparse layers among VQ ones: the balanced program's outputs are P = 1's."""
    for seed in range(6):
        shapes = [int(v) for v in np.random.default_rng(seed).integers(3, 50, size=4)]
        lowered = random_lowered(np.random.default_rng(seed), LANES, shapes, 16, huffman_k_max=8)
        x = random_vectors(np.random.default_rng(seed), 3, shapes[0])
        ref = golden(build_program(lowered, codebook_depth=16, pes=1), x)
        for pes in (2, 4, 8):
            program = build_program(lowered, codebook_depth=16, pes=pes)
            np.testing.assert_array_equal(golden(program, x).outputs, ref.outputs)
            for i, meta in enumerate(program.meta["layers"]):
                if "row_order" in meta:
                    assert meta["mode"] == "huffman" and program.meta["layers"][i + 1]["mode"] == "huffman"


@pytest.mark.parametrize("seed, shapes", NETWORKS)
def test_p_1_programs_are_unchanged(seed, shapes, monkeypatch):
    lowered = sparse_network(seed, shapes)
    balanced = {p: build_program(lowered, codebook_depth=32, pes=p) for p in (1, 4)}
    monkeypatch.setattr(writer, "balance_hidden_units", lambda layers, pes, mode_of, pairs=True: (list(layers), {}))
    plain = {p: build_program(lowered, codebook_depth=32, pes=p) for p in (1, 4)}
    # balance=False is the round-robin program.
    unbalanced = build_program(lowered, codebook_depth=32, pes=4, balance=False)
    assert unbalanced.image.tobytes() == plain[4].image.tobytes() and unbalanced.meta == plain[4].meta
    assert balanced[1].image.tobytes() == plain[1].image.tobytes()
    assert balanced[1].meta == plain[1].meta
    # At P > 1 the balancing is what changes the program (these networks' rows are lopsided).
    assert any("row_order" in l for l in balanced[4].meta["layers"])
    assert balanced[4].image.tobytes() != plain[4].image.tobytes()
