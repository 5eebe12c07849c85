"""``--method lr2vq`` on the engine: low-rank representation VQ (LR²VQ, Zhu et al., arXiv 2211.11397).

Each weight layer's sub-vectors (``lanes`` weights, the engine's rows) are clustered in an
``r``-dimensional subspace: codeword ``i`` is ``mu + B c_i`` with ``B`` (lanes x r), ``mu`` (lanes)
and ``c_i`` (r) fitted by :func:`model.compress.baselines.code_lr2vq` (k-means in the subspace, then
alternating rank-r fits of the cluster means and Lloyd steps; int8 factors).

**How the engine executes it.**  The program's ROM holds the ``K`` codewords the factors generate,
expanded to ``lanes`` int8 values each (one int8 scale per layer), and the layer runs in the ordinary
VQ mode: one codeword lookup and ``lanes`` MACs per sub-vector, the MAC count of k-means VQ of the same
shape.  The alternative, two chained layers (project every input sub-vector onto ``B``, then r-wide dot
products with the ``c_i``, plus the ``mu`` term), would cut the MACs per sub-vector from ``lanes`` to ``r``
but needs the engine's lanes to be ``r`` wide in the second layer and the projection as a block-diagonal
first layer (``lanes x r`` MACs per sub-vector per input, paid once per image): with ``lanes = 4`` and
``r = 2`` the saving is at most 2x in the MACs, while the expansion costs only ROM bits (``K x lanes``
bytes instead of ``K x r + lanes x (r + 1)``), which the report counts (``compression.codebook_bytes``).
So the factorization saves storage off the chip; on the chip it is VQ.
"""
from __future__ import annotations

import numpy as np

from model.compress.baselines import code_lr2vq
from model.compress.kmeans.network import join_subvectors
from model.compress.lowering import LayerCoding
from model.compress.multicodebook import DEFAULT_K, _to_int8, coded_program
from model.compress.registry import CompressError, CompressOptions, EngineJob, register_method
from model.contract.fixedpoint import ACT_MAX

#: Default dimension of the clustered subspace (the model-level baseline's).
DEFAULT_RANK = 2


def code_lowrank(w: np.ndarray, lanes: int, k: int, r: int, seed: int) -> tuple[LayerCoding, np.ndarray]:
    """One layer's LR²VQ coding as the engine runs it (VQ over the expanded int8 codewords; ``bias`` left zero)
    and its float reconstruction (out, in) at those int8 codewords."""
    _, _, params = code_lr2vq(np.asarray(w, np.float32), lanes, k, r, seed=seed)
    codebook = np.asarray(params["codebook"], np.float64)
    scale = float(np.abs(codebook).max()) / ACT_MAX or 1.0
    q = _to_int8(codebook, scale)
    idx = params["indices"]
    rec = join_subvectors(q[idx].astype(np.float32) * scale, w.shape[1])
    # The whole codebook is the layer's one section (what sets the engine's index width).
    return LayerCoding(q, idx, np.full(w.shape[0], scale), np.zeros(w.shape[0]), mode="vq", section_size=len(q)), rec


def _check(o: CompressOptions) -> None:
    if o.rank is not None and not 1 <= o.rank <= o.lanes:
        raise CompressError(f"--rank must be 1..--lanes ({o.lanes}), got {o.rank}")


@register_method("lr2vq", "low-rank VQ (LR2VQ, arXiv 2211.11397): k-means in a projected --rank subspace; an "
                          "engine program (VQ over the codewords the factors generate), model level for the "
                          "networks the engine does not run",
                 options=("codebook_size", "rank", "pes"), check=_check)
def lr2vq_program(job: EngineJob):
    """LR²VQ of every layer (:func:`code_lowrank`) as an engine program of VQ layers."""
    o = job.options
    k = DEFAULT_K if o.codebook_size is None else o.codebook_size
    r = DEFAULT_RANK if o.rank is None else o.rank
    program = coded_program(job, "lr2vq", lambda w, i: code_lowrank(w, o.lanes, k, r, o.seed + i))
    program.meta["info"].update(codebook_size=k, rank=r)
    return program
