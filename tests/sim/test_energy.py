"""Energy model: table validation and the arithmetic of every scenario, checked by hand."""
from __future__ import annotations

import math

import pytest

from sim.report.energy import registry
from sim.report.energy.events import MAPPED_COUNTERS, Event, LayerCost
from sim.report.energy.golden import layers_from_decoded
from sim.report.energy.network import (CYCLES_MEASURED, CYCLES_SPLIT, IO, LAYER_MODES, PVQ, VQ, LayerInfo, NetworkData,
                                       part_cycles)
from sim.report.energy.pricing import energy_records, network_energy
from sim.report.energy.registry import register_scenario, scenarios_for
from sim.report.energy.table import REQUIRED_ENTRIES, EnergyTableError, load_energy_table

from energy_cases import IMAGES, IO_COUNTERS, SMALL, small_net


@pytest.fixture(scope="module")
def table():
    return load_energy_table()


def write(tmp_path, text):
    path = tmp_path / "table.toml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- the default table

def test_default_table_has_horowitz_values_and_sources(table):
    expected = {"dram_32b": 640, "sram_8kb_32b": 5, "sram_8kb_64b": 10, "sram_32kb_64b": 20,
                "sram_1mb_64b": 100, "int8_add": 0.03, "int32_add": 0.1, "int8_mult": 0.2,
                "int32_mult": 3.1, "fp16_add": 0.4, "fp16_mult": 1.1, "fp32_add": 0.9, "fp32_mult": 3.7}
    for name, pj in expected.items():
        assert table.pj(name) == pytest.approx(pj)
        assert "Horowitz" in table.entries[name].source
        assert not table.entries[name].assumption
    assert {e.name for e in table.assumptions} == {"rom_32b", "control_per_cycle", "zero_test"}
    # The assumptions are derived from published entries, not free numbers.
    assert table.pj("rom_32b") == table.pj("sram_8kb_32b")
    assert table.pj("control_per_cycle") == table.pj("int32_add")
    assert table.pj("zero_test") == table.pj("int8_add")


# ---------------------------------------------------------------- hand computations

def test_engine_scenario_by_hand(table):
    res = network_energy(small_net(), table, ["engine"])["engine"]
    comp = res.by_component()
    # (20 read + 1 written) words x 640 pJ
    assert comp["dram"] == pytest.approx(21 * 640)
    # 7 accesses of 4 lanes x 8 bits = 32 bits at 5 pJ per 32 bits
    assert comp["sram"] == pytest.approx(7 * 5)
    assert comp["rom"] == pytest.approx(4 * 5)
    # 16 MACs x (0.2 int8 mult + 0.1 int32 add)
    assert comp["mac"] == pytest.approx(16 * 0.3)
    # no cycle counter: 16 MACs / 4 lanes = 4 cycles x 0.1 pJ
    assert comp["control"] == pytest.approx(0.4)
    assert res.total() == pytest.approx(13440 + 35 + 20 + 4.8 + 0.4)
    # 2 index words x 32 bits over 16 weights
    assert res.bits_per_weight == pytest.approx(4.0)


def test_baselines_by_hand(table):
    res = network_energy(small_net(), table)
    # The dense baselines come from the shape: 8 descriptor words, 2 rows x 2 words of bias and
    # requantization, the dense weights; 2 x ceil(8/4) = 4 beats read, 16 MACs, 4 cycles; the
    # measured output writes (1 DRAM word, 3 SRAM) are kept.
    # (b) int8: 2 rows x ceil(8/4) = 4 words of weights; no ROM.
    assert res["int8"].total() == pytest.approx((8 + 4 + 4 + 1) * 640 + (4 + 3) * 5 + 4.8 + 0.4)
    assert res["int8"].bits_per_weight == pytest.approx(8.0)
    # (a) fp32: 16 words of weights; SRAM 4x wider (128 bits = 20 pJ); fp32 MAC 3.7 + 0.9.
    assert res["fp32"].total() == pytest.approx((8 + 4 + 16 + 1) * 640 + 7 * 20 + 16 * 4.6 + 0.4)
    assert res["fp32"].bits_per_weight == pytest.approx(32.0)
    assert "pvq_engine" not in res and "pvq_entropy_floor" not in res  # no PVQ layers here
    # (c) codebook of 16 x 4 bytes = 16 words loaded from DRAM, 16 SRAM writes,
    # and the 4 ROM reads become 4 SRAM reads.
    assert res["vq_sram"].by_component()["codebook_sram"] == pytest.approx((16 + 4) * 5)
    assert res["vq_sram"].total() == pytest.approx((20 + 16 + 1) * 640 + 35 + 100 + 4.8 + 0.4)
    assert res["vq_sram"].bits_per_weight == pytest.approx((2 + 16) * 32 / 16)
    # floor: histogram (2, 2, 0...) has entropy 1 bit; 4 indices -> 4 bits = 1/8 word.
    assert small_net().layers[0].entropy_bits() == pytest.approx(1.0)
    assert res["entropy_floor"].total() == pytest.approx((20 - 2 + 0.125 + 1) * 640 + 35 + 20 + 4.8 + 0.4)
    assert res["entropy_floor"].bits_per_weight == pytest.approx(4 / 16)


def test_width_scaling_with_eight_lanes(table):
    # 8 lanes: each SRAM or ROM access is 64 bits = 2 x the 32-bit figure,
    # which matches the table's own 8 KB 64-bit entry (10 pJ).
    counters = dict(SMALL, dram_read_words=18)  # stream is 2 rows x ceil(1 x 4 / 32) = 2 words
    both = network_energy(small_net(lanes=8, counters=counters, histogram=(1, 1) + (0,) * 14),
                          table, ["engine", "vq_sram"])
    res = both["engine"]
    assert res.by_component()["sram"] == pytest.approx(7 * table.pj("sram_8kb_64b"))
    assert res.by_component()["rom"] == pytest.approx(4 * 10)
    assert res.by_component()["control"] == pytest.approx(16 / 8 * 0.1)
    # (c): 16 codewords x 8 bytes = 32 DRAM words; 16 writes + 4 reads of 64 bits.
    vq = both["vq_sram"].by_component()
    assert vq["dram"] == pytest.approx((18 + 32 + 1) * 640)
    assert vq["codebook_sram"] == pytest.approx((16 + 4) * 10)


def test_rtl_cycle_counter_is_used(table):
    net = small_net(counters=dict(SMALL, cycles=9))
    res = network_energy(net, table, ["engine", "int8"])
    assert res["engine"].by_component()["control"] == pytest.approx(0.9)
    # The dense baseline runs one beat per cycle: 4 beats, whatever the engine measured.
    assert res["int8"].by_component()["control"] == pytest.approx(0.4)
    assert part_cycles(net, 0) == (9, CYCLES_MEASURED)


def test_rtl_total_cycles_split_by_macs(table):
    # Two layers with 16 and 12 MACs per inference; the RTL counted 14 cycles
    # per inference in total (28 over 2 images): 8 and 6 by MAC share.
    layers = [LayerInfo(8, 2, 4, 16, (2, 2) + (0,) * 14), LayerInfo(2, 3, 4, 16, (3,) + (0,) * 15)]
    c1 = dict(SMALL, dram_read_words=9, sram_reads=3, rom_reads=3, macs=12)
    net = NetworkData("two", 4, layers, [{k: 2 * v for k, v in c.items()} for c in (SMALL, c1)], 2, cycles=28)
    assert part_cycles(net, 0) == (pytest.approx(8), CYCLES_SPLIT)
    assert part_cycles(net, 1)[0] == pytest.approx(6)
    res = network_energy(net, table, ["engine"])["engine"]
    assert res.by_component()["control"] == pytest.approx(14 * 0.1)


def test_io_counters_by_hand(table):
    res = network_energy(small_net(io_counters=IO_COUNTERS), table)
    # engine: (6 read + 1 written) words per inference, 3 SRAM accesses of 32 bits, no cycles
    assert res["engine"].total(IO) == pytest.approx(7 * 640 + 3 * 5)
    assert res["int8"].total(IO) == pytest.approx(7 * 640 + 3 * 5)
    # fp32: header 4 words per inference unchanged, 2 input words -> 8, 1 output word -> 4;
    # SRAM accesses 4x wider (128 bits = 20 pJ)
    assert res["fp32"].total(IO) == pytest.approx((4 + 8 + 4) * 640 + 3 * 20)
    assert res["engine"].total() == pytest.approx(res["engine"].total(0) + res["engine"].total(IO))
    assert res["engine"].bits_per_weight == pytest.approx(4.0)  # I/O carries no weights
    recs = energy_records(small_net(io_counters=IO_COUNTERS), res)
    assert {r["layer"] for r in recs} == {0, "io", "total"}


def test_layers_from_decoded():
    import types

    import numpy as np

    from model.contract.layout import LayerMode

    # 2 indices of 4 bits per row: 1 word, after the 2 header words.
    desc = types.SimpleNamespace(in_features=8, out_features=2, codebook_size=16, mode=LayerMode.VQ, row_words=3,
                                 compact=False)
    dec = types.SimpleNamespace(desc=desc, events={"indices": np.array([[0, 1], [1, 1]])})
    layer, = layers_from_decoded([dec], index_bits=4)
    assert (layer.in_features, layer.out_features, layer.codebook_size, layer.index_bits) == (8, 2, 16, 4)
    assert layer.mode == VQ and layer.code == "VQ k=16"
    assert layer.index_histogram == (1, 3) + (0,) * 14
    assert layer.entropy_bits() == pytest.approx(-(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75)))
    # A descriptor whose row words disagree with the entry width is refused, not mis-sized.
    with pytest.raises(ValueError, match="words per row"):
        layers_from_decoded([types.SimpleNamespace(desc=types.SimpleNamespace(
            **dict(vars(desc), row_words=4)), events=dec.events)], index_bits=4)


def test_layers_from_decoded_pvq_uses_the_entry_width():
    import types

    import numpy as np

    from model.contract.layout import LayerMode

    # PVQ, K = 2 in 4 lanes: 15-bit entries (7-bit index + 8-bit scale); 3 entries per row = 45 bits
    # = 2 words, while the VQ index width (8) would give 1 word.
    desc = types.SimpleNamespace(in_features=12, out_features=2, codebook_base=2, codebook_size=15, pvq_k=2,
                                 entry_bits=15, mode=LayerMode.PVQ, row_words=4, compact=False)
    dec = types.SimpleNamespace(desc=desc, events={"indices": np.array([[0, 5, 5], [5, 7, 0]]),
                                                   "scales": np.array([[3, 3, 3], [3, 3, 9]])})
    layer, = layers_from_decoded([dec], index_bits=8)
    assert (layer.mode, layer.pvq_k, layer.index_bits, layer.codebook_size) == (PVQ, 2, 15, 0)
    assert layer.index_stream_words(4) == 2 * 2
    assert layer.code == "PVQ K=2"
    # Entropy per entry: index (2/6, 3/6, 1/6) plus scale (5/6, 1/6).
    h = lambda *p: -sum(q * np.log2(q) for q in p)  # noqa: E731
    assert layer.entropy_bits() == pytest.approx(h(2 / 6, 3 / 6, 1 / 6) + h(5 / 6, 1 / 6))


def pvq_net(counters, **kw) -> NetworkData:
    """The small network's shape coded with PVQ, K = 2: 15-bit entries, 2 per row = 1 word per row."""
    layer = LayerInfo(in_features=8, out_features=2, index_bits=15, codebook_size=0, mode=PVQ, pvq_k=2,
                      index_histogram=(2, 2), scale_histogram=(1, 3), name="fc")
    return NetworkData("small-pvq", 4, [layer], [{k: v * IMAGES for k, v in counters.items()}], IMAGES,
                       method="pvq", **kw)


# The PVQ layer's counters per inference: same DRAM and SRAM traffic as SMALL, no ROM reads or
# MACs, K = 2 adds for each of the 4 sub-vectors.
PVQ_SMALL = dict(SMALL, rom_reads=0, macs=0, adds=8)


def test_pvq_scenarios_by_hand(table):
    res = network_energy(pvq_net(PVQ_SMALL), table)
    # Only scenarios that price PVQ layers: no codebook ROM or SRAM for a layer that has none.
    assert list(res) == ["fp32", "int8", "pvq_engine", "pvq_entropy_floor"]
    eng = res["pvq_engine"].by_component()
    assert eng["dram"] == pytest.approx(21 * 640)
    assert eng["add"] == pytest.approx(8 * 0.1)
    # One scale multiply per sub-vector (4), priced as an int8 MAC.
    assert eng["mac"] == pytest.approx(4 * 0.3)
    assert "rom" not in eng or eng["rom"] == 0
    # No cycle counter: ideal cycles are one per pulse.
    assert eng["control"] == pytest.approx(8 * 0.1)
    assert res["pvq_engine"].bits_per_weight == pytest.approx(2 * 32 / 16)
    # Floor: entries at H(index) + H(scale) = 1 + 0.811 bits; 4 entries replace the 2-word stream.
    h = 1 + -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    floor = res["pvq_entropy_floor"].by_component()
    assert floor["dram"] == pytest.approx((20 - 2 + 4 * h / 32 + 1) * 640)
    with pytest.raises(ValueError, match="does not apply"):
        network_energy(pvq_net(PVQ_SMALL), table, ["engine"])
    with pytest.raises(ValueError, match="does not apply"):
        network_energy(small_net(), table, ["pvq_engine"])


def test_dense_baselines_do_not_depend_on_the_coding(table):
    """The fault this guards against: a PVQ program's baselines sized with the VQ index width
    and priced with its adds, so its fp32 baseline differed from the k-means program's."""
    vq = network_energy(small_net(), table)
    pvq = network_energy(pvq_net(PVQ_SMALL), table)
    for key in ("fp32", "int8"):
        assert pvq[key].by_component() == pytest.approx(vq[key].by_component())
        assert pvq[key].bits_per_weight == vq[key].bits_per_weight


def test_layer_sums_and_records(table):
    layers = [LayerInfo(8, 2, 4, 16, (2, 2) + (0,) * 14), LayerInfo(2, 3, 4, 16, (3,) + (0,) * 15)]
    c0 = dict(SMALL)
    c1 = dict(SMALL, dram_read_words=9, sram_reads=3, rom_reads=3, macs=12)
    net = NetworkData("two", 4, layers, [c0, c1], 1)
    res = network_energy(net, table)
    recs = energy_records(net, res)
    assert {r["scenario"] for r in recs} == set(scenarios_for(net))
    assert {"fp32", "int8", "vq_sram", "engine", "entropy_floor"} <= set(res)
    for key, r in res.items():
        assert r.total() == pytest.approx(r.total(0) + r.total(1))
        tot = sum(x["pj"] for x in recs if x["scenario"] == key and x["layer"] == "total")
        per_layer = sum(x["pj"] for x in recs if x["scenario"] == key and x["layer"] != "total")
        assert tot == pytest.approx(per_layer) == pytest.approx(r.total())
    # layer 1 engine by hand: (9 + 1) x 640 + (3 + 3) x 5 + 3 x 5 + 12 x 0.3 + 3 x 0.1
    assert res["engine"].total(1) == pytest.approx(6400 + 30 + 15 + 3.6 + 0.3)


def test_user_table_changes_results(tmp_path, table):
    text = load_energy_table().path
    custom = open(text).read().replace("pj = 640.0", "pj = 1000.0").replace("pj = 5.0", "pj = 7.0")
    user = load_energy_table(write(tmp_path, custom))
    assert user.pj("rom_32b") == 7.0  # follows its same_as entry
    res = network_energy(small_net(), user, ["engine"])["engine"]
    assert res.total() == pytest.approx(21 * 1000 + 7 * 7 + 4 * 7 + 4.8 + 0.4)


def test_new_scenario_is_one_registration(monkeypatch, table):
    monkeypatch.setattr(registry, "SCENARIOS", dict(registry.SCENARIOS))

    @register_scenario("half", "half the engine", "The engine at half the energy.")
    def _half(net, i, tbl):
        base = registry.SCENARIOS["engine"].cost(net, i, tbl)
        return LayerCost([Event(e.component, e.what, e.count / 2, e.pj_each, e.basis)
                                 for e in base.events], base.weight_bits)

    res = network_energy(small_net(), table)
    assert res["half"].total() == pytest.approx(res["engine"].total() / 2)
    with pytest.raises(ValueError, match="twice"):
        register_scenario("half", "again", "")(_half)
    # A scenario for one method only, and one for PVQ layers too.
    register_scenario("uni", "universal only", "", when=lambda net: net.method == "universal")(_half)
    register_scenario("any", "any layer", "", modes=LAYER_MODES)(_half)
    assert "uni" not in scenarios_for(small_net()) and "any" in scenarios_for(pvq_net(PVQ_SMALL))
    assert "uni" in scenarios_for(small_net(method="universal"))


# ---------------------------------------------------------------- invalid inputs

def test_every_engine_counter_has_a_mapping():
    from model.contract.counters import COUNTERS, RTL_COUNTERS

    # A counter added to the contract must get an explicit energy mapping.
    assert set(COUNTERS) | set(RTL_COUNTERS) <= MAPPED_COUNTERS
    with pytest.raises(ValueError, match="no energy mapping"):
        small_net(counters=dict(SMALL, mystery_events=3))


def test_inconsistent_network_data_is_rejected(table):
    with pytest.raises(ValueError, match="histogram"):
        small_net(histogram=(1,) + (0,) * 15)
    with pytest.raises(ValueError, match="index stream"):
        network_energy(small_net(counters=dict(SMALL, dram_read_words=1)), table, ["entropy_floor"])
    with pytest.raises(ValueError, match="unknown scenario"):
        network_energy(small_net(), table, ["nope"])
    with pytest.raises(ValueError, match="PVQ layer needs"):
        LayerInfo(8, 2, 15, 0, mode=PVQ)
    with pytest.raises(ValueError, match="layer mode"):
        LayerInfo(8, 2, 4, 16, mode="dense")
    with pytest.raises(ValueError, match="scale histogram"):
        NetworkData("x", 4, [LayerInfo(8, 2, 15, 0, (2, 2), mode=PVQ, pvq_k=2, scale_histogram=(1,))],
                    [PVQ_SMALL], 1)
    with pytest.raises(ValueError, match="modes"):
        register_scenario("bad", "bad", "", modes=("dense",))
    with pytest.raises(ValueError, match="counter sets"):
        NetworkData("x", 4, [LayerInfo(8, 2, 4, 16)], [], 1)


VALID_ENTRY = 'pj = 1.0\nsource = "somewhere"\n'
REQUIRED = "".join(f"[entries.{k}]\n{VALID_ENTRY}" for k in REQUIRED_ENTRIES)


@pytest.mark.parametrize("text, message", [
    ("[entries.dram_32b\npj = 1", "invalid TOML"),
    ("[meta]\nname = 'x'\n", "no [entries"),
    (REQUIRED.replace("[entries.rom_32b]\n" + VALID_ENTRY, ""), "missing entry(ies) rom_32b"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0", "[entries.dram_32b]\npj = -640.0"),
     "must not be negative"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0", "[entries.dram_32b]\npj = \"640\""),
     "must be a number"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0", "[entries.dram_32b]\npj = true"), "must be a number"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0", "[entries.dram_32b]\npj = nan"), "must be a number"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0\nsource = \"somewhere\"", "[entries.dram_32b]\npj = 1.0"),
     "missing 'source'"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0\nsource = \"somewhere\"",
                      "[entries.dram_32b]\npj = 1.0\nsource = \"  \""), "missing 'source'"),
    (REQUIRED.replace("[entries.dram_32b]\npj = 1.0", "[entries.dram_32b]\npJ = 1.0"), "unknown key"),
    (REQUIRED.replace("[entries.rom_32b]\npj = 1.0", "[entries.rom_32b]\nsame_as = \"nope\""),
     "unknown entry"),
    (REQUIRED.replace("[entries.rom_32b]\npj = 1.0", "[entries.rom_32b]\nsame_as = \"rom_32b\""), "cycle"),
    (REQUIRED.replace("[entries.rom_32b]\npj = 1.0", "[entries.rom_32b]\npj = 1.0\nsame_as = \"dram_32b\""),
     "exactly one of"),
    (REQUIRED.replace("[entries.rom_32b]\npj = 1.0", "[entries.rom_32b]\nsame_as = \"dram_32b\"\nscale = -1"),
     "'scale' must not be negative"),
    (REQUIRED + "[entries.extra]\npj = 1.0\nsource = \"x\"\nassumption = \"yes\"\n", "'assumption' must be"),
])
def test_invalid_table_gives_one_line_error(tmp_path, text, message):
    with pytest.raises(EnergyTableError) as err:
        load_energy_table(write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_valid_minimal_table_loads(tmp_path):
    assert load_energy_table(write(tmp_path, REQUIRED)).pj("dram_32b") == 1.0


def test_missing_table_file(tmp_path):
    with pytest.raises(EnergyTableError, match="file not found"):
        load_energy_table(tmp_path / "nope.toml")


def test_every_layer_codec_names_registered_scenarios():
    """Each layer kind's codec names the scenarios that price it; each must exist and price that kind."""
    from model.codecs.layers.registry import layer_codecs
    from sim.report.energy import pricing  # noqa: F401  registers the built-in scenarios
    from sim.report.energy.registry import SCENARIOS
    for codec in layer_codecs():
        assert codec.scenarios, f"{codec.name}: no energy scenario prices it"
        for key in codec.scenarios:
            assert key in SCENARIOS, f"{codec.name} names {key!r}, which is not registered"
            assert SCENARIOS[key].prices(codec.name)
        # Exactly one scenario prices a kind's counters as measured: the engine itself.
        assert sum(SCENARIOS[k].reference for k in codec.scenarios) == 1, codec.name
