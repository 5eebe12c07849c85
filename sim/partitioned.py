"""``vqe run`` of a partitioned program: the host runs its network's other modules, each engine segment a job.

Every engine segment's job runs on the chosen backend with the tokens (or
other vectors) the host gives it, and on an RTL backend it is checked against
the golden model's run of the same job on every output and counter
(:func:`sim.shards.run_shard`); the RTL's outputs are what the host carries on
with.  The summary adds, to :func:`sim.run.run_program`'s fields, the
``segments`` (cycles and vectors of each engine job, the host's operators),
the DRAM words crossing the engine/host boundaries (``boundary``) and the
network's quality against the float network on the same inputs.

What the host runs is its kind's (:data:`HOST_KINDS`, by ``meta["host"]["kind"]``): a zoo network
(MiniLM: its evaluation sentences) or a user's graph (``"user-graph"``: the model file the program
records, found next to the program or in the working directory with its SHA-256, its graph's nodes
run in float on the user's ``--inputs``; :mod:`model.nets.graph.partition`).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from model.compress.partitioned import with_engine_segments
from model.contract.counters import COUNTERS
from model.contract.layout import vector_words
from model.golden.engine import GoldenEngine
from model.program.file import Program
from model.program.segments import boundary_words
from sim.run import RunError, ideal_layer_cycles, layer_macs
from sim.simulate import BACKENDS

#: The zoo networks a partitioned program's host runs: their inputs and their quality against the float network.
HOSTS = ("minilm",)
#: Sentences ``vqe run`` takes from the evaluation set when not told.
DEFAULT_SENTENCES = 4


class _Jobs:
    """Runs each engine call on the backend and keeps what every job did."""

    def __init__(self, backend: str, latency: int, stall: int, seed: int, progress):
        self.backend, self.latency, self.stall, self.seed = backend, latency, stall, seed
        self.records: list[dict] = []
        self.progress = progress

    def __call__(self, name: str, job: Program, x_int8: np.ndarray) -> np.ndarray:
        if self.backend == "golden":
            t0 = time.perf_counter()
            image, _, _ = job.dram_image(x_int8)
            res = GoldenEngine(job.config).run(image)
            rec = {"outputs": res.outputs, "golden_outputs": res.outputs, "counters": dict(res.counters),
                   "golden_counters": dict(res.counters), "sim_seconds": time.perf_counter() - t0}
        else:
            from sim.shards import run_shard
            rec = run_shard(job, x_int8, self.backend, latency=self.latency, stall=self.stall, seed=self.seed)
            if not rec["done"]:
                raise RunError(f"{self.backend}: engine segment {name}: the engine did not finish within "
                               f"{rec['bound']} cycles (hang)")
            if rec["error"]:
                from model.contract.errors import EngineError
                raise RunError(f"{self.backend}: engine segment {name}: the engine stopped with error "
                               f"{EngineError(rec['error']).name}")
        rec.update(name=name, vectors=len(x_int8), job=job)
        self.records.append(rec)
        if self.progress:
            self.progress()
        return np.asarray(rec["outputs"])


def run_segments(program: Program, backend: str, model, forward, *, latency: int = 10, stall: int = 0,
                 seed: int = 1, progress: bool = False, bind: Callable = with_engine_segments) -> tuple[object, list[dict]]:
    """``forward(host)`` on the host's network ``model`` with ``program``'s engine segments in it, each engine
    call one job on ``backend`` (checked against the golden model on an RTL backend).

    ``bind(model, program, execute)`` puts the engine segments into ``model`` (default: a zoo network's modules
    replaced, :func:`model.compress.partitioned.with_engine_segments`).

    Returns ``forward``'s result and one record per job: ``name``, ``vectors``, ``job`` (its program),
    ``outputs`` and ``golden_outputs``, ``counters`` and ``golden_counters``, ``sim_seconds``.
    """
    if backend not in BACKENDS:
        raise RunError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from sim.backends.dram_model import check_timing
    try:
        check_timing(latency, stall, seed)
    except ValueError as e:
        raise RunError(f"DRAM timing (--latency, --stall, --seed): {e}") from None
    if backend == "verilator":   # build the harness once, before the first job
        from sim.backends.verilator import harness_for
        harness_for(program.config)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(program.engine_segments()), unit="job", desc=f"{program.meta['network']} on {backend}",
                   leave=False)
    jobs = _Jobs(backend, latency, stall, seed, bar.update if bar else None)
    try:
        out = forward(bind(model, program, jobs))
    finally:
        if bar is not None:
            bar.close()
    return out, jobs.records


@dataclass
class RunRequest:
    """What ``vqe run`` of a partitioned program asks for: the inputs (``--inputs``: a ``.npz`` path, an array ``x``
    or ``(x, y)``), how many from where, the program's path and the user's model file (where its host looks for
    it), DRAM timing."""
    backend: str
    inputs: object = None
    images: int | None = None
    offset: int = 0
    program_path: object = None
    model: object = None
    latency: int = 10
    stall: int = 0
    seed: int = 1
    progress: bool = False

    def segments(self, program: Program, model, forward, bind: Callable = with_engine_segments):
        """:func:`run_segments` with this request's backend and timing."""
        return run_segments(program, self.backend, model, forward, latency=self.latency, stall=self.stall,
                            seed=self.seed, progress=self.progress, bind=bind)


def run_partitioned(program: Program, backend: str, *, inputs=None, images: int | None = None, offset: int = 0,
                    program_path=None, model=None, latency: int = 10, stall: int = 0, seed: int = 1,
                    progress: bool = False) -> dict:
    """Run a partitioned program, its host's part by its kind (:data:`HOST_KINDS`): the JSON summary.

    Parameters
    ----------
    inputs : path, numpy.ndarray or (x, y), optional
        A user's graph: its inputs (required); a zoo network takes none (its evaluation set).
    images, offset : int
        How many inputs from which (a zoo network: default 4 sentences; a user's graph: every input).
    program_path, model : path, optional
        Where a user's graph looks for its model file: ``model``, else next to ``program_path``, else the
        working directory.
    """
    kind = program.meta["host"].get("kind", "zoo")
    runner = HOST_KINDS.get(kind)
    if runner is None:
        raise RunError(f"the program's host is of kind {kind!r}, which this vqe does not run "
                       f"({', '.join(HOST_KINDS)})")
    req = RunRequest(backend, inputs, images, offset, program_path, model, latency, stall, seed, progress)
    wall0 = time.perf_counter()
    quality, n, records, extra = runner(program, req)
    summary = segments_summary(program, backend, records, quality, n, latency, time.perf_counter() - wall0)
    summary.update(extra)
    return summary


def _zoo_host(program: Program, req: RunRequest):
    """A zoo network's host (MiniLM): ``images`` of its evaluation sentences (default 4) from ``offset``; quality
    the mean cosine of their embeddings against the float network's."""
    network = program.meta["host"]["network"]
    if req.inputs is not None:
        raise RunError(f"a partitioned {network} program runs its network's evaluation sentences: leave out --inputs")
    if network not in HOSTS:
        raise RunError(f"the program's host network {network!r} is not one this vqe runs ({', '.join(HOSTS)})")
    from model.nets.zoo import load_network
    from model.nets.zoo.minilm import embeddings_of, eval_sentences
    sentences = eval_sentences(False)
    n = DEFAULT_SENTENCES if req.images is None else req.images
    offset = req.offset
    if not (0 <= offset and 1 <= n and offset + n <= len(sentences)):
        raise RunError(f"--images/--offset: the evaluation set has {len(sentences)} sentences, asked for "
                       f"{n} from {offset}")
    sentences = sentences[offset:offset + n]
    zn = load_network(network, progress=False)
    emb, records = req.segments(program, zn.model, lambda host: embeddings_of(host, sentences))
    cos = np.sum(emb * embeddings_of(zn.model, sentences), axis=1)
    quality = {"embedding_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
               "reference": "the float network's embeddings of the same sentences"}
    return quality, n, records, {}


def find_model_file(meta: dict, program_path=None, model=None, *, strict: bool = True) -> Path | None:
    """A user's model file as a program records it (``source``): ``model``, else ``source.file`` next to the
    program, else in the working directory, with the recorded SHA-256.

    Raises
    ------
    RunError
        ``strict`` and no such file with that hash (one line: where it looked, what differs); else None.
    """
    source = meta.get("source") or {}
    if "file" not in source:
        return None
    folders = ([Path(program_path).parent] if program_path is not None else []) + [Path.cwd()]
    candidates = [Path(model)] if model is not None else [f / source["file"] for f in folders]
    differ = []
    for path in candidates:
        if path.is_file():
            if hashlib.sha256(path.read_bytes()).hexdigest() == source.get("sha256"):
                return path
            differ.append(path)
    if not strict:
        return None
    if differ:
        raise RunError(f"{differ[0]}: not the model file this program was compressed from (its SHA-256 differs from "
                       f"the recorded {source.get('sha256', '?')[:16]}...); the host runs that file's graph")
    where = " or ".join(str(p.parent) for p in candidates) if model is None else str(candidates[0])
    raise RunError(f"the host runs {source['file']} (the model this program was compressed from), which is not in "
                   f"{where}: put it next to the program or in the working directory")


def _user_graph_host(program: Program, req: RunRequest):
    """A user's graph: the model file's graph on the host in float, each chain a job; quality on the user's ``y``
    (labels: accuracy; reference outputs: mean cosine and top-1 agreement), else against the float model."""
    from model.compress.pipeline import engine_calls
    from model.nets.graph.partition import PartitionedNet, host_graph
    from model.nets.inputs import load_user_inputs
    from model.nets.graph.trace import GraphError
    from model.nets.user import cosine_metrics, load_model, user_metrics
    meta = program.meta
    if req.inputs is None:
        raise RunError("a partitioned program of your own model runs on your inputs: give --inputs FILE.npz "
                       "(array x, and optionally y)")
    path = find_model_file(meta, req.program_path, req.model)
    shape = tuple(meta["input_shape"])
    inputs = req.inputs
    if isinstance(inputs, np.ndarray):
        inputs = {"x": inputs}
    elif isinstance(inputs, tuple):
        inputs = {"x": inputs[0], "y": inputs[1]}
    # The engine's int8 inputs are each job's; only the float inputs and y are read here.
    _, y, x = load_user_inputs({"input_shape": list(shape), "input_scale": 1.0}, inputs, req.images, req.offset)
    user = load_model(path, shape)
    try:
        host = host_graph(user.graph, meta["segments"])
    except GraphError as e:
        raise RunError(f"{path.name}: {e}") from None
    out, records = req.segments(program, host, lambda net: net(x).numpy(),
                                bind=lambda h, p, execute: PartitionedNet(h, engine_calls(p, execute)))
    ref = user.reference(x)
    if y is None:
        metrics, floats = cosine_metrics(out, ref), None
    else:
        metrics, floats = user_metrics(out, y), user_metrics(ref, y)
    metric = next(iter(metrics))
    quality = {"metric": metric, "value": metrics[metric], "metrics": metrics, "measured_on": req.backend,
               "float": floats, **({} if y is not None else {"reference": "the float model's outputs"})}
    labels = y is not None and y.dtype.kind in "iu"
    extra = {"accuracy": metrics["accuracy"] if labels else None,
             "reference_accuracy": floats["accuracy"] if labels else None,
             "model_file": str(path)}
    return quality, len(x), records, extra


#: Hosts by kind (``meta["host"]["kind"]``; none: a zoo network): ``runner(program, request) -> (quality, inputs,
#: job records, summary fields)``.
HOST_KINDS: dict[str, Callable] = {"zoo": _zoo_host, "user-graph": _user_graph_host}


def segments_summary(program: Program, backend: str, records: list[dict], quality: dict, n: int, latency: int,
                     wall: float) -> dict:
    """The JSON summary of a partitioned run: :func:`sim.run.run_program`'s fields, over every job, and the
    segments, the boundary traffic and the host's operators."""
    meta = program.meta
    lanes, pes = meta["engine"]["lanes"], meta["engine"].get("pes", 1)
    counters = {k: sum(r["counters"][k] for r in records) for k in records[0]["counters"]}
    golden = {k: sum(r["golden_counters"][k] for r in records) for k in COUNTERS}
    mismatches = sum(int(np.sum(np.any(np.asarray(r["outputs"]) != r["golden_outputs"], axis=1))) for r in records)
    counter_mismatches = {k: {"golden": golden[k], "rtl": counters[k]} for k in COUNTERS if golden[k] != counters[k]}
    rtl = backend != "golden"
    vectors = sum(r["vectors"] for r in records)
    ideal = sum(-(-r["vectors"] * sum(layer_macs(l) for l in r["job"].meta["layers"]) // (lanes * pes))
                for r in records)
    cycles = counters["cycles"] if rtl else None
    segments = []
    for seg in meta["segments"]:
        if seg["kind"] == "host":
            segments.append({"kind": "host", "name": seg["name"], "ops": seg["ops"]})
    for r in records:
        job = r["job"].meta
        segments.append({"kind": "engine", "name": r["name"], "vectors": r["vectors"],
                         "cycles": r["counters"]["cycles"] if rtl else None,
                         "ideal_cycles": r["vectors"] * sum(ideal_layer_cycles(l, lanes, pes) for l in job["layers"]),
                         # The golden model has no cycle counters: the contract's counters are compared.
                         "bit_exact": None if not rtl else bool(np.array_equal(r["outputs"], r["golden_outputs"])
                                                                and all(r["counters"][k] == r["golden_counters"][k]
                                                                        for k in COUNTERS)),
                         "input_words": r["vectors"] * vector_words(job["input_features"], lanes),
                         "output_words": r["vectors"] * vector_words(job["output_features"], lanes)})
    boundary = {"host_writes_words": sum(s.get("input_words", 0) for s in segments),
                "host_reads_words": sum(s.get("output_words", 0) for s in segments),
                "per_token": boundary_words(program, 1)}
    sim_seconds = sum(r["sim_seconds"] for r in records)
    return {
        "network": meta["network"], "method": meta["method"], "backend": backend, "images": n,
        "accuracy": None, "reference_accuracy": None,
        "bit_exact": (mismatches == 0 and not counter_mismatches) if rtl else None,
        "mismatches": mismatches, "cycles": cycles, "ideal_cycles": ideal,
        "utilization": None if not cycles else ideal / cycles, "counters": counters,
        "compression": {k: meta["compression"][k] for k in ("bits_per_weight", "ratio_vs_fp32", "bytes")},
        "sim_seconds": sim_seconds, "sim_cycles_per_second": None if not cycles else cycles / sim_seconds,
        "layers": [],
        # Extensions beyond DESIGN.md's contract (partitioned programs):
        "quality": quality,
        "jobs": len(records), "vectors": vectors, "lanes": lanes,
        "dram_latency": latency if rtl else None, "counter_mismatches": counter_mismatches,
        "golden_counters": golden, "segments": segments, "boundary": boundary,
        "host_ops": sorted({op for s in meta["segments"] if s["kind"] == "host" for op in s["ops"]}),
        "energy": partitioned_energy(program, counters if rtl else golden, boundary, n),
        "wall_seconds": wall,
    }



def partitioned_energy(program: Program, counters: dict, boundary: dict, n: int) -> dict:
    """Energy per input (picojoules, the report's table): the engine's jobs priced by their counters, and apart
    from them the host's side of every boundary (writing each job's int8 inputs to DRAM, reading its outputs
    back; the engine's own reads and writes of them are in its counters) and the host's operators, not priced.

    Without cycles (the golden model) the control overhead is priced at the ideal cycles.
    """
    from sim.report.energy.events import counter_events
    from sim.report.energy.memories import OnChipMemories
    from sim.report.energy.table import load_energy_table
    table = load_energy_table()
    per_input = {k: v / n for k, v in counters.items()}
    lanes = program.meta["engine"]["lanes"]
    cycles = per_input.get("cycles") or per_input["macs"] / lanes
    events = counter_events(per_input, lanes, table, memories=OnChipMemories.of_engine(program.config),
                            cycles=cycles)
    by_component: dict[str, float] = {}
    for e in events:
        by_component[e.component] = by_component.get(e.component, 0.0) + e.pj
    words = (boundary["host_writes_words"] + boundary["host_reads_words"]) / n
    boundary_pj = words * table.pj("dram_32b")
    engine_pj = sum(by_component.values())
    return {"engine_pj_per_input": engine_pj, "engine_by_component": by_component,
            "boundary_host_dram_words_per_input": words, "boundary_host_dram_pj_per_input": boundary_pj,
            "total_pj_per_input": engine_pj + boundary_pj,
            "host_ops_not_priced": sorted({op for s in program.meta["segments"] if s["kind"] == "host"
                                           for op in s["ops"]})}
