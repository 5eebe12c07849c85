"""``--method rq`` and ``--method pq`` on the engine: residual and product VQ programs (Gong et al. 2014).

Each weight layer of the lowered network (its rows are the engine's rows, sub-vectors of ``lanes``
weights) is coded with k-means (:func:`model.compress.kmeans.network.kmeans`: k-means++, then faiss's Lloyd).
The stages and blocks stay this module's own loops rather than ``faiss.ResidualQuantizer`` /
``faiss.ProductQuantizer``: the engine's format needs each residual taken against the *int8* codewords
under one layer scale (faiss trains float codebooks), and its PQ pools a block's sub-vectors over all rows
(faiss's splits a vector's dimensions); reports/libraries.json measures the model-level counterparts:

``rq`` (``--stages S``, ``--codebook-size K``)
    ``S`` stages: stage 0 clusters the sub-vectors, each later stage what the earlier ones left,
    measured against the *int8* codewords the engine will add (so the stages correct the rounding too).
    One int8 scale per layer, ``max |stage-0 codeword| / 127``, for every stage (the engine adds the
    stages' integers: ``LayerMode.RVQ``); a later stage's codeword is clipped to int8.
``pq`` (``--codebook-size K``)
    The sub-vectors of a row are cut into column blocks of :data:`PQ_BLOCK_SUBVECTORS`; each block's
    sub-vectors (over all rows) get their own codebook (``LayerMode.PQ``), one int8 scale per layer.

``K`` is capped per layer (and block) as the model-level baselines cap it
(:func:`model.compress.baselines.capped_k`: a power of two at most a quarter of the vectors
clustered); the engine's codebook depth, and so every index's width, is the largest ``K``.
No fine-tuning: the int8 program is measured as coded.  Networks the engine does not run get the
model-level results of :mod:`model.compress.baselines`.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from model.compress.baselines import capped_k
from model.compress.kmeans.network import join_subvectors, kmeans, split_subvectors
from model.compress.lowering import LayerCoding, LoweredNetwork, codebook_depth_for, lower_sequence
from model.compress.registry import CompressError, CompressOptions, EngineJob, register_method
from model.contract.fixedpoint import ACT_MAX, ACT_MIN
from model.contract.layout import MODE_PARAM_BITS, RVQ_STAGES_MAX
from model.program.writer import build_program

#: Default codebook size per stage (rq) or block (pq), and residual stages: the model-level baselines'.
DEFAULT_K = 256
DEFAULT_STAGES = 2
#: Product VQ's column block, in sub-vectors (128 weights at 4 lanes): LeNet-300-100's first layer has 7.
PQ_BLOCK_SUBVECTORS = 32
assert PQ_BLOCK_SUBVECTORS.bit_length() <= 1 << MODE_PARAM_BITS


def _to_int8(codewords: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(codewords / scale), ACT_MIN, ACT_MAX).astype(np.int8)


def _padded(codebook: np.ndarray, k: int) -> np.ndarray:
    """A k-means codebook (it may have fewer codewords than asked) padded with zero codewords to ``k``."""
    return np.pad(codebook, ((0, k - len(codebook)), (0, 0)))


def code_rvq(w: np.ndarray, lanes: int, k: int, stages: int, seed: int) -> tuple[LayerCoding, np.ndarray]:
    """One layer's residual-VQ coding (``bias`` left zero) and its float reconstruction (out, in)."""
    sub = split_subvectors(np.asarray(w, np.float32), lanes)      # (out, s, lanes)
    vec = sub.reshape(-1, lanes)
    k = capped_k(k, len(vec))
    books, indices, scale = [], [], None
    resid = vec.copy()
    for t in range(stages):
        cb, idx = kmeans(resid, k, seed=seed + 1000 * t)
        cb = _padded(cb, k)
        if scale is None:
            scale = float(np.abs(cb).max()) / ACT_MAX or 1.0
        q = _to_int8(cb, scale)
        resid = resid - q[idx].astype(np.float32) * scale
        books.append(q)
        indices.append(idx)
    codebook = np.concatenate(books)
    idx = np.stack(indices, axis=-1).reshape(*sub.shape[:2], stages)
    rec = sum(codebook[t * k + idx[..., t]].astype(np.float32) for t in range(stages)) * scale
    coding = LayerCoding(codebook, idx, np.full(w.shape[0], scale), np.zeros(w.shape[0]), mode="rvq",
                         section_size=k)
    return coding, join_subvectors(rec, w.shape[1])


def code_pqvq(w: np.ndarray, lanes: int, k: int, seed: int,
              block: int = PQ_BLOCK_SUBVECTORS) -> tuple[LayerCoding, np.ndarray]:
    """One layer's product-VQ coding (``bias`` left zero) and its float reconstruction (out, in)."""
    sub = split_subvectors(np.asarray(w, np.float32), lanes)      # (out, s, lanes)
    out, s, _ = sub.shape
    blocks = range(0, s, block)
    k = min(capped_k(k, out * min(block, s - b)) for b in blocks)
    books, idx = [], np.zeros((out, s), dtype=np.int64)
    for j, b in enumerate(blocks):
        cb, bi = kmeans(sub[:, b:b + block].reshape(-1, lanes), k, seed=seed + j)
        books.append(_padded(cb, k))
        idx[:, b:b + block] = bi.reshape(out, -1)
    scale = float(max(np.abs(cb).max() for cb in books)) / ACT_MAX or 1.0
    codebook = _to_int8(np.concatenate(books), scale)
    block_of = np.arange(s) // block
    rec = codebook[block_of[None, :] * k + idx].astype(np.float32) * scale
    coding = LayerCoding(codebook, idx, np.full(out, scale), np.zeros(out), mode="pq", section_size=k,
                         block_subvectors=block)
    return coding, join_subvectors(rec, w.shape[1])


def with_weights(template: nn.Module, weights: list[np.ndarray]) -> nn.Module:
    """A copy of ``template`` whose weight layers (``nn.Linear``, in order) compute with ``weights``."""
    coded = copy.deepcopy(template).eval()
    linears = [m for m in coded if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, w in zip(linears, weights, strict=True):
            lin.weight.copy_(torch.from_numpy(np.asarray(w, np.float32)))
    return coded


def coded_program(job: EngineJob, method: str, code, codebook_depth: int | None = None, shared_rom=None):
    """Code every weight layer of ``job``'s lowered network with ``code(weight, index) -> (coding, float
    weight)``, lower it to int8 and lay it out; the engine's depth is the largest codebook's (or
    ``codebook_depth``), its ROM the layers' codebooks (or ``shared_rom``, as
    :func:`model.program.writer.build_program` takes it)."""
    template = job.task.net
    linears = [m for m in template if isinstance(m, nn.Linear)]
    t0 = time.perf_counter()
    codings, weights = [], []
    for i, lin in enumerate(linears):
        coding, rec = code(lin.weight.detach().numpy().astype(np.float32), i)
        bias = lin.bias.detach().numpy() if lin.bias is not None else np.zeros(lin.out_features)
        coding.bias = np.asarray(bias, np.float64)
        codings.append(coding)
        weights.append(rec)
    seconds = time.perf_counter() - t0
    coded = with_weights(template, weights)
    layers, scales, out_scales = lower_sequence(template, coded, codings, job.calib, job.options.lanes,
                                                getattr(template, "outputs", None))
    sizes = [c.section_size for c in codings]
    lowered = LoweredNetwork(name=job.network, method=method, lanes=job.options.lanes, input_scale=scales[0],
                             output_scale=out_scales[0], layers=layers, output_scales=out_scales,
                             info={"calibration_images": int(len(job.calib)), "activation_scales": scales + out_scales})
    depth = codebook_depth_for(max(sizes)) if codebook_depth is None else codebook_depth
    return build_program(lowered, codebook_depth=depth, shared_rom=shared_rom, info=dict(
        job.info, coded_float_quality=job.coded_quality(coded), compress_seconds=seconds, codebook_sizes=sizes))


def _check_rq(o: CompressOptions) -> None:
    if o.stages is not None and not 1 <= o.stages <= RVQ_STAGES_MAX:
        raise CompressError(f"--stages must be 1..{RVQ_STAGES_MAX} for an engine program (the engine's residual "
                            f"VQ unit sums up to {RVQ_STAGES_MAX} codewords), got {o.stages}")


@register_method("rq", "residual quantization (Gong et al. 2014): each sub-vector the sum of --stages codewords; "
                       "an engine program (the RVQ unit), model level for the networks the engine does not run",
                 options=("codebook_size", "stages", "pes"), check=_check_rq)
def rq_program(job: EngineJob):
    """Residual VQ of every layer (:func:`code_rvq`) as an engine program of ``LayerMode.RVQ`` layers."""
    o = job.options
    k = DEFAULT_K if o.codebook_size is None else o.codebook_size
    stages = DEFAULT_STAGES if o.stages is None else o.stages
    program = coded_program(job, "rq", lambda w, i: code_rvq(w, o.lanes, k, stages, o.seed + i))
    program.meta["info"].update(stages=stages, codebook_size=k)
    return program


@register_method("pq", "product quantization (Gong et al. 2014): a codebook per block of columns; an engine "
                       "program (the PQ block offsets), model level for the networks the engine does not run",
                 options=("codebook_size", "pes"))
def pq_program(job: EngineJob):
    """Product VQ of every layer (:func:`code_pqvq`) as an engine program of ``LayerMode.PQ`` layers."""
    o = job.options
    k = DEFAULT_K if o.codebook_size is None else o.codebook_size
    program = coded_program(job, "pq", lambda w, i: code_pqvq(w, o.lanes, k, o.seed + 100 * i))
    program.meta["info"].update(codebook_size=k, block_subvectors=PQ_BLOCK_SUBVECTORS)
    return program
