"""``vqe run``: a program on a backend, checked against the golden model, summarised as JSON."""
from __future__ import annotations

import time

import numpy as np

from model.codecs.layers.kinds import kind_named
from model.contract.counters import COUNTERS
from model.contract.errors import VqeError
from model.contract.ints import ceil_div
from model.contract.window import Window
from model.golden.engine import GoldenEngine
from model.program.file import Program
from model.program.host import predicted_classes
from sim.simulate import BACKENDS


class RunError(VqeError):
    """A run could not be carried out (bad arguments, simulator failure, hang)."""


def on_engine(program: Program, config) -> Program:
    """``program`` retargeted to another engine ``config`` it fits: the same ROM, lanes, codebook depth
    and weight SRAM, an activation SRAM at least as large, and every unit it uses (a universal program
    on the universal chip, say).  Raises :class:`RunError` naming what does not fit."""
    own = program.config
    checks = [("ROM", own.rom == config.rom), ("lanes", own.lanes == config.lanes),
              ("codebook depth", own.codebook_depth == config.codebook_depth),
              ("weight SRAM", own.weight_sram_words == config.weight_sram_words),
              ("activation SRAM", own.max_features <= config.max_features),
              ("convolution and pooling", config.windows or not own.windows),
              ("average pooling", config.avgpool or not own.avgpool),
              ("residual add", config.residual or not own.residual),
              ("PVQ unit", own.pvq_k_max <= config.pvq_k_max),
              ("residual-VQ stages", own.rvq_stages_max <= config.rvq_stages_max),
              ("product-VQ unit", config.pq or not own.pq),
              ("E8P lattice codebook", config.lattice or not own.lattice),
              # The streams are laid out for the program's PEs (model.contract.layout, "Processing elements").
              ("processing elements", own.pes == config.pes),
              ("Huffman decoder", (own.huffman_max_len, own.huffman_symbol_bits)
               in ((0, 0), (config.huffman_max_len, config.huffman_symbol_bits)))]
    bad = [name for name, ok in checks if not ok]
    if bad:
        raise RunError(f"the program does not fit that engine: {', '.join(bad)} differ")
    meta = dict(program.meta, engine=dict(program.meta["engine"], max_features=config.max_features,
                                          windows=config.windows, avgpool=config.avgpool,
                                          residual=config.residual,
                                          pvq_k_max=config.pvq_k_max,
                                          **({"rvq_stages_max": config.rvq_stages_max} if config.rvq_stages_max else {}),
                                          **({"pq": True} if config.pq else {}),
                                          **({"lattice": True} if config.lattice else {})))
    return Program(meta, program.image)


def _kind_args(layer: dict) -> tuple:
    """A layer's kind rule and its shape, from its metadata."""
    window = Window(**layer["window"]) if "window" in layer else None
    return kind_named(layer.get("kind", "fc")), layer["in_features"], layer["out_features"], window


def ideal_layer_cycles(layer: dict, lanes: int, pes: int = 1) -> int:
    """Cycles one image needs in a layer (its metadata) at one lane-word per cycle on each of ``pes`` processing
    elements (its kind's rule at ``lanes * pes`` lanes; a layer without rows reads one lane-word per cycle)."""
    rule, *shape = _kind_args(layer)
    return rule.ideal_cycles(*shape, lanes * pes if rule.has_rows else lanes)


def layer_macs(layer: dict) -> int:
    """Multiply-accumulates of one image in a layer (its metadata)."""
    rule, *shape = _kind_args(layer)
    return rule.macs(*shape)


def run_program(program: Program, x_int8: np.ndarray, labels: np.ndarray | None, backend: str, *,
                latency: int = 10, stall: int = 0, seed: int = 1, vcd: str | None = None,
                reference_predictions: np.ndarray | None = None, shard_images: int | None = None,
                scheduler: str | None = None, workers: int | None = None, progress: bool = False) -> dict:
    """Run ``program`` on inputs ``x_int8`` and build the JSON summary (see README).

    On an RTL backend the images are split into shards of at most ``shard_images``
    (`sim.shards.DEFAULT_SHARD_IMAGES`), each one engine job checked against the golden
    model's run of the same job; several shards, or a ``scheduler``, run on a Dask cluster
    (`sim.shards.run_shards`).  Counters are the shards' sums.
    """
    from sim.shards import DEFAULT_SHARD_IMAGES, merge_shards, plan_shards, run_shard, run_shards
    if backend not in BACKENDS:
        raise RunError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from sim.backends.dram_model import check_timing
    try:
        check_timing(latency, stall, seed)
    except ValueError as e:
        raise RunError(f"DRAM timing (--latency, --stall, --seed): {e}") from None
    for option, value in (("--shard-images", shard_images), ("--workers", workers)):
        if value is not None and value < 1:
            raise RunError(f"{option} must be at least 1, got {value}")
    meta = program.meta
    n = len(x_int8)
    wall0 = time.perf_counter()
    summary = {"network": meta["network"], "method": meta["method"], "backend": backend, "images": n}
    bit_exact, mismatches, counter_mismatches = None, 0, {}
    cycles, layer_cycles, jobs = None, None, 1
    if backend == "golden":
        image, _, _ = program.dram_image(x_int8)
        t0 = time.perf_counter()
        golden = GoldenEngine(program.config).run(image)
        sim_seconds = time.perf_counter() - t0
        outputs, counters, golden_counters = golden.outputs, dict(golden.counters), dict(golden.counters)
        golden_outputs = outputs
    else:
        shards = plan_shards(n, n if vcd else (shard_images or DEFAULT_SHARD_IMAGES))
        if vcd and shard_images and shard_images < n:
            raise RunError("--vcd traces one job: leave out --shard-images")
        if backend == "verilator":   # build once here, not in every worker at the same time
            from sim.backends.verilator import harness_for
            harness_for(program.config, trace=vcd is not None)
        tasks = [(s.describe(), (program, x_int8[s.start:s.stop], backend),
                  {"latency": latency, "stall": stall, "seed": seed, "vcd": vcd}) for s in shards]
        bar = None
        if progress and len(shards) > 1:
            from tqdm import tqdm
            bar = tqdm(total=n, unit="image", desc=f"{backend}, {len(shards)} shards", leave=False)
        size = {s.describe(): s.images for s in shards}
        try:
            results = run_shards(tasks, run_shard, scheduler=scheduler, workers=workers,
                                 in_process=len(shards) == 1 and scheduler is None,
                                 progress=(lambda label: bar.update(size[label])) if bar else None)
        finally:
            if bar is not None:
                bar.close()
        for s, r in zip(shards, results):
            if not r["done"]:
                raise RunError(f"{backend}: {s.describe()}: the engine did not finish within {r['bound']} cycles "
                               "(hang)")
            if r["error"]:
                from model.contract.errors import EngineError
                raise RunError(f"{backend}: {s.describe()}: the engine stopped with error "
                               f"{EngineError(r['error']).name}")
        merged = merge_shards(results)
        jobs = len(shards)
        outputs, counters, golden_counters = merged["outputs"], merged["counters"], merged["golden_counters"]
        golden_outputs = merged["golden_outputs"]
        mismatches = int(np.sum(np.any(outputs != golden_outputs, axis=1)))
        counter_mismatches = {k: {"golden": golden_counters[k], "rtl": counters[k]}
                              for k in COUNTERS if golden_counters[k] != counters[k]}
        bit_exact = mismatches == 0 and not counter_mismatches
        cycles = counters["cycles"]
        sim_seconds = merged["sim_seconds"]
        layer_cycles = merged["layer_cycles"]

    lanes, pes = meta["engine"]["lanes"], meta["engine"].get("pes", 1)
    layers = []
    for i, layer in enumerate(meta["layers"]):
        layer_ideal = n * ideal_layer_cycles(layer, lanes, pes)
        layer_cycle = layer_cycles[i] if layer_cycles and i < len(layer_cycles) else None
        layers.append({"kind": layer.get("kind", "fc"), "mode": layer["mode"], "cycles": layer_cycle,
                       "ideal_cycles": layer_ideal,
                       "utilization": None if not layer_cycle else layer_ideal / layer_cycle,
                       "resident": layer["placement"]["resident"]})
    # Peak MACs per cycle: every lane of every processing element.
    ideal = ceil_div(n * sum(layer_macs(layer) for layer in meta["layers"]), lanes * pes)
    accuracy = (lambda out: None if labels is None  # noqa: E731
                else float(np.mean(predicted_classes(meta, out) == labels)))
    summary.update({
        "accuracy": accuracy(outputs),
        "reference_accuracy": None if reference_predictions is None or labels is None
        else float(np.mean(reference_predictions == labels)),
        "bit_exact": bit_exact,
        "mismatches": mismatches,
        "cycles": cycles,
        "ideal_cycles": ideal,
        "utilization": None if not cycles else ideal / cycles,
        "counters": counters,
        "compression": {k: meta["compression"][k] for k in ("bits_per_weight", "ratio_vs_fp32", "bytes")},
        "sim_seconds": sim_seconds,
        "sim_cycles_per_second": None if not cycles else cycles / sim_seconds,
        "layers": layers,
        # Extensions beyond DESIGN.md's contract:
        "cycles_per_image": None if not cycles else cycles / n,
        "lanes": lanes,
        "pes": pes,
        "dram_latency": None if backend == "golden" else latency,
        "counter_mismatches": counter_mismatches,
        "golden_counters": golden_counters,
        "golden_accuracy": accuracy(golden_outputs),
        "jobs": jobs,
        "wall_seconds": time.perf_counter() - wall0,
    })
    return summary
