"""Energy and report of sparse Huffman-coded (Deep Compression) programs, from real golden runs."""
from __future__ import annotations

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.layout import DESC_WORDS, WORD_BITS
from model.program.synthetic import random_sparse_layer
from model.program.writer import build_program
from sim.report.energy.golden import golden_network_data
from sim.report.energy.network import HUFFMAN, part_cycles
from sim.report.energy.pricing import network_energy
from sim.report.energy.table import load_energy_table
from sim.report.sections.deepcomp import layer_table, traffic_table

LANES = 4
SHAPES = [53, 21, 6]


def sparse_program(seed: int = 0):
    from types import SimpleNamespace
    rng = np.random.default_rng(seed)
    layers = [random_sparse_layer(rng, n_in, n_out, 16, relu=i == 0)
              for i, (n_in, n_out) in enumerate(zip(SHAPES[:-1], SHAPES[1:]))]
    lowered = SimpleNamespace(name="sparse", method="deepcomp", lanes=LANES, input_scale=1 / 127, output_scale=1.0,
                              layers=layers, info={})
    program = build_program(lowered, config_max_features=64)
    program.meta["info"].update(float_accuracy=0.5, int8_accuracy=0.5, config={"densities": [], "bits": []})
    return program


@pytest.fixture(scope="module")
def case():
    program = sparse_program()
    x = random_vectors(np.random.default_rng(1), 3, SHAPES[0])
    net = golden_network_data(program, x)
    return program, net, network_energy(net, load_energy_table())


def test_sparse_layers_get_their_own_scenarios(case):
    _, net, res = case
    assert all(layer.mode == HUFFMAN for layer in net.layers)
    assert set(res) == {"fp32", "int8", "deepcomp_engine", "deepcomp_entropy_floor"}
    assert res["deepcomp_engine"].scenario.reference


def test_engine_scenario_prices_the_measured_dram_words(case):
    _, net, res = case
    table = load_energy_table()
    words = sum(net.counters(i)["dram_read_words"] + net.counters(i)["dram_write_words"]
                for i in range(len(net.layers)))
    dram = sum(res["deepcomp_engine"].by_component(i)["dram"] for i in range(len(net.layers)))
    assert dram == pytest.approx(words * table.pj("dram_32b"))
    # The stream the golden model reads per layer is the descriptor plus the measured stream words.
    for i, layer in enumerate(net.layers):
        assert net.counters(i)["dram_read_words"] == DESC_WORDS + layer.stream_words


def test_histogram_counts_every_symbol(case):
    _, net, _ = case
    for i, layer in enumerate(net.layers):
        assert sum(layer.index_histogram) == layer.symbols == net.counters(i)["huffman_symbols"]


def test_entropy_floor_is_below_the_code_and_above_zero(case):
    _, net, res = case
    eng, floor = res["deepcomp_engine"], res["deepcomp_entropy_floor"]
    assert 0 < floor.total() <= eng.total()
    for i, layer in enumerate(net.layers):
        measured = net.counters(i)["huffman_bits"]
        at_entropy = layer.symbols * layer.entropy_bits()
        # A static prefix code is never shorter than the entropy, and Huffman is within a bit per symbol.
        assert at_entropy <= measured + 1e-9 < at_entropy + layer.symbols
        saved = (measured - at_entropy) / WORD_BITS * load_energy_table().pj("dram_32b")
        assert eng.by_component(i)["dram"] - floor.by_component(i)["dram"] == pytest.approx(saved)


def test_cycles_are_one_per_symbol_when_estimated(case):
    _, net, _ = case
    for i in range(len(net.layers)):
        assert part_cycles(net, i)[0] == net.counters(i)["huffman_symbols"]


def test_dense_baselines_match_a_dense_program_of_the_same_shapes(case):
    """fp32/int8 come from the shapes alone, whatever the coding."""
    from model.program.synthetic import random_lowered
    _, net, res = case
    lowered = random_lowered(np.random.default_rng(5), LANES, SHAPES, 16)
    dense = build_program(lowered, codebook_depth=16, config_max_features=64)
    dnet = golden_network_data(dense, random_vectors(np.random.default_rng(1), 3, SHAPES[0]))
    dres = network_energy(dnet, load_energy_table())
    for key in ("fp32", "int8"):
        assert res[key].total() == pytest.approx(dres[key].total())


def test_report_tables(case):
    program, net, _ = case
    rows = layer_table(program.meta)
    assert len(rows) == 2 + len(SHAPES) - 1 + 1
    assert f"{program.meta['compression']['ratio_vs_fp32']:.1f}x" in rows[-1]
    traffic = traffic_table(net)
    assert len(traffic) == 2 + len(SHAPES) - 1 + 1
    # The decoder's rate: two codes a step, a row's odd last symbol alone.
    for i, row in enumerate(traffic[2:-1]):
        c = net.counters(i)
        rate = c["huffman_symbols"] / c["huffman_busy_cycles"]
        assert row.endswith(f"| {rate:.3f} |") and 1 < rate <= 2
