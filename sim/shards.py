"""Sharding a run's images across workers with Dask: each shard is one engine job, checked where it runs.

`run_shard` runs one shard, a job of consecutive images, on the golden model
and on an RTL backend and compares them; it is what a worker executes.
`run_shards` runs every shard: in this process when there is one and no
cluster was asked for, else on a Dask cluster, by default a `LocalCluster`
with one single-threaded worker process per core, or the existing cluster at
``scheduler``.  A shard whose task raises (a crashed simulator, a lost
worker) is retried; one that still fails stops the run with one line naming
it, so no shard is ever dropped.  `merge_shards` adds the counters and
concatenates the outputs in image order.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from model.contract.errors import VqeError

#: Images per shard unless asked otherwise: a job of LeNet-300-100 this size takes about 20 s on Verilator.
DEFAULT_SHARD_IMAGES = 1000
#: Attempts of a shard's task beyond the first before the run fails.
SHARD_RETRIES = 2
#: How long to wait for a ``--scheduler`` to answer.
CONNECT_TIMEOUT_SECONDS = 20


class ShardError(VqeError):
    """A shard failed after its retries, or the cluster could not be reached."""


@dataclass(frozen=True)
class Shard:
    """Images ``start`` .. ``stop - 1`` of the run, as one engine job."""
    index: int
    start: int
    stop: int

    @property
    def images(self) -> int:
        """Images in the shard."""
        return self.stop - self.start

    def describe(self) -> str:
        """The shard in words, for progress and error messages."""
        return f"shard {self.index} (images {self.start}..{self.stop - 1})"


def plan_shards(n_images: int, shard_images: int) -> list[Shard]:
    """Consecutive shards of at most ``shard_images`` images, as even as possible."""
    if shard_images < 1:
        raise ShardError(f"--shard-images must be at least 1, got {shard_images}")
    count = -(-n_images // shard_images)
    edges = np.linspace(0, n_images, count + 1).round().astype(int)
    return [Shard(i, int(a), int(b)) for i, (a, b) in enumerate(zip(edges, edges[1:]))]


def run_shard(program, x_int8: np.ndarray, backend: str, *, latency: int, stall: int, seed: int,
              vcd: str | None = None) -> dict:
    """One job of the images ``x_int8`` on the golden model and on ``backend``.

    Returns
    -------
    dict
        ``done``, ``error`` and ``bound`` (the hang bound in cycles); ``golden_outputs`` and
        ``outputs`` (int arrays, one row per image); ``golden_counters`` and ``counters``;
        ``layer_cycles``; ``sim_seconds``.
    """
    from model.codecs.vectors import unpack_vectors
    from model.golden.engine import GoldenEngine
    from sim.simulate import hang_bound, simulate
    meta = program.meta
    n = len(x_int8)
    image, out_addr, out_words = program.dram_image(x_int8)
    golden = GoldenEngine(program.config).run(image)
    bound = hang_bound(golden.counters, meta["n_layers"], n, latency, meta["engine"]["lanes"])
    res = simulate(program, image, backend, out_addr=out_addr, out_words=n * out_words, max_cycles=bound,
                   latency=latency, stall=stall, seed=seed, vcd=vcd)
    ok = res["done"] and not res["error"]
    outputs = (unpack_vectors(np.asarray(res["outputs"], dtype=np.uint32).reshape(n, out_words),
                              meta["output_features"]) if ok else None)
    return {"done": bool(res["done"]), "error": int(res["error"]), "bound": bound,
            "golden_outputs": golden.outputs, "outputs": outputs,
            "golden_counters": dict(golden.counters), "counters": dict(res["counters"]),
            "layer_cycles": list(res.get("layer_cycles") or []), "sim_seconds": float(res["sim_seconds"])}


def merge_shards(results: list[dict]) -> dict:
    """One result from the shards' (in shard order): counters and per-layer cycles summed, outputs stacked."""
    merged = {"golden_outputs": np.concatenate([r["golden_outputs"] for r in results]),
              "outputs": np.concatenate([r["outputs"] for r in results]),
              "golden_counters": {k: sum(r["golden_counters"][k] for r in results)
                                  for k in results[0]["golden_counters"]},
              "counters": {k: sum(r["counters"][k] for r in results) for k in results[0]["counters"]},
              "sim_seconds": sum(r["sim_seconds"] for r in results)}
    width = max(len(r["layer_cycles"]) for r in results)
    merged["layer_cycles"] = [sum(r["layer_cycles"][i] if i < len(r["layer_cycles"]) else 0 for r in results)
                              for i in range(width)]
    return merged


def local_cluster(workers: int | None = None):
    """An embedded `LocalCluster`: ``workers`` single-threaded worker processes (default one per core)."""
    from dask.distributed import LocalCluster
    return LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR)


def _client(scheduler: str | None, workers: int | None):
    """A Dask client on the cluster at ``scheduler``, or on a new `local_cluster` (closed with the client)."""
    from dask.distributed import Client
    if scheduler is None:
        cluster = local_cluster(workers)
        return Client(cluster), cluster
    try:
        client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_SECONDS}s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ShardError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as e:
        client.close()
        raise ShardError(f"the Dask cluster at {scheduler} has no worker after {CONNECT_TIMEOUT_SECONDS} s ({e})") \
            from None
    return client, None


def run_shards(tasks: list[tuple[str, tuple, dict]], fn, *, scheduler: str | None = None,
               workers: int | None = None, progress=None, in_process: bool = False) -> list:
    """``fn(*args, **kwargs)`` for each ``(label, args, kwargs)`` of ``tasks``; results in task order.

    In this process when ``in_process``, else as tasks on a Dask cluster, each retried
    `SHARD_RETRIES` times.  ``progress(label)`` is called as each task finishes.

    Raises
    ------
    ShardError
        A task failed on its last attempt (the message names it and quotes its error's first line).
    """
    if in_process:
        out = []
        for label, args, kwargs in tasks:
            out.append(fn(*args, **kwargs))
            if progress:
                progress(label)
        return out
    from dask.distributed import as_completed
    client, cluster = _client(scheduler, workers)
    try:
        futures = [client.submit(fn, *args, **kwargs, retries=SHARD_RETRIES, pure=False)
                   for label, args, kwargs in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(tasks)
        for future in as_completed(futures):
            i = index[future.key]
            try:
                out[i] = future.result()
            except VqeError:
                raise
            except Exception as e:  # noqa: BLE001 - any worker failure ends the run with one line
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ShardError(f"{tasks[i][0]} failed after {SHARD_RETRIES + 1} attempts: "
                                 f"{type(e).__name__}: {first}") from None
            if progress:
                progress(tasks[i][0])
        return out
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
