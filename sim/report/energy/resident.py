"""Weights resident on chip: the engine's counters with a weight SRAM of each capacity, over jobs of N images.

A program placed for a weight SRAM of ``C`` KiB
(`model.program.writer.place_in_weight_sram`: first fit, in layer order)
reads each resident layer's stream from DRAM once per job, writing it into
the weight SRAM, and from the weight SRAM for every later image; the golden
model counts exactly that (`model.golden.engine.GoldenEngine.run`).  Energy
per inference therefore depends on ``C`` and on ``N``, the images one job runs.

`resident_sweep` runs the golden model once per `SweepPoint` (capacity x job
size), each a single job of the first ``N`` test inputs; `sweep_energy`
prices every run with the program's engine scenario (its counters as
measured, each on-chip memory at its own capacity, the weight SRAM's from
the placed program's config) and with dense fp32 from DRAM on the same job,
the figure the ratios are taken against; the run without a weight SRAM is
also priced as dense int8 from DRAM and as traditional VQ with codebooks from
DRAM (`STREAMED_SCENARIOS`, where they apply), so every scenario of a program
is on the same jobs.  Energies are per inference: the job's energy divided by ``N``.

Convolutions need nothing of their own here: the golden model counts a
resident convolution's stream read from DRAM once per job and from the weight
SRAM at every later output position (``positions x N - 1`` reads), a streamed
one from DRAM at every position, and a pooling layer's activation reads and
writes whatever the capacity.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from model.contract.config import WORDS_PER_KIB
from model.program.writer import place_in_weight_sram
from sim.report.energy.golden import golden_network_data
from sim.report.energy.network import NetworkData
from sim.report.energy.pricing import ScenarioEnergy, energy_records, network_energy
from sim.report.energy.registry import scenario_named, scenarios_for
from sim.report.energy.table import EnergyTable

#: Weight-SRAM capacities swept, KiB; 0 is no weight SRAM (every layer streamed from DRAM), the reference.
SWEEP_CAPACITIES_KIB = (0, 16, 64, 256, 1024)
#: Job sizes swept: the images one job runs (resident layers are loaded once per job).
SWEEP_JOB_IMAGES = (1, 8, 64)
#: Key of the dense baseline the ratios are taken against (`sim.report.energy.baselines`).
DENSE_FP32 = "fp32"
#: Further scenarios priced on the run without a weight SRAM, where they apply: (b) dense int8 from DRAM and
#: (c) traditional VQ with per-layer codebooks from DRAM (`sim.report.energy.baselines`, ``codebook``).
STREAMED_SCENARIOS = ("int8", "vq_sram")


@dataclass(frozen=True, order=True)
class SweepPoint:
    """One point of the sweep: a weight SRAM of ``capacity_kib`` KiB (0: none), jobs of ``job_images`` images."""
    capacity_kib: int
    job_images: int

    @property
    def words(self) -> int:
        """The weight SRAM's capacity in 32-bit words."""
        return self.capacity_kib * WORDS_PER_KIB

    def scenario_key(self, engine_key: str) -> str:
        """energy.json's scenario of ``engine_key`` at this point: ``engine_resident_64KiB_N8``,
        or ``engine_streamed_N8`` without a weight SRAM (nothing is resident)."""
        where = f"resident_{self.capacity_kib}KiB" if self.capacity_kib else "streamed"
        return f"{engine_key}_{where}_N{self.job_images}"

    @property
    def description(self) -> str:
        """The point in words: "64 KiB weight SRAM, jobs of 8 images"."""
        where = f"{self.capacity_kib} KiB weight SRAM" if self.capacity_kib else "no weight SRAM"
        return f"{where}, jobs of {self.job_images} image{'s' if self.job_images > 1 else ''}"


def sweep_points(capacities_kib: Sequence[int] = SWEEP_CAPACITIES_KIB,
                 job_images: Sequence[int] = SWEEP_JOB_IMAGES) -> list[SweepPoint]:
    """Every capacity x job size, capacities first (the report's order)."""
    return [SweepPoint(c, n) for c in capacities_kib for n in job_images]


@dataclass(frozen=True)
class ResidentSweep:
    """One program's golden runs at every sweep point.

    Parameters
    ----------
    name : str
        The program's name in the report (energy.json's ``network``).
    network : str
        The network it compresses (``lenet300``), which sets its dense baselines.
    method : str
        Its compression method.
    runs : dict of SweepPoint to NetworkData
        The golden model's counters of one job at each point.
    """
    name: str
    network: str
    method: str
    runs: Mapping[SweepPoint, NetworkData]


def placed_job(program, x: np.ndarray, capacity_kib: int, name: str) -> NetworkData:
    """`NetworkData` of one job of the inputs ``x`` on ``program`` placed in a weight SRAM of ``capacity_kib`` KiB.

    The on-chip memories, the weight SRAM's among them, are sized from the placed program's engine.
    """
    placed = place_in_weight_sram(program, capacity_kib * WORDS_PER_KIB)
    return dataclasses.replace(golden_network_data(placed, x), name=name)


def resident_sweep(program, x: np.ndarray, name: str, points: Sequence[SweepPoint] | None = None) -> ResidentSweep:
    """The golden model's counters of ``program`` at every sweep point, a job of the first ``N`` of ``x`` each.

    Parameters
    ----------
    program : model.program.file.Program
    x : numpy.ndarray of int8, shape (images, input features)
        Test inputs; at least the largest job size.
    name : str
        The program's name in the report.
    points : sequence of SweepPoint, optional
        Default `sweep_points`.

    Raises
    ------
    ValueError
        If ``x`` holds fewer inputs than a job takes.
    """
    points = sweep_points() if points is None else list(points)
    largest = max(p.job_images for p in points)
    if len(x) < largest:
        raise ValueError(f"{name}: a job of {largest} images needs as many inputs, got {len(x)}")
    runs = {p: placed_job(program, x[:p.job_images], p.capacity_kib, name) for p in points}
    return ResidentSweep(name, program.meta["network"], program.meta["method"], runs)


@dataclass(frozen=True)
class PointEnergy:
    """One sweep point's energy per inference.

    Parameters
    ----------
    point : SweepPoint
    run : NetworkData
        The golden model's counters of the job.
    engine : ScenarioEnergy
        The engine as measured, its scenario renamed for the point (`SweepPoint.scenario_key`).
    dense_fp32 : ScenarioEnergy
        Dense fp32 from DRAM on the same job (its job header is read once per job too).
    streamed : dict of str to ScenarioEnergy
        At the point without a weight SRAM, the `STREAMED_SCENARIOS` that apply, by their key
        (``int8``, ``vq_sram``), each renamed ``<key>_N<N>``; empty at the other points.
    """
    point: SweepPoint
    run: NetworkData
    engine: ScenarioEnergy
    dense_fp32: ScenarioEnergy
    streamed: Mapping[str, ScenarioEnergy] = dataclasses.field(default_factory=dict)

    @property
    def vs_dense_fp32(self) -> float:
        """Dense fp32's energy per inference over the engine's: how many times less the engine takes."""
        return self.dense_fp32.total() / self.engine.total()

    @property
    def resident_layers(self) -> tuple[bool, ...]:
        """Per layer, whether it was resident: whether the job wrote its stream into the weight SRAM (measured)."""
        return tuple(c.get("weight_sram_writes", 0) > 0 for c in self.run.per_layer_counters)

    @property
    def resident_words(self) -> int:
        """Weight-SRAM words the job's resident streams fill (its weight-SRAM writes, measured)."""
        return int(sum(c.get("weight_sram_writes", 0) for c in self.run.per_layer_counters))


def engine_scenario(net: NetworkData) -> str:
    """Key of the scenario that prices ``net``'s counters as measured (`Scenario.reference`).

    Raises
    ------
    ValueError
        If no such scenario prices every layer of ``net``.
    """
    key = next((k for k in scenarios_for(net) if scenario_named(k).reference), None)
    if key is None:
        raise ValueError(f"{net.name}: no scenario prices its counters as measured")
    return key


def renamed(energy: ScenarioEnergy, key: str, title: str) -> ScenarioEnergy:
    """``energy`` under another scenario key and title, no longer the network's reference."""
    scenario = dataclasses.replace(energy.scenario, key=key, title=title, reference=False)
    return dataclasses.replace(energy, scenario=scenario)


def point_energy(point: SweepPoint, run: NetworkData, table: EnergyTable) -> PointEnergy:
    """The engine's and dense fp32's energy of one sweep point's job; without a weight SRAM, also the
    `STREAMED_SCENARIOS` that apply."""
    key = engine_scenario(run)
    applicable = set(scenarios_for(run))
    others = [k for k in STREAMED_SCENARIOS if k in applicable] if not point.capacity_kib else []
    res = network_energy(run, table, [key, DENSE_FP32, *others])
    engine = renamed(res[key], point.scenario_key(key), f"{res[key].scenario.title}, {point.description}")
    jobs = f"jobs of {point.job_images}"
    dense = renamed(res[DENSE_FP32], f"{DENSE_FP32}_N{point.job_images}", f"{res[DENSE_FP32].scenario.title}, {jobs}")
    streamed = {k: renamed(res[k], f"{k}_N{point.job_images}", f"{res[k].scenario.title}, {jobs}") for k in others}
    return PointEnergy(point, run, engine, dense, streamed)


def sweep_energy(sweep: ResidentSweep, table: EnergyTable) -> dict[SweepPoint, PointEnergy]:
    """Every point of ``sweep`` priced (`point_energy`), in the sweep's order."""
    return {point: point_energy(point, run, table) for point, run in sweep.runs.items()}


def sweep_records(points: Mapping[SweepPoint, PointEnergy]) -> list[dict]:
    """energy.json records of a priced sweep: each point's engine, dense fp32 once per job size, and the
    `STREAMED_SCENARIOS` of the points without a weight SRAM.

    The records have energy.json's fields (`sim.report.energy.pricing.energy_records`), per layer, ``io``
    and ``total``; the scenarios are named by `SweepPoint.scenario_key`, ``fp32_N<images>``, and
    ``int8_N<images>`` and ``vq_sram_N<images>`` (where they apply).
    """
    records, dense_done = [], set()
    for pe in points.values():
        records += energy_records(pe.run, {pe.engine.scenario.key: pe.engine})
        if pe.point.job_images not in dense_done:
            dense_done.add(pe.point.job_images)
            records += energy_records(pe.run, {pe.dense_fp32.scenario.key: pe.dense_fp32})
        records += energy_records(pe.run, {r.scenario.key: r for r in pe.streamed.values()})
    return records
