"""Weights resident on chip: the sweep's counters from the golden model, their energy, and the report's section."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.contract.config import WORDS_PER_KIB
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered
from model.program.writer import build_program, place_in_weight_sram
from sim.report.document import write_report
from sim.report.energy.events import memory_access_energy
from sim.report.energy.resident import (SWEEP_CAPACITIES_KIB, SWEEP_JOB_IMAGES, SweepPoint, resident_sweep,
                                        sweep_energy, sweep_points, sweep_records)
from sim.report.energy.table import load_energy_table
from sim.report.files import PLOT_RESIDENT
from sim.report.sections.resident import TARGETS, resident_section

#: Layer widths of the synthetic program: layer 0's stream (64 rows of 2 + 50 words) does not fit 1 KiB
#: (256 words), layers 1 and 2 do; 4 KiB holds all three.
SHAPES = [200, 64, 24, 10]
#: Capacities (KiB) of the small sweep: none, part of the layers, all of them.
NONE, PART, ALL = 0, 1, 4
#: Job sizes of the small sweep.
JOBS = (1, 4)


@pytest.fixture(scope="module")
def table():
    return load_energy_table()


@pytest.fixture(scope="module")
def program():
    rng = np.random.default_rng(7)
    lowered = random_lowered(rng, 4, SHAPES, 16, codebook_sizes=[16, 16, 16])
    return build_program(lowered, config_max_features=256, codebook_depth=16)


@pytest.fixture(scope="module")
def inputs():
    return random_vectors(np.random.default_rng(8), max(JOBS), SHAPES[0])


@pytest.fixture(scope="module")
def sweep(program, inputs):
    return resident_sweep(program, inputs, "synthetic", sweep_points((NONE, PART, ALL), JOBS))


@pytest.fixture(scope="module")
def priced(sweep, table):
    return sweep_energy(sweep, table)


def stream_words(program) -> list[int]:
    return [layer["placement"]["words"] for layer in program.meta["layers"]]


def test_the_capacities_place_part_and_all_of_the_layers(program, priced):
    words = stream_words(program)
    assert words[0] > PART * WORDS_PER_KIB >= sum(words[1:]) and sum(words) <= ALL * WORDS_PER_KIB
    assert priced[SweepPoint(NONE, 4)].resident_layers == (False, False, False)
    assert priced[SweepPoint(PART, 4)].resident_layers == (False, True, True)
    assert priced[SweepPoint(ALL, 4)].resident_layers == (True, True, True)
    assert priced[SweepPoint(ALL, 4)].resident_words == sum(words)


def test_counters_are_a_direct_golden_run_of_the_placed_program(program, inputs, sweep):
    for point, run in sweep.runs.items():
        placed = place_in_weight_sram(program, point.words)
        image, _, _ = placed.dram_image(inputs[:point.job_images])
        direct = GoldenEngine(placed.config).run(image)
        assert run.images == point.job_images
        assert [dict(c) for c in run.per_layer_counters] == direct.layer_counters
        assert dict(run.io_counters) == direct.io_counters
        assert run.memories.weight_sram_bytes == point.capacity_kib * 1024


def test_resident_layers_cost_less_than_streamed_ones_in_jobs_of_several_images(priced):
    streamed = priced[SweepPoint(NONE, 4)].engine
    for capacity in (PART, ALL):
        resident = priced[SweepPoint(capacity, 4)].engine
        assert resident.total() < streamed.total()
        assert resident.by_component()["dram"] < streamed.by_component()["dram"]
        assert resident.by_component()["weight_sram"] > 0
    assert priced[SweepPoint(ALL, 4)].engine.by_component()["dram"] < \
        priced[SweepPoint(PART, 4)].engine.by_component()["dram"]


def test_a_job_of_one_image_is_the_streamed_traffic_plus_the_weight_sram_writes(program, sweep, priced, table):
    streamed_run = sweep.runs[SweepPoint(NONE, 1)]
    for capacity in (PART, ALL):
        point = SweepPoint(capacity, 1)
        run = sweep.runs[point]
        for layer, (res, ref) in enumerate(zip(run.per_layer_counters, streamed_run.per_layer_counters)):
            written = stream_words(program)[layer] if priced[point].resident_layers[layer] else 0
            assert res == dict(ref, weight_sram_writes=written, weight_sram_reads=0)
        pj, _ = memory_access_energy(table, point.words * 4, 32)
        writes = sum(c["weight_sram_writes"] for c in run.per_layer_counters)
        assert priced[point].engine.total() == pytest.approx(priced[SweepPoint(NONE, 1)].engine.total() + writes * pj)


@pytest.mark.parametrize("capacity", [ALL, 64, 1024])
def test_the_weight_sram_is_priced_at_its_capacity(program, inputs, table, capacity):
    """Above 8 KB the capacity rule prices each access higher; at or below it, as 8 KB."""
    point = SweepPoint(capacity, 2)
    engine = sweep_energy(resident_sweep(program, inputs, "synthetic", [point]), table)[point].engine
    events = [e for e in engine.events() if e.component == "weight_sram"]
    pj = memory_access_energy(table, capacity * 1024, 32)[0]
    assert events and all(e.pj_each == pj for e in events)
    assert (pj > memory_access_energy(table, 8 * 1024, 32)[0]) == (capacity > 8)


def test_energy_per_inference_is_the_job_energy_over_its_images(priced):
    """Dense fp32 reads its job header once per job: its energy per inference falls with the job size."""
    one, four = priced[SweepPoint(NONE, 1)].dense_fp32, priced[SweepPoint(NONE, 4)].dense_fp32
    assert four.total() < one.total()
    header = one.by_component("io")["dram"] - four.by_component("io")["dram"]
    assert header == pytest.approx(8 * 640 * (1 - 1 / 4))  # 8 job-header words of 640 pJ, once per job


def test_sweep_records_name_every_point(priced):
    records = sweep_records(priced)
    scenarios = {r["scenario"] for r in records}
    expected = {f"engine_resident_{c}KiB_N{n}" for c in (PART, ALL) for n in JOBS} | \
        {f"engine_streamed_N{n}" for n in JOBS} | {f"fp32_N{n}" for n in JOBS} | \
        {f"{key}_N{n}" for key in ("int8", "vq_sram") for n in JOBS}   # (b) and (c) on the streamed runs
    assert scenarios == expected
    assert all(set(r) == {"network", "scenario", "layer", "component", "pj"} for r in records)
    for key in expected:
        mine = [r for r in records if r["scenario"] == key]
        assert {r["layer"] for r in mine} == {0, 1, 2, "io", "total"}
        total = sum(r["pj"] for r in mine if r["layer"] == "total")
        assert total == pytest.approx(sum(r["pj"] for r in mine if r["layer"] != "total"))


def test_the_default_sweep():
    assert SWEEP_CAPACITIES_KIB == (0, 16, 64, 256, 1024) and SWEEP_JOB_IMAGES == (1, 8, 64)
    keys = {p.scenario_key("engine") for p in sweep_points()}
    assert len(keys) == 15 and "engine_resident_256KiB_N64" in keys and "engine_streamed_N64" in keys
    assert sum("resident" in k for k in keys) == 12


def test_a_job_needs_as_many_inputs(program, inputs):
    with pytest.raises(ValueError, match="a job of 8 images"):
        resident_sweep(program, inputs, "synthetic", [SweepPoint(0, 8)])


@pytest.mark.parametrize("target_met", [True, False])
def test_targets_are_printed_met_or_missed_as_measured(sweep, priced, target_met):
    """The verdict follows the measured ratio: set the target just under or just over it."""
    best = max(priced[SweepPoint(c, 4)].vs_dense_fp32 for c in (PART, ALL))
    as_kmeans = dataclasses.replace(sweep, network="lenet300", method="kmeans")
    target = best * (0.99 if target_met else 1.01)
    old = TARGETS[("lenet300", "kmeans")]
    TARGETS[("lenet300", "kmeans")] = target
    try:
        md = "\n".join(resident_section([(as_kmeans, priced)]))
    finally:
        TARGETS[("lenet300", "kmeans")] = old
    assert ("met at" in md) == target_met
    assert ("**missed**: 1.01x short" in md) == (not target_met)
    assert ("Where the energy of a missed target goes" in md) == (not target_met)


def test_report_with_a_sweep(tmp_path, program, sweep, priced):
    from energy_cases import small_net
    written = write_report(tmp_path, [small_net()], [], resident=[sweep])
    assert PLOT_RESIDENT in written and (tmp_path / PLOT_RESIDENT).read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "REPORT.md").read_text()
    assert "## Weights resident on chip" in md and f"]({PLOT_RESIDENT})" in md
    assert "### Area of the weight SRAM" in md
    records = json.loads((tmp_path / "energy.json").read_text())
    assert {r["scenario"] for r in records if r["network"] == "synthetic"} == \
        {r["scenario"] for r in sweep_records(priced)}
    # Without a sweep the plot is not written, and a stale one goes.
    written = write_report(tmp_path, [small_net()], [])
    assert PLOT_RESIDENT not in written and not (tmp_path / PLOT_RESIDENT).exists()
