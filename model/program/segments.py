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

Host records by kind (``meta["host"]["kind"]``; a record without one is a zoo network's):

* a zoo network (MiniLM): ``{"network": NAME}``; each engine segment's ``name`` is the module it replaces;
* ``"user-graph"``, a user's model file partitioned by :mod:`model.nets.graph.partition`:
  ``{"kind": "user-graph", "network": NAME, "source": {"file", "format", "sha256", "input_shape"}}``.
  ``vqe run`` finds the file (next to the program or in the working directory, its SHA-256 checked),
  reads it again and runs its graph's nodes on the host.  Each engine segment adds ``input_node`` (the
  node whose tensor the chain reads), ``nodes`` (the chain's nodes, its output the last one's tensor),
  ``output_shape`` and, when the engine's output vector is not that tensor in order, ``output_index``
  (each element's index in the vector); each host segment adds its ``nodes``, and its ``ops`` name each
  node's operator and node (``layer_norm.default (node 'layer_norm')``).

The engine segments of one program run on one engine: its ROM holds every job's codebooks
(:func:`share_rom`), its units are those any job needs and its activation SRAM the largest any needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.contract.descriptor import Descriptor
from model.contract.errors import ProgramError
from model.contract.layout import DESC_WORDS, FIELD16, LayerKind, LayerMode, vector_words
from model.program.file import Program, rom_id

#: Metadata every engine segment shares, kept once at the top of a partitioned program.
SHARED_KEYS = ("engine", "rom", "rom_id", "rom_shared")
#: Engine units a job may need and another not: the joined engine has each one any job needs.
UNIT_KEYS = ("windows", "avgpool", "residual")


@dataclass
class HostSegment:
    """Work the host does between engine jobs: its operators, one short line each."""
    name: str
    ops: list[str]
    extra: dict = field(default_factory=dict)


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
        differ = [k for k in set(engine) | set(e) if k != "max_features" and k not in UNIT_KEYS
                  and e.get(k) != engine.get(k)]
        if differ or s.program.meta["rom_id"] != first["rom_id"]:
            raise ProgramError(f"engine segment {s.name} is for another engine ({', '.join(differ) or 'ROM'} differ)")
        engine["max_features"] = max(engine["max_features"], e["max_features"])
        engine.update({k: True for k in UNIT_KEYS if e.get(k)})
    records, images, at = [], [], 0
    for s in segments:
        if isinstance(s, HostSegment):
            records.append({"kind": "host", "name": s.name, "ops": list(s.ops), **s.extra})
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


def share_rom(segments: list) -> list:
    """``segments`` whose engine jobs index one ROM: each job's own codebooks (k-means: one per layer) follow the
    jobs' before it, and its layers' codebook bases move by as many entries.  Jobs that share a ROM already (the
    universal codebook) are returned as they are.

    Raises
    ------
    ProgramError
        The joined ROM has more entries than a descriptor can address.
    """
    jobs = [s for s in segments if isinstance(s, EngineSegment)]
    if all(s.program.meta["rom_shared"] for s in jobs) and len({s.program.meta["rom_id"] for s in jobs}) == 1:
        return segments
    if any(s.program.meta["rom_shared"] for s in jobs):
        raise ProgramError("engine segments with a shared ROM and with their own codebooks cannot share one engine")
    rom = [cw for s in jobs for cw in s.program.meta["rom"]]
    if len(rom) > FIELD16:
        raise ProgramError(f"the engine segments' codebooks need {len(rom)} ROM entries; descriptors address "
                           f"{FIELD16}")
    out, offset = [], 0
    for s in segments:
        if not isinstance(s, EngineSegment):
            out.append(s)
            continue
        meta, image = dict(s.program.meta), s.program.image.copy()
        at = int(image[2])
        for i, layer in enumerate(meta["layers"]):
            desc = Descriptor.decode(image[at + i * DESC_WORDS:at + (i + 1) * DESC_WORDS])
            # Only a VQ or sparse row's codebook is in the ROM (word 1 means other things for the other modes).
            if desc.kind in (LayerKind.FC, LayerKind.CONV) and desc.mode in (LayerMode.VQ, LayerMode.HUFFMAN):
                desc.codebook_base += offset
                image[at + i * DESC_WORDS:at + (i + 1) * DESC_WORDS] = desc.encode()
        offset += len(meta["rom"])
        meta.update(rom=rom, rom_id=rom_id(rom))
        job = Program(meta, image)
        job.validate(f"engine segment {s.name}")
        out.append(EngineSegment(s.name, s.ops, job, s.extra))
    return out


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
