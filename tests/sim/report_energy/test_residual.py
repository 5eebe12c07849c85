"""The residual add in the energy report: every scenario prices it by its counters (its descriptor, two
activation reads and one write per lane-word, its adds), no weights; the saving layer's skip-buffer writes."""
from __future__ import annotations

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.layout import DESC_WORDS
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_residual_lowered
from model.program.writer import build_program, place_in_weight_sram
from sim.report.energy.golden import golden_network_data
from sim.report.energy.network import layer_ideal_cycles
from sim.report.energy.pricing import network_energy
from sim.report.energy.table import load_energy_table

LANES, IMAGES = 4, 3


def events(energy, part: int, what: str) -> float:
    return sum(e.count for e in energy.parts[part].events if e.what.startswith(what))


@pytest.mark.parametrize("seed", [1, 2])
def test_the_add_is_priced_by_its_counters_in_every_scenario(seed):
    rng = np.random.default_rng(seed)
    program = build_program(random_residual_lowered(rng, LANES, 40, 16), codebook_depth=16)
    x = random_vectors(rng, IMAGES, program.meta["input_features"])
    placed = place_in_weight_sram(program, 0)
    image, _, _ = placed.dram_image(x)
    direct = GoldenEngine(placed.config).run(image).layer_counters
    net = golden_network_data(placed, x)
    table = load_energy_table()
    adds = [i for i, layer in enumerate(net.layers) if layer.kind == "add"]
    assert adds
    for i in adds:
        words = -(-net.layers[i].in_features // LANES)
        assert layer_ideal_cycles(net, i) == words   # one lane-word of both operands per cycle
        assert direct[i]["sram_reads"] == 2 * direct[i]["sram_writes"] // (2 if program.meta["layers"][i].get("save")
                                                                          else 1)
    for key, energy in network_energy(net, table).items():
        for i in adds:
            part = energy.parts[i]
            assert part.weight_bits == 0
            assert events(energy, i, "DRAM 32-bit words read") == DESC_WORDS
            for what in ("weight SRAM", "codebook", "int8 multiply", "fp32 multiply"):
                assert events(energy, i, what) == 0, (key, what)
            added = [e for e in part.events if e.what.startswith("adds")]
            assert sum(e.count for e in added) == direct[i]["adds"] / IMAGES == direct[i]["sram_reads"] / IMAGES * LANES / 2
            assert sum(e.pj for e in added) == pytest.approx(sum(e.count for e in added) * table.pj("int32_add"))
            assert events(energy, i, "activation SRAM reads") == direct[i]["sram_reads"] / IMAGES
            assert events(energy, i, "activation SRAM writes") == direct[i]["sram_writes"] / IMAGES
    saved = next(i for i, layer in enumerate(program.meta["layers"]) if layer.get("save"))
    assert direct[saved]["sram_writes"] == 2 * IMAGES * -(-program.meta["layers"][saved]["out_features"] // LANES)
