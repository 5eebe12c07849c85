"""A verification campaign: thousands of random and corrupted programs on the compiled RTL, against the golden model.

Each case is one program of a family (`sim.verify.families`), a job of 1 to 3
random inputs, and random DRAM timing (latency 3..32 cycles, stalls up to 200/256):

* ``random``: the program as drawn.  The RTL must match the golden model on
  every output word and every counter.
* ``corrupt``: the program with one random bit flipped in its descriptors or
  its row streams.  Where the golden model stops with an error, the RTL must
  stop with the same error code; where it runs, the RTL must match it as above.

Nothing may hang: a run without ``done`` within the hang bound
(`sim.simulate.hang_bound`) fails.  Cases run in batches, one harness process
per batch and family (`run_batch`), sharded like ``vqe run``
(`sim.shards.run_shards`).  A failing case is saved as its program file and the
``vqe run`` command that replays it (`save_failure`).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.codecs.vectors import random_vectors, unpack_vectors
from model.contract.counters import COUNTERS
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS, JOB_WORDS, vector_words
from model.golden.engine import GoldenEngine
from model.program.file import Program
from sim.backends.dram_model import MAX_LATENCY, MIN_LATENCY
from sim.verify.families import BY_NAME, FAMILIES

#: Kinds of case.
KINDS = ("random", "corrupt")
#: Most images in a case's job.
MAX_IMAGES = 3
#: Stall rates (1/256ths) the cases draw from; latencies are drawn from the DRAM model's whole range.
STALLS = (0, 0, 16, 64, 128, 200)
#: Cases per batch (one harness process per batch and family).
DEFAULT_BATCH = 100


@dataclass(frozen=True)
class Case:
    """One verification run: the ``seed``-th case of ``kind`` for a family.

    Members
    -------
    family, kind : str
    seed : int
        Draws the program, the flip, the images and the timing.
    """
    family: str
    kind: str
    seed: int


@dataclass(frozen=True)
class Drawn:
    """A case made concrete.

    Members
    -------
    program : Program
        The program as drawn (valid).
    run : Program
        What runs: ``program``, or its image with ``flip`` applied.
    x : numpy.ndarray
        The job's inputs: ``random_vectors`` of ``input_seed`` (what ``vqe run --seed`` gives).
    latency, stall, input_seed : int
        DRAM timing; the LFSR seed is ``input_seed`` too, as in ``vqe run``.
    flips : tuple of (int, int)
        The flipped (word, bit)s of the program image (none for a ``random`` case).
    """
    program: Program
    run: Program
    x: np.ndarray
    latency: int
    stall: int
    input_seed: int
    flips: tuple[tuple[int, int], ...] = ()


def flip_bits(program: Program, flips) -> Program:
    """``program`` with each (word, bit) of ``flips`` inverted in its image (not validated: the engine must
    catch what it breaks).  The job header's words are the host's, so they are not flipped.

    Raises
    ------
    ValueError
        If a word is in the job header or past the image, or a bit is not 0..31.
    """
    image = program.image.copy()
    for word, bit in flips:
        if not (JOB_WORDS <= word < len(image) and 0 <= bit < 32):
            raise ValueError(f"cannot flip word {word} bit {bit}: the program's descriptors and streams are words "
                             f"{JOB_WORDS}..{len(image) - 1} (the job header is written by vqe run), bits 0..31")
        image[word] ^= np.uint32(1 << bit)
    return Program(program.meta, image)


def draw(case: Case) -> Drawn:
    """The program, inputs, timing and (for ``corrupt``) flip of ``case``."""
    family = BY_NAME[case.family]
    program = family.program(case.seed)
    rng = np.random.default_rng([case.seed, KINDS.index(case.kind), 0x5EED])
    flips = ()
    run = program
    if case.kind == "corrupt":
        desc = int(program.image[2])
        end_desc = desc + program.meta["n_layers"] * DESC_WORDS
        # Half the flips in the descriptors (few words, many checks), half in the row streams.
        lo, hi = (desc, end_desc) if rng.integers(0, 2) or end_desc >= len(program.image) \
            else (end_desc, len(program.image))
        flips = ((int(rng.integers(max(lo, JOB_WORDS), hi)), int(rng.integers(0, 32))),)
        run = flip_bits(program, flips)
    input_seed = int(rng.integers(1, 1 << 31))
    n = int(rng.integers(1, MAX_IMAGES + 1))
    x = random_vectors(np.random.default_rng(input_seed), n, program.meta["input_features"])
    return Drawn(program, run, x, int(rng.integers(MIN_LATENCY, MAX_LATENCY + 1)), int(rng.choice(STALLS)),
                 input_seed, flips)


def replay_command(path: Path, d: Drawn) -> str:
    """The ``vqe run`` command that replays a case from its saved program file."""
    flips = "".join(f" --flip {word}:{bit}" for word, bit in d.flips)
    return (f"vqe run {path} --backend verilator --images {len(d.x)} --seed {d.input_seed} "
            f"--latency {d.latency} --stall {d.stall}{flips}")


@lru_cache(maxsize=None)
def _harness(family: str) -> str:
    """The family's built harness (built once per build directory; this process remembers where)."""
    from sim.backends.verilator import harness_for
    return str(harness_for(BY_NAME[family].config)[0])


def _golden(d: Drawn, image: np.ndarray):
    """The golden model's result, or the `EngineFault` it stops with."""
    try:
        return GoldenEngine(d.run.config).run(image)
    except EngineFault as fault:
        return fault


def _bound(d: Drawn, golden, image: np.ndarray, out_words: int) -> int:
    """Hang bound: from the golden counters of what runs, or of the valid program when the golden model faults."""
    from sim.simulate import hang_bound
    n_layers, n, lanes = d.program.meta["n_layers"], len(d.x), d.program.config.lanes
    if isinstance(golden, EngineFault):
        valid = GoldenEngine(d.program.config).run(d.program.dram_image(d.x)[0])
        size = {"dram_read_words": len(image), "dram_write_words": out_words, "sram_writes": 4 * len(image)}
        return 2 * hang_bound(valid.counters, n_layers, n, d.latency, lanes) + hang_bound(size, n_layers, n,
                                                                                          d.latency, lanes)
    return hang_bound(golden.counters, n_layers, n, d.latency, lanes)


def output_words(d: Drawn, golden) -> int:
    """DRAM words the job's outputs take: a flipped descriptor may change the last layer's width, so the
    golden model's output size when it ran, else the program's."""
    features = golden.outputs.shape[1] if not isinstance(golden, EngineFault) else d.run.meta["output_features"]
    return len(d.x) * vector_words(features, d.run.config.lanes)


def compare(d: Drawn, golden, rtl: dict) -> str | None:
    """Why the RTL's run disagrees with the golden model's, or None if it agrees."""
    if not rtl["done"]:
        return "hang: no done within the bound"
    if isinstance(golden, EngineFault):
        if rtl["error"] != golden.code:
            return f"error status: golden {golden.code.name}, rtl {EngineError(rtl['error']).name}"
        return None
    if rtl["error"]:
        return f"error status: golden NONE, rtl {EngineError(rtl['error']).name}"
    n = len(d.x)
    out = unpack_vectors(np.asarray(rtl["outputs"], dtype=np.uint32).reshape(n, -1), golden.outputs.shape[1])
    if not np.array_equal(out, golden.outputs):
        return f"outputs differ in {int(np.sum(np.any(out != golden.outputs, axis=1)))} of {n} images"
    bad = [k for k in COUNTERS if rtl["counters"][k] != golden.counters[k]]
    if bad:
        return "counters differ: " + ", ".join(f"{k} golden {golden.counters[k]} rtl {rtl['counters'][k]}"
                                               for k in bad)
    return None


def run_batch(cases: list[Case]) -> dict:
    """Run ``cases`` (one family's) on the golden model and the compiled RTL, one harness process.

    Returns
    -------
    dict
        ``runs`` {kind: n}, ``faults`` {kind: n} (cases where the golden model stopped with an
        error), ``fault_codes`` {error name: n}, ``cycles``, ``sim_seconds`` and ``failures``:
        [{``case``, ``reason``}].
    """
    from sim.backends.top import rom_hex
    from sim.backends.verilator import Job, run_jobs
    families = {c.family for c in cases}
    if len(families) != 1:
        raise ValueError("a batch holds one family's cases")
    binary = Path(_harness(families.pop()))
    drawn, goldens, jobs = [], [], []
    for case in cases:
        d = draw(case)
        image, out_addr, _ = d.run.dram_image(d.x)
        golden = _golden(d, image)
        drawn.append(d)
        goldens.append(golden)
        words = output_words(d, golden)
        jobs.append(Job(image, out_addr, words, _bound(d, golden, image, words),
                        d.latency, d.stall, d.input_seed, None, rom_hex(d.run.config)))
    results = run_jobs(binary, jobs)
    out = {"runs": dict.fromkeys(KINDS, 0), "faults": dict.fromkeys(KINDS, 0), "fault_codes": {}, "cycles": 0,
           "sim_seconds": 0.0, "failures": []}
    for case, d, golden, rtl in zip(cases, drawn, goldens, results):
        out["runs"][case.kind] += 1
        if isinstance(golden, EngineFault):
            out["faults"][case.kind] += 1
            out["fault_codes"][golden.code.name] = out["fault_codes"].get(golden.code.name, 0) + 1
        out["cycles"] += rtl["cycles_simulated"]
        out["sim_seconds"] += rtl["sim_seconds"]
        reason = compare(d, golden, rtl)
        if reason:
            out["failures"].append({"case": asdict(case), "reason": reason})
    return out


def plan(n_random: int, n_corrupt: int, *, seed: int = 0, families=None,
         batch: int = DEFAULT_BATCH) -> list[list[Case]]:
    """The campaign's cases, round-robin over ``families`` (default all), in batches of one family."""
    names = [f.name for f in FAMILIES] if families is None else list(families)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                         f"choose from {', '.join(BY_NAME)}")
    by_family: dict[str, list[Case]] = {n: [] for n in names}
    for kind, count in (("random", n_random), ("corrupt", n_corrupt)):
        for i in range(count):
            by_family[names[i % len(names)]].append(Case(names[i % len(names)], kind, seed + i))
    return [cases[i:i + batch] for cases in by_family.values() for i in range(0, len(cases), batch)]


def save_failure(failure: dict, out_dir: Path) -> Path:
    """Save a failing case's (valid) program and a JSON with its reason and the ``vqe run`` that replays it."""
    case = Case(**failure["case"])
    d = draw(case)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{case.family}-{case.kind}-{case.seed}.vqz"
    d.program.save(path)
    path.with_suffix(".json").write_text(json.dumps(
        {"case": failure["case"], "reason": failure["reason"], "replay": replay_command(path, d)}, indent=2) + "\n")
    return path


def run_campaign(n_random: int, n_corrupt: int, *, seed: int = 0, families=None, batch: int = DEFAULT_BATCH,
                 scheduler: str | None = None, workers: int | None = None, out_dir: Path = Path("build/verify"),
                 progress: bool = False, in_process: bool = False) -> dict:
    """Run a campaign and summarise it (see the module docstring); failing cases are saved under ``out_dir``."""
    from sim.shards import run_shards
    t0 = time.perf_counter()
    batches = plan(n_random, n_corrupt, seed=seed, families=families, batch=batch)
    for name in sorted({b[0].family for b in batches}):   # build each engine once, before the workers start
        _harness(name)
    tasks = [(f"batch {i} ({b[0].family}, {len(b)} cases)", (b,), {}) for i, b in enumerate(batches)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n_random + n_corrupt, unit="program", desc="verify", leave=False)
    sizes = {t[0]: len(t[1][0]) for t in tasks}
    try:
        results = run_shards(tasks, run_batch, scheduler=scheduler, workers=workers, in_process=in_process,
                             progress=(lambda label: bar.update(sizes[label])) if bar else None)
    finally:
        if bar is not None:
            bar.close()
    summary = {"runs": dict.fromkeys(KINDS, 0), "faults": dict.fromkeys(KINDS, 0), "fault_codes": {},
               "mismatches": 0, "hangs": 0, "cycles": 0, "sim_seconds": 0.0}
    failures = []
    for r in results:
        for kind in KINDS:
            summary["runs"][kind] += r["runs"][kind]
            summary["faults"][kind] += r["faults"][kind]
        for code, n in r["fault_codes"].items():
            summary["fault_codes"][code] = summary["fault_codes"].get(code, 0) + n
        summary["cycles"] += r["cycles"]
        summary["sim_seconds"] += r["sim_seconds"]
        failures += r["failures"]
    summary["hangs"] = sum(f["reason"].startswith("hang") for f in failures)
    summary["mismatches"] = len(failures) - summary["hangs"]
    summary["failures"] = [{"reason": f["reason"], "program": str(save_failure(f, Path(out_dir)))}
                           for f in failures]
    summary["families"] = sorted({b[0].family for b in batches})
    summary["wall_seconds"] = time.perf_counter() - t0
    return summary


def replay(program: Program, flips, x: np.ndarray, backend: str, *, latency: int, stall: int, seed: int) -> dict:
    """One case on any RTL backend, from its saved (valid) program and its ``flips``: what ``vqe run --flip``
    prints.

    Returns
    -------
    dict
        ``network``, ``backend``, ``images``, ``flip`` (the flips), ``golden_error`` and ``rtl_error``
        (error names, ``NONE`` when the run finished), ``done``, ``agree`` and ``reason`` (why not, or
        None), as the campaign judges it (`compare`).
    """
    from sim.simulate import simulate
    flips = tuple(flips)
    run = flip_bits(program, flips)
    d = Drawn(program, run, x, latency, stall, seed, flips)
    image, out_addr, _ = run.dram_image(x)
    golden = _golden(d, image)
    words = output_words(d, golden)
    rtl = simulate(run, image, backend, out_addr=out_addr, out_words=words,
                   max_cycles=_bound(d, golden, image, words), latency=latency, stall=stall,
                   seed=seed, vcd=None)
    reason = compare(d, golden, rtl)
    return {"network": program.meta["network"], "backend": backend, "images": len(x),
            "flip": [{"word": word, "bit": bit} for word, bit in flips],
            "golden_error": golden.code.name if isinstance(golden, EngineFault) else "NONE",
            "rtl_error": EngineError(rtl["error"]).name if rtl["done"] else None,
            "done": bool(rtl["done"]), "agree": reason is None, "reason": reason}
