"""The engine's memory capacities, from its config to the priced events: activation SRAM, ROM, weight SRAM."""
from __future__ import annotations

import pytest

from model.contract.config import EngineConfig
from sim.report.energy.memories import OnChipMemories
from sim.report.energy.pricing import network_energy
from sim.report.energy.table import CAPACITY_RULE, KIB, load_energy_table

from energy_cases import SMALL, small_net

#: 4 lanes, 16 codewords: the engine of the small hand-checked network (energy_cases).
CODEWORDS = tuple((i, -i, 0, 1) for i in range(16))
#: Energy per 32-bit access by hand from the rule (log2-linear between 32 KiB = 20 and 1 MiB = 100 pJ per
#: 64 bits, halved for 32 bits): 64 KiB = 2^16 lies 1/5 of the way, 256 KiB = 2^18 3/5 of the way.
PJ_32B_64KIB = (0.8 * 20 + 0.2 * 100) / 2
PJ_32B_256KIB = (0.4 * 20 + 0.6 * 100) / 2
FLAT_PJ_32B = 5.0


@pytest.fixture(scope="module")
def table():
    return load_energy_table()


def test_capacities_come_from_the_engine_config():
    cfg = EngineConfig(lanes=4, codebook_depth=16, rom=CODEWORDS, max_features=32768, huffman_max_len=8,
                       huffman_symbol_bits=9, weight_sram_words=65536)
    m = OnChipMemories.of_engine(cfg)
    assert m.activation_sram_bytes == 2 * 32768  # two halves of max_features int8 values
    assert m.rom_bytes == 16 * 4
    assert m.codebook_sram_bytes == 16 * 4
    assert m.huffman_table_bytes == 2 ** 9 * 9 // 8
    assert m.huffman_symbol_bits == 9
    assert m.weight_sram_bytes == 65536 * 4
    assert m.activation_bytes(32) == 4 * 2 * 32768  # the fp32 baseline holds the same values in 4x the bytes
    assert OnChipMemories().activation_bytes(32) is None
    plain = OnChipMemories.of_engine(EngineConfig(lanes=4, codebook_depth=16, rom=CODEWORDS))
    assert (plain.huffman_table_bytes, plain.huffman_symbol_bits, plain.weight_sram_bytes) == (0, None, 0)


def test_a_huffman_symbol_read_is_as_wide_as_the_symbol_memory(table):
    """The RTL reads one ``symbol_bits``-wide entry per symbol: 9 bits cost 9/32 of a 32-bit 8 KB read;
    a network whose engine is not known keeps the 32-bit upper bound."""
    from sim.report.energy.events import counter_events
    counts = {"huffman_symbols": 1000}
    mem = OnChipMemories(huffman_table_bytes=2 ** 9 * 9 // 8, huffman_symbol_bits=9)
    huff = lambda m: sum(e.count * e.pj_each for e in counter_events(counts, 4, table, memories=m, cycles=0)  # noqa: E731
                         if e.component == "huffman")
    assert huff(mem) == pytest.approx(1000 * FLAT_PJ_32B * 9 / 32)
    assert huff(OnChipMemories()) == pytest.approx(1000 * FLAT_PJ_32B)


def test_activation_sram_of_a_64kb_engine_is_not_the_flat_figure(table):
    cfg = EngineConfig(lanes=4, codebook_depth=16, rom=CODEWORDS, max_features=32768)
    res = network_energy(small_net(memories=OnChipMemories.of_engine(cfg)), table)
    accesses = SMALL["sram_reads"] + SMALL["sram_writes"]
    # 64 KiB, 4 lanes x 8 bits = 32-bit accesses.
    assert res["engine"].by_component()["sram"] == pytest.approx(accesses * PJ_32B_64KIB)
    assert res["engine"].by_component()["sram"] != pytest.approx(accesses * FLAT_PJ_32B)
    # The 64-byte ROM and codebook SRAM are below 8 KB: the flat figure.
    assert res["engine"].by_component()["rom"] == pytest.approx(SMALL["rom_reads"] * FLAT_PJ_32B)
    assert res["vq_sram"].by_component()["codebook_sram"] == pytest.approx((16 + SMALL["rom_reads"]) * FLAT_PJ_32B)
    # The fp32 baseline's SRAM holds the same activations in 256 KiB; its accesses are 128 bits wide.
    assert res["fp32"].by_component()["sram"] == pytest.approx(accesses * PJ_32B_256KIB * 4)


def test_a_2kb_engine_prices_as_before(table):
    """LeNet-300-100's engine (max_features = 1024: 2 KB) is below the smallest anchor: unchanged."""
    cfg = EngineConfig(lanes=4, codebook_depth=16, rom=CODEWORDS, max_features=1024)
    sized = network_energy(small_net(memories=OnChipMemories.of_engine(cfg)), table)
    unknown = network_energy(small_net(), table)
    for key in unknown:
        assert sized[key].by_component() == unknown[key].by_component()


def test_weight_sram_counters_are_priced_at_its_capacity(table):
    cfg = EngineConfig(lanes=4, codebook_depth=16, rom=CODEWORDS, weight_sram_words=65536)  # 256 KiB
    counters = dict(SMALL, weight_sram_reads=10, weight_sram_writes=3)
    res = network_energy(small_net(counters=counters, memories=OnChipMemories.of_engine(cfg)), table)
    engine = res["engine"]
    # Writes are priced as reads: 13 accesses of 32 bits.
    assert engine.by_component()["weight_sram"] == pytest.approx(13 * PJ_32B_256KIB)
    events = {e.what: e for e in engine.events() if e.component == "weight_sram"}
    assert {e.count for e in events.values()} == {10, 3}
    assert all("256 KiB" in e.basis for e in events.values())
    # The dense baselines have no weight SRAM.
    assert "weight_sram" not in res["int8"].by_component() or res["int8"].by_component()["weight_sram"] == 0


def test_golden_data_carry_the_program_engine_capacities(table):
    """From a program built for a 64 KB activation SRAM, through the golden model, to the priced SRAM."""
    import numpy as np

    from model.codecs.vectors import random_vectors
    from model.program.synthetic import random_lowered
    from model.program.writer import build_program
    from sim.report.energy.golden import golden_network_data
    from sim.report.energy.network import IO

    rng = np.random.default_rng(3)
    program = build_program(random_lowered(rng, 4, [22, 9, 5], 16), codebook_depth=16, config_max_features=32768)
    net = golden_network_data(program, random_vectors(rng, 2, 22))
    assert net.memories == OnChipMemories.of_engine(program.config)
    assert net.memories.activation_sram_bytes == 64 * KIB
    res = network_energy(net, table)["engine"]
    accesses = sum(net.counters(p).get(k, 0) for p in [*range(len(net.layers)), IO]
                   for k in ("sram_reads", "sram_writes"))
    assert accesses > 0
    assert res.by_component()["sram"] == pytest.approx(accesses * PJ_32B_64KIB)


def test_the_report_states_the_capacity_rule(table):
    from sim.report.energy.registry import SCENARIOS
    from sim.report.sections.method import method_section

    md = "\n".join(method_section(table, SCENARIOS.values()))
    assert CAPACITY_RULE in md
    assert "`weight_sram_reads, weight_sram_writes`" in md
    assert "writes priced as reads (assumption" in md
