"""The programs a report covers: their counters (golden model, cross-checked on RTL), names and facts.

The counters come from the golden model on test inputs (the program's
dataset, or seeded random vectors) and are cross-checked, outputs and
counters, against an RTL backend on a few of them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from sim.errors import CliError
from sim.report.energy.golden import golden_network_data
from sim.report.energy.network import NetworkData
from sim.report.energy.resident import SWEEP_JOB_IMAGES, ResidentSweep, resident_sweep
from sim.report.progress import log


def network_data(program_path: Path, images: int, cross_check: int, backend: str) -> NetworkData:
    """Counters of ``images`` test inputs (golden), cross-checked on ``cross_check`` of them on ``backend``.

    Parameters
    ----------
    program_path : Path
        Program file.
    images : int
        Test inputs the golden counters cover (the first ones; random inputs of seed 1 without a dataset).
    cross_check : int
        Of those, how many to also run on ``backend`` (0: none).
    backend : str
        RTL backend of the cross-check (`sim.simulate.BACKENDS`).

    Raises
    ------
    RuntimeError
        If the backend disagrees with the golden model.
    """
    from model.nets.inputs import load_inputs
    from model.program.file import Program
    from sim.run import run_program
    from model.program.writer import place_in_weight_sram
    # The scenarios of this report price every layer streamed from DRAM for every image:
    # the same program with no weight SRAM (placement changes no stream, only where it is read).
    program = place_in_weight_sram(Program.load(program_path), 0)
    x, labels, _ = load_inputs(program.meta, images, 0, 1)
    cycles = None
    if cross_check:
        log(f"cross-checking {cross_check} images on {backend} ...")
        summary = run_program(program, x[:cross_check], labels[:cross_check] if labels is not None else None,
                              backend)
        if not summary["bit_exact"]:
            raise RuntimeError(f"{backend} disagrees with the golden model: {summary['counter_mismatches']}")
        cycles = summary["cycles"] * images / cross_check
    return golden_network_data(program, x, cycles=cycles, cross_check_backend=backend if cross_check else None,
                               cross_check_images=cross_check)


def residency_data(program_path: Path, name: str) -> ResidentSweep:
    """The golden model's counters of the program at every weight-SRAM capacity and job size of the sweep.

    Each job runs the first ``N`` test inputs (the same ones `network_data` starts with).

    Parameters
    ----------
    program_path : Path
        Program file.
    name : str
        The program's name in the report (`distinct_names`).
    """
    from model.nets.inputs import load_inputs
    from model.program.file import Program
    program = Program.load(program_path)
    x, _, _ = load_inputs(program.meta, max(SWEEP_JOB_IMAGES), 0, 1)
    log(f"{name}: golden runs at each weight-SRAM capacity and job size ...")
    return resident_sweep(program, x, name)


def distinct_names(nets: Sequence[NetworkData], paths: Sequence) -> list[NetworkData]:
    """``nets`` with a program that repeats an earlier one's name renamed ``NAME-<lanes>lanes``.

    energy.json keys its records by network name, so two programs of one
    network and method (e.g. PVQ on 4 and on 8 lanes) must not share one.

    Raises
    ------
    sim.errors.CliError
        If two programs still share a name (same network, method and lanes).
    """
    out, seen = [], {}
    for net, path in zip(nets, paths):
        if net.name in seen:
            net = dataclasses.replace(net, name=f"{net.name}-{net.lanes}lanes")
        if net.name in seen:
            raise CliError(f"{path} and {seen[net.name]} are both {net.name}: report distinct programs")
        seen[net.name] = path
        out.append(net)
    return out


def program_facts(meta: dict) -> dict:
    """All-in bits per weight and int8 accuracy (full test set) a program recorded when compressed."""
    return {"bits_per_weight": meta.get("compression", {}).get("bits_per_weight"),
            "accuracy": meta.get("info", {}).get("int8_accuracy")}

