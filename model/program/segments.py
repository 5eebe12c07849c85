"""Partitioned programs: engine segments and host segments, one engine job per engine segment.

A network the engine runs only in part (a transformer: its Linear layers on
the engine, embeddings, attention, normalization and GELU on the host) is one
program file whose metadata lists its ``segments`` in execution order::

    {"kind": "host",   "name": ..., "ops": ["LayerNorm", ...]}
    {"kind": "engine", "name": ..., "ops": ["Linear 384->1536"], "words": [start, stop], "meta": {...}}

An engine segment's job (job header, descriptors, row streams) is the image's
words ``start:stop``, addressed from 0 as if it were alone in DRAM; its
``meta`` is a one-job program's metadata without the engine and ROM, which
every segment shares (:meth:`model.program.file.Program.engine_segments`).
The ``host`` record (``meta["host"]``) names the network whose modules the host
runs around the engine segments (each engine segment's ``name`` is the module it
replaces).  At each boundary the host writes the segment's int8 inputs to
DRAM and reads its int8 outputs back: the energy report counts those words
(:func:`boundary_words`) and lists the host's operators apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.contract.errors import ProgramError
from model.contract.layout import vector_words
from model.program.file import Program

#: Metadata every engine segment shares, kept once at the top of a partitioned program.
SHARED_KEYS = ("engine", "rom", "rom_id", "rom_shared")


@dataclass
class HostSegment:
    """Work the host does between engine jobs: its operators, one short line each."""
    name: str
    ops: list[str]


@dataclass
class EngineSegment:
    """One engine job: the program of the layers it runs, and what they are in the source network."""
    name: str
    ops: list[str]
    program: Program
    extra: dict = field(default_factory=dict)


def join_segments(network: str, method: str, segments: list, *, host: dict, info: dict | None = None) -> Program:
    """One partitioned program from its segments in execution order.

    Every engine segment's program must be for the same lanes, codebook depth, ROM and weight SRAM; the
    joined program's activation SRAM is the largest any of them needs.
    """
    jobs = [s for s in segments if isinstance(s, EngineSegment)]
    if not jobs:
        raise ProgramError("a partitioned program needs at least one engine segment")
    first = jobs[0].program.meta
    engine = dict(first["engine"])
    for s in jobs[1:]:
        e = s.program.meta["engine"]
        differ = [k for k in engine if k != "max_features" and e.get(k) != engine[k]]
        if differ or s.program.meta["rom_id"] != first["rom_id"]:
            raise ProgramError(f"engine segment {s.name} is for another engine ({', '.join(differ) or 'ROM'} differ)")
        engine["max_features"] = max(engine["max_features"], e["max_features"])
    records, images, at = [], [], 0
    for s in segments:
        if isinstance(s, HostSegment):
            records.append({"kind": "host", "name": s.name, "ops": list(s.ops)})
            continue
        words = len(s.program.image)
        records.append({"kind": "engine", "name": s.name, "ops": list(s.ops), "words": [at, at + words],
                        "meta": {k: v for k, v in s.program.meta.items() if k not in SHARED_KEYS}, **s.extra})
        images.append(s.program.image)
        at += words
    comp = [s.program.meta["compression"] for s in jobs]
    weights = sum(c["weights"] for c in comp)
    total_bytes = sum(c["bytes"] for c in comp)
    params = sum(c["ratio_vs_fp32"] * c["bytes"] / 4 for c in comp)   # weights and biases, as each job counts them
    meta = {"network": network, "method": method, "engine": engine,
            **{k: first[k] for k in SHARED_KEYS if k != "engine"},
            "host": host, "segments": records,
            "n_layers": sum(s.program.meta["n_layers"] for s in jobs),
            "compression": {"weights": weights, "bytes": total_bytes,
                            "bits_per_weight": 8 * total_bytes / weights,
                            "ratio_vs_fp32": 4 * params / total_bytes},
            "info": dict(info or {})}
    program = Program(meta, np.concatenate(images).astype(np.uint32))
    program.validate()
    return program


def partition_lines(program: Program) -> list[str]:
    """The partition, one line per segment with its operators (``vqe inspect``)."""
    lines = []
    for i, seg in enumerate(program.meta["segments"]):
        if seg["kind"] == "engine":
            m = seg["meta"]
            where = (f"engine job, {m['n_layers']} layer(s), {m['input_features']} -> {m['output_features']} "
                     f"values, image words {seg['words'][0]}..{seg['words'][1] - 1}")
        else:
            where = "host"
        lines.append(f"segment {i:>3} {where}: {seg['name']}: {'; '.join(seg['ops'])}")
    return lines


def boundary_words(program: Program, vectors: int) -> dict:
    """DRAM words the host writes (segment inputs) and reads back (segment outputs) at the engine segments'
    boundaries, for ``vectors`` input vectors per segment (the images of each job: tokens, for a transformer)."""
    lanes = program.meta["engine"]["lanes"]
    written = read = 0
    for seg, job in program.engine_segments():
        written += vectors * vector_words(job.meta["input_features"], lanes)
        read += vectors * vector_words(job.meta["output_features"], lanes)
    return {"host_writes_words": written, "host_reads_words": read}
