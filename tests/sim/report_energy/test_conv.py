"""Convolution and pooling in the energy report: every scenario against the program's metadata and the golden
model's counters, on small random windowed programs (conv, max or average pool, conv, FC)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.codecs.layers.kinds import kind_named
from model.codecs.vectors import random_vectors
from model.contract.ints import ceil_div
from model.contract.layout import DESC_WORDS, ROW_HEADER_WORDS, WORD_BYTES
from model.contract.window import Window
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_windowed_lowered
from model.program.writer import build_program, place_in_weight_sram
from sim.report.document import write_report
from sim.report.energy.golden import golden_network_data
from sim.report.energy.network import IO
from sim.report.energy.pricing import network_energy
from sim.report.energy.pvq import pvq_engine_events
from sim.report.energy.resident import SweepPoint, resident_sweep, sweep_energy, sweep_points, sweep_records
from sim.report.energy.table import load_energy_table
from sim.report.files import PLOT_RESIDENT

LANES, DEPTH = 4, 16
#: Seeds whose programs apply both convolutions at several output positions: average pooling (0), max pooling
#: (7, 10).
SEEDS = (0, 7, 10)
#: The pooling kinds (layers without rows).
POOLS = ("maxpool", "avgpool")
#: Images of the streamed run and of the sweep's jobs.
IMAGES = 3
#: Weight-SRAM capacities of the small sweep (KiB): none, and one that holds every stream.
NONE, ALL = 0, 1


def windowed_program(seed: int, pvq_k_max: int = 0):
    rng = np.random.default_rng(seed)
    lowered, n_in = random_windowed_lowered(rng, LANES, DEPTH, pvq_k_max=pvq_k_max)
    program = build_program(lowered, codebook_depth=DEPTH, config_max_features=4096, pvq_k_max=pvq_k_max)
    return program, random_vectors(rng, IMAGES, n_in)


def positions(meta_layer: dict) -> int:
    """Output positions of a layer, from the program's metadata (1 for FC)."""
    window = meta_layer.get("window")
    return Window(**window).positions() if window else 1


def golden_counters(program, x, capacity_kib: int = 0) -> list[dict]:
    """A direct golden run's counters per layer, summed over the images, of the program placed at a capacity."""
    placed = place_in_weight_sram(program, capacity_kib * 256)
    image, _, _ = placed.dram_image(x)
    return GoldenEngine(placed.config).run(image).layer_counters


@pytest.fixture(scope="module")
def table():
    return load_energy_table()


@pytest.fixture(scope="module", params=SEEDS)
def case(request, table):
    program, x = windowed_program(request.param)
    net = golden_network_data(place_in_weight_sram(program, 0), x)
    return program, x, net, network_energy(net, table)


def events(energy, part: int, what: str) -> float:
    """Events per inference of one layer of a scenario whose description starts with ``what``."""
    return sum(e.count for e in energy.parts[part].events if e.what.startswith(what))


def test_layer_facts_come_from_the_program(case):
    program, _, net, _ = case
    meta = program.meta["layers"]
    kinds = [layer.kind for layer in net.layers]
    assert kinds == [m["kind"] for m in meta] and kinds[1] in POOLS and kinds[::2] + kinds[3:] == ["conv", "conv", "fc"]
    for layer, m in zip(net.layers, meta):
        assert (layer.in_features, layer.out_features, layer.positions) == \
            (m["in_features"], m["out_features"], positions(m))
        assert layer.mode == m["mode"] and layer.has_rows == (m["mode"] is not None)
    assert net.layers[1].weights == 0 and net.weights == sum(m["in_features"] * m["out_features"]
                                                             for m in meta if m["mode"] is not None)
    assert all(layer.positions > 1 for layer in net.layers if layer.kind == "conv")


def test_dense_baselines_apply_a_convolution_at_every_position(case):
    """MACs and activation reads at every output position, weights from DRAM once per image.

    Fails if a convolution is priced as one FC application: its MACs would be ``in x out``, not
    ``positions x in x out`` (every convolution here has more than one position)."""
    program, _, net, res = case
    for i, m in enumerate(program.meta["layers"]):
        if m["kind"] != "conv":
            continue
        n_in, n_out, pos = m["in_features"], m["out_features"], positions(m)
        window = Window(**m["window"])
        assert n_in % LANES == 0   # rows of whole lane-words: the padded lanes are no extra MACs
        for key in ("fp32", "int8"):
            macs = events(res[key], i, f"{'fp32' if key == 'fp32' else 'int8'} multiply-accumulates")
            assert macs == pos * n_out * n_in == kind_named("conv").macs(n_in, n_out, window) > n_in * n_out
            assert events(res[key], i, "activation SRAM reads") == pos * n_out * n_in // LANES
        # Weights once per image: the descriptor, per row bias and requantization, the dense weights.
        header = DESC_WORDS + n_out * ROW_HEADER_WORDS
        assert events(res["fp32"], i, "DRAM 32-bit words read") == header + n_in * n_out
        assert events(res["int8"], i, "DRAM 32-bit words read") == header + n_out * ceil_div(n_in, WORD_BYTES)
        assert res["fp32"].parts[i].weight_bits == 32 * n_in * n_out


def test_the_engine_scenarios_price_the_golden_counters(case):
    """(d) is the golden model's counters; (c) the same plus each codebook loaded from DRAM once per image."""
    program, x, net, res = case
    direct = golden_counters(program, x)
    for i, m in enumerate(program.meta["layers"]):
        c = {k: v / IMAGES for k, v in direct[i].items()}
        assert events(res["engine"], i, "DRAM 32-bit words read") == pytest.approx(c["dram_read_words"])
        assert events(res["engine"], i, "activation SRAM reads") == pytest.approx(c["sram_reads"])
        assert events(res["engine"], i, "int8 multiply-accumulates") == pytest.approx(c["macs"])
        load = ceil_div(m["codebook_size"] * LANES, WORD_BYTES) if m["mode"] == "vq" else 0
        assert events(res["vq_sram"], i, "DRAM 32-bit words read") == pytest.approx(c["dram_read_words"] + load)
        assert events(res["vq_sram"], i, "codebook SRAM reads") == pytest.approx(c["rom_reads"])
        if m["kind"] == "conv":
            # The streamed convolution reads its stream from DRAM at every output position.
            assert c["dram_read_words"] == DESC_WORDS + positions(m) * net.layers[i].stream_words


def test_the_entropy_floor_recodes_the_stream_at_every_read(case):
    _, _, net, res = case
    for i, layer in enumerate(net.layers):
        if not layer.has_rows:
            continue
        saved = layer.index_stream_words(LANES) - layer.indices(LANES) * layer.entropy_bits() / 32
        measured = events(res["engine"], i, "DRAM 32-bit words read")
        assert events(res["entropy_floor"], i, "DRAM 32-bit words read") == \
            pytest.approx(measured - layer.positions * saved)


def test_a_resident_convolution_reads_its_stream_from_dram_once_per_job(table):
    program, x = windowed_program(SEEDS[0])
    sweep = resident_sweep(program, x, "conv", sweep_points((NONE, ALL), (1, IMAGES)))
    priced = sweep_energy(sweep, table)
    streamed, resident = golden_counters(program, x, NONE), golden_counters(program, x, ALL)
    resident_meta = place_in_weight_sram(program, ALL * 256).meta["layers"]
    dram_pj = table.pj("dram_32b")
    for i, m in enumerate(resident_meta):
        saved = streamed[i]["dram_read_words"] - resident[i]["dram_read_words"]
        # The golden model's counters, as the sweep priced them.
        assert sweep.runs[SweepPoint(ALL, IMAGES)].per_layer_counters[i] == resident[i]
        dram = [priced[SweepPoint(c, IMAGES)].engine.by_component(i)["dram"] for c in (NONE, ALL)]
        assert dram[0] - dram[1] == pytest.approx(saved * dram_pj / IMAGES)
        if m["kind"] == "conv":
            # What the golden model says: all but one of the stream's reads in the job come from the weight SRAM.
            assert m["placement"]["resident"]
            assert saved == resident[i]["weight_sram_reads"] == (positions(m) * IMAGES - 1) * m["placement"]["words"]
            sram = priced[SweepPoint(ALL, IMAGES)].engine.by_component(i)["weight_sram"]
            assert sram > 0 and priced[SweepPoint(ALL, IMAGES)].resident_layers[i]
        if m["kind"] in POOLS:
            assert saved == 0 and not priced[SweepPoint(ALL, IMAGES)].resident_layers[i]


def test_pooling_costs_no_weight_reads(case, table):
    """Max pooling: its descriptor and activation reads and writes; average pooling: those and its adds."""
    program, x, net, res = case
    pools = [i for i, layer in enumerate(net.layers) if layer.kind in POOLS]
    direct = golden_counters(program, x)
    for key, energy in res.items():
        for i in pools:
            part = energy.parts[i]
            assert part.weight_bits == 0
            assert events(energy, i, "DRAM 32-bit words read") == DESC_WORDS   # its descriptor, no stream
            for what in ("weight SRAM", "codebook", "int8 multiply", "fp32 multiply"):
                assert events(energy, i, what) == 0, (key, what)
            adds = [e for e in part.events if e.what.startswith("adds")]
            average = net.layers[i].kind == "avgpool"
            assert sum(e.count for e in adds) == (direct[i]["adds"] / IMAGES if average else 0), key
            assert (direct[i]["adds"] == direct[i]["sram_reads"] * LANES) if average else direct[i]["adds"] == 0
            # One 32-bit add each, on top of what max pooling's counters cost.
            assert sum(e.pj for e in adds) == pytest.approx(sum(e.count for e in adds) * table.pj("int32_add"))
            assert events(energy, i, "activation SRAM reads") == direct[i]["sram_reads"] / IMAGES
            assert events(energy, i, "activation SRAM writes") == direct[i]["sram_writes"] / IMAGES
    # Resident or not, a pooling layer costs the same.
    sweep = resident_sweep(program, x, "conv", sweep_points((NONE, ALL), (IMAGES,)))
    priced = sweep_energy(sweep, table)
    for i in pools:
        assert priced[SweepPoint(ALL, IMAGES)].engine.total(i) == priced[SweepPoint(NONE, IMAGES)].engine.total(i)
        assert priced[SweepPoint(ALL, IMAGES)].run.per_layer_counters[i]["weight_sram_reads"] == 0


def test_pvq_scale_multiplies_at_every_position(table):
    """A PVQ convolution multiplies each sub-vector's sum by its scale at every output position."""
    for seed in range(40):
        program, x = windowed_program(seed, pvq_k_max=3)
        pvq = [i for i, m in enumerate(program.meta["layers"]) if m["kind"] == "conv" and m["mode"] == "pvq"
               and positions(m) > 1]
        if pvq:
            break
    net = golden_network_data(place_in_weight_sram(program, 0), x)
    i = pvq[0]
    m = program.meta["layers"][i]
    scale = [e for e in pvq_engine_events(net, i, table, net.counters(i)) if e.what.startswith("PVQ scale")]
    assert scale[0].count == positions(m) * m["out_features"] * ceil_div(m["in_features"], LANES)


def test_report_of_a_convolutional_program(tmp_path, table):
    program, x = windowed_program(SEEDS[1])
    net = golden_network_data(place_in_weight_sram(program, 0), x)
    sweep = resident_sweep(program, x, net.name, sweep_points((NONE, ALL), (1, IMAGES)))
    written = write_report(tmp_path, [net], [], resident=[sweep])
    assert PLOT_RESIDENT in written and (tmp_path / PLOT_RESIDENT).read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "REPORT.md").read_text()
    assert "| 1 | maxpool |" in md and "MACs / image" in md and "(c) VQ, codebooks from DRAM" in md
    records = json.loads((tmp_path / "energy.json").read_text())
    mine = {r["scenario"] for r in records if r["network"] == net.name}
    assert {f"{k}_N{n}" for k in ("fp32", "int8", "vq_sram", "engine_streamed") for n in (1, IMAGES)} <= mine
    assert f"engine_resident_{ALL}KiB_N{IMAGES}" in mine
    assert mine >= {r["scenario"] for r in sweep_records(sweep_energy(sweep, table))}
    # Per layer and in total, a pooling layer included.
    layers = {r["layer"] for r in records if r["network"] == net.name and r["scenario"] == f"int8_N{IMAGES}"}
    assert layers == {0, 1, 2, 3, IO, "total"}
