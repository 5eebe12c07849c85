"""``--method universal``: the registered method, for engine programs and for model-level fits.

On a network the engine runs (:func:`model.nets.registry.engine_networks`) it writes an engine
program whose ROM is the shipped universal codebook (or ``--codebook``); on
any other zoo network it fits the network to a stage of the nested ROM at
model level and returns JSON (:mod:`model.compress.universal.recipes`).
"""
from __future__ import annotations

import time

import numpy as np

from model.compress.registry import CompressError, CompressOptions, EngineJob, register_method

SUMMARY = "a universal codebook shared by every network, kept in ROM (VQ4ALL)"


def universal_codebook(codebook, lanes: int):
    """The codebook ``--method universal`` fits to: a file, a :class:`UniversalCodebook` or the shipped one."""
    from model.compress.universal.codebook import CodebookError, UniversalCodebook, load_codebook
    if not isinstance(codebook, UniversalCodebook):
        try:
            codebook = load_codebook(codebook)
        except CodebookError as e:
            raise CompressError(str(e)) from None
    if codebook.dim != lanes:
        raise CompressError(f"the codebook has dimension {codebook.dim} but the engine has {lanes} lanes "
                            f"(--lanes must equal the codebook's dimension)")
    return codebook


@register_method("universal", SUMMARY, options=("codebook", "pes"), check=lambda o: universal_codebook(o.codebook, o.lanes))
def universal_program(job: EngineJob):
    """Fit every layer to the universal codebook; the ROM is that codebook, shared by every program."""
    from model.compress.lowering import codebook_depth_for
    from model.compress.universal.fit import fit_universal
    from model.compress.universal.lower import lower_universal
    from model.compress.universal.recipes import recipe_for
    from model.program.writer import build_program
    o = job.options
    codebook = universal_codebook(o.codebook, o.lanes)
    from model.compress.universal.staged import is_staged
    if is_staged(codebook):
        return staged_program(job, codebook)
    model = job.task.net
    t0 = time.perf_counter()
    r = recipe_for(job.network)     # the network's training budget (CREPE-tiny, MTCNN: 1000 + 200 steps of 64/128)
    net = fit_universal(model, codebook, job.data.train, name=job.network, seed=o.seed, progress=o.progress,
                        soft_steps=r.soft_steps, hard_steps=r.hard_steps, batch=r.batch, top_n=r.top_n,
                        threads=r.threads, t_start=r.t_start)
    seconds = time.perf_counter() - t0
    lowered = lower_universal(net, job.calib, o.lanes, template=model)
    lowered.name = job.network
    return build_program(lowered, codebook_depth=codebook_depth_for(codebook.k), shared_rom=codebook.codewords,
                         info=dict(job.info, universal_float_quality=job.coded_quality(net.apply(model)),
                                   compress_seconds=seconds, codebook_size=codebook.k,
                                   codebook_sha256=codebook.content_hash(),
                                   codebook_donors=list(codebook.donors)))


def staged_program(job: EngineJob, codebook):
    """A staged universal ROM (:mod:`model.compress.universal.staged`): every layer coded greedily against its
    sections (per-row scales, no fit) and run by the engine's residual-VQ mode; the ROM is shared."""
    from model.compress.lowering import LayerCoding
    from model.compress.multicodebook import coded_program
    from model.compress.universal.staged import code_staged, stage_shape
    _, section = stage_shape(codebook)

    def code(w, i):
        idx, row_scale, rec = code_staged(w, codebook)
        return LayerCoding(codebook.codewords, idx, float(codebook.scale) * row_scale.astype(np.float64),
                           np.zeros(len(w)), mode="rvq", section_size=section), rec
    program = coded_program(job, "universal", code, shared_rom=codebook.codewords)
    program.meta["info"].update(codebook_size=codebook.k, codebook_sha256=codebook.content_hash(),
                                staged=codebook.params["staged"])
    return program


#: Activation SRAM (values per vector) of the chip that runs every engine network: O-Net's first
#: convolution writes 46 x 46 x 32 = 67,712 values.
ALL_NETWORKS_MAX_FEATURES = 1 << 17


def universal_engine_config(weight_sram_kib: int, lanes: int | None = None, *, all_networks: bool = False):
    """The universal engine: the shipped universal codebook as its ROM, ``weight_sram_kib`` of weight SRAM.

    With ``all_networks``, the chip that runs every universal program (``vqe verilog`` with no program
    writes it): convolution and pooling, and an activation SRAM of :data:`ALL_NETWORKS_MAX_FEATURES`
    values.  Without, the fully-connected engine of the report's area sweep (1024 values).
    """
    from model.compress.lowering import codebook_depth_for
    from model.compress.universal.codebook import load_codebook
    from model.contract.config import WORDS_PER_KIB, EngineConfig
    cb = load_codebook()
    return EngineConfig(lanes=cb.dim if lanes is None else lanes, codebook_depth=codebook_depth_for(cb.k),
                        rom=tuple(map(tuple, cb.codewords.astype(int).tolist())),
                        weight_sram_words=weight_sram_kib * WORDS_PER_KIB,
                        **({"max_features": ALL_NETWORKS_MAX_FEATURES, "windows": True} if all_networks else {}))


@register_method("universal", SUMMARY, kind="model", options=("codebook", "codebook_size", "quick"),
                 describe=lambda result: f", ROM prefix k={result['config']['k']}")
def universal_model(network: str, o: CompressOptions) -> dict:
    """``vqe compress --method universal`` on a network the engine does not run: a model-level fit."""
    return compress_universal_model(network, codebook=o.codebook, k=o.codebook_size, seed=o.seed, quick=o.quick,
                                    progress=o.progress)


def compress_universal_model(network: str, *, codebook=None, k: int | None = None, seed: int = 0,
                             quick: bool = False, progress: bool = True) -> dict:
    """Fit a zoo network the engine does not run (MiniLM, CREPE, MTCNN) to the universal ROM, at model level.

    The network's :data:`model.compress.universal.recipes.RECIPES` entry sets the
    budget (for MiniLM: 300 soft steps from temperature 0.25 and 60 hard
    steps on 4096 distillation sentences); ``k`` picks the stage of the nested ROM
    (default the recipe's largest).

    Returns
    -------
    dict
        ``network``, ``method``, ``config``, ``metric``, ``float_quality``,
        ``quality``, ``bits_per_weight``, ``ratio_vs_fp32`` and ``rows``: the
        fit's table rows (:func:`model.compress.universal.recipes.fit_zoo_network`), its untrained
        start(s) included.
    """
    from model.compress.universal.codebook import DEFAULT_DIM, DEFAULT_NESTED, CodebookError, load_codebook
    from model.compress.universal.recipes import fit_zoo_network, recipe_for
    from model.nets.registry import network_names
    if network not in network_names():
        raise CompressError(f"unknown network {network!r}; choose one of {', '.join(network_names())}")
    try:
        cb = load_codebook(DEFAULT_NESTED if codebook is None else codebook, dim=DEFAULT_DIM)
    except CodebookError as e:
        raise CompressError(str(e)) from None
    k = max(recipe_for(network, quick=quick).prefixes) if k is None else int(k)
    if k not in cb.stages:
        raise CompressError(f"--codebook-size {k}: the codebook's usable sizes are "
                            f"{', '.join(map(str, cb.stages))}")
    _, _, _, rows = fit_zoo_network(network, cb, quick=quick, seed=seed, progress=progress, prefixes=[k])
    fit = rows[0]
    return {"network": network, "method": "universal", "config": fit["config"], "metric": fit["metric"],
            "float_quality": fit["float_quality"], "quality": fit["quality"],
            "bits_per_weight": fit["bits_per_weight"], "ratio_vs_fp32": fit["ratio_vs_fp32"],
            "quick": quick, "rows": rows,
            "note": "model-level result: the engine runs kmeans, universal and pvq programs of lenet300/lenet5"}
