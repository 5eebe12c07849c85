"""Sharding a run across Dask workers: on an embedded LocalCluster, on a scheduler and two workers started
on localhost, retries of a failing shard, and exact merging (counters summed, outputs in image order)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from model.codecs.vectors import random_vectors
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_lowered
from model.program.writer import build_program
from sim.run import run_program
from sim.shards import ShardError, plan_shards, run_shards

import shard_cases

SHAPES = [30, 11, 6]


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(11)
    program = build_program(random_lowered(rng, 4, SHAPES, 16), codebook_depth=16, config_max_features=64,
                            weight_sram_words=64)
    x = random_vectors(np.random.default_rng(12), 7, SHAPES[0])
    return program, x


def golden_shards(program, x, size):
    """The golden model's outputs and summed counters over the shards' jobs."""
    outs, counters = [], {}
    for s in plan_shards(len(x), size):
        g = GoldenEngine(program.config).run(program.dram_image(x[s.start:s.stop])[0])
        outs.append(g.outputs)
        for k, v in g.counters.items():
            counters[k] = counters.get(k, 0) + v
    return np.concatenate(outs), counters


def test_plan_shards_covers_every_image_once():
    shards = plan_shards(10, 4)
    assert [(s.start, s.stop) for s in shards] == [(0, 3), (3, 7), (7, 10)]
    assert plan_shards(3, 100)[0].images == 3
    with pytest.raises(ShardError):
        plan_shards(3, 0)


def check_merged(summary, program, x, size):
    outputs, counters = golden_shards(program, x, size)
    assert summary["bit_exact"] is True
    assert summary["jobs"] == len(plan_shards(len(x), size))
    assert summary["golden_counters"] == counters
    assert {k: summary["counters"][k] for k in counters} == counters
    single = GoldenEngine(program.config).run(program.dram_image(x)[0])
    np.testing.assert_array_equal(outputs, single.outputs)   # outputs do not depend on the sharding


def test_local_cluster(case):
    program, x = case
    summary = run_program(program, x, None, "verilator", shard_images=3, workers=2, latency=9, stall=60)
    check_merged(summary, program, x, 3)
    # A weight SRAM is filled once per job: three jobs write it three times.
    one = run_program(program, x, None, "verilator", shard_images=len(x))
    assert one["jobs"] == 1
    assert summary["counters"]["weight_sram_writes"] == 3 * one["counters"]["weight_sram_writes"]


@pytest.fixture
def localhost_cluster(tmp_path):
    """A ``dask scheduler`` and two ``dask worker`` processes on localhost, as a user would start them."""
    dask = Path(sys.executable).with_name("dask")
    file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([str(dask), "scheduler", "--scheduler-file", str(file), "--port", "0",
                               "--no-dashboard", "--host", "127.0.0.1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if file.is_file() and file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([str(dask), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                           "--no-dashboard", "--host", "127.0.0.1"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_scheduler_and_two_workers_on_localhost(case, localhost_cluster):
    program, x = case
    summary = run_program(program, x, None, "verilator", shard_images=2, scheduler=localhost_cluster)
    check_merged(summary, program, x, 2)


def test_a_failed_shard_is_retried(tmp_path):
    marker = tmp_path / "failed-once"
    tasks = [(f"shard {i}", (i, str(marker)), {}) for i in range(3)]
    assert run_shards(tasks, shard_cases.fail_once, workers=2) == [0, 10, 20]
    assert marker.is_file()


def test_a_shard_failing_every_attempt_stops_the_run_with_one_line():
    tasks = [("shard 0 (images 0..4)", (0,), {}), ("shard 1 (images 5..9)", (1,), {})]
    with pytest.raises(ShardError) as e:
        run_shards(tasks, shard_cases.fail_on_one, workers=2)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("shard 1 (images 5..9) failed after 3 attempts")


def test_unreachable_scheduler_is_one_line(monkeypatch):
    monkeypatch.setattr("sim.shards.CONNECT_TIMEOUT_SECONDS", 2)
    with pytest.raises(ShardError, match="cannot reach the Dask scheduler"):
        run_shards([("s", (0,), {})], shard_cases.fail_on_one, scheduler="tcp://127.0.0.1:9")
