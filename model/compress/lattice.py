"""``--method lattice``: every layer coded against the E8P lattice codebook (:mod:`model.codecs.e8p`), the structured
universal codebook the engine decodes in hardware (``LayerMode.E8P``, 8 lanes).

Each row of a weight layer (the engine's rows, sub-vectors of 8 weights) gets its own scale
``s_r``: the row is divided by it and each sub-vector goes to its nearest codeword, exactly
(:func:`model.codecs.e8p.e8p_nearest`); ``s_r`` is the best, in squared error, of
:data:`SCALE_STEPS` candidates ``rms(row) / t`` for ``t`` from :data:`SCALE_RANGE` (log-spaced).
Columns that are zero in every row (a convolution's padding channels, whose activations are
zero too) are masked out of the search.  No fine-tuning: the int8 program is measured as coded.
16 bits per 8 weights: 2 bits per weight plus the rows' headers.

:func:`code_rows` is the same nearest assignment with per-row scales for any codebook
(``scripts/experiments/lattice.py`` codes the KDE universal codebook with it for the equal-bits comparison).
"""
from __future__ import annotations

import numpy as np

from model.compress.registry import CompressError, CompressOptions, EngineJob, register_method

#: Candidate row scales ``rms(row) / t``: ``SCALE_STEPS`` values of ``t`` log-spaced over ``SCALE_RANGE``
#: (codeword units; an E8P lane's RMS is about 4.5, the KDE ROM's larger).
SCALE_STEPS = 8
SCALE_RANGE = (1.5, 9.0)


def active_columns(w: np.ndarray) -> np.ndarray:
    """Columns of ``w`` (out, in) that hold a weight in some row: (in,) bool (padding channels are all zero)."""
    return np.any(np.asarray(w) != 0, axis=0)


def code_rows(w: np.ndarray, dim: int, nearest, decode, scale_range=SCALE_RANGE, steps: int = SCALE_STEPS,
              rms_unit: float = 1.0):
    """Nearest-codeword coding of a weight matrix with a scale per row.

    Parameters
    ----------
    w : numpy.ndarray, shape (out, in)
    dim : int
        Sub-vector dimension.
    nearest : callable
        ``nearest(y, mask) -> indices``: the nearest codeword of each row of ``y`` (n, dim), in codeword units,
        ``mask`` (n, dim) weighting each coordinate's squared error.
    decode : callable
        ``decode(indices) -> codewords`` (..., dim) integers.
    scale_range, steps : tuple of float, int
        Candidate scales ``rms(row) / (t * rms_unit)``, ``t`` log-spaced over ``scale_range``.
    rms_unit : float
        The codebook's lane RMS relative to the E8P's (1 for E8P).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        Indices (out, ceil(in / dim)), row scales (out,) and the float reconstruction (out, in).
    """
    w = np.asarray(w, dtype=np.float64)
    out, n_in = w.shape
    s = -(-n_in // dim)
    pad = np.zeros((out, s * dim))
    pad[:, :n_in] = w
    mask_cols = np.zeros(s * dim)
    mask_cols[:n_in] = active_columns(w)
    sub = pad.reshape(out, s, dim)
    mask = np.broadcast_to(mask_cols.reshape(1, s, dim), sub.shape).reshape(-1, dim)
    live = mask_cols.astype(bool)
    rms = np.sqrt((w[:, live[:n_in]] ** 2).mean(1)) if live.any() else np.zeros(out)
    rms = np.where(rms > 0, rms, 1.0)
    best_err, best_idx, best_scale = np.full(out, np.inf), np.zeros((out, s), np.int64), np.ones(out)
    for t in np.geomspace(*scale_range, steps) * rms_unit:
        scale = rms / t
        idx = nearest((sub / scale[:, None, None]).reshape(-1, dim), mask).reshape(out, s)
        rec = decode(idx) * scale[:, None, None]
        err = (((rec - sub) ** 2).reshape(out, -1) * mask_cols).sum(1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_idx[better], best_scale[better] = idx[better], scale[better]
    rec = (decode(best_idx) * best_scale[:, None, None]).reshape(out, -1)[:, :n_in]
    return best_idx, best_scale, rec * active_columns(w)


def code_e8p(w: np.ndarray):
    """One layer's E8P coding (``bias`` left zero) and its float reconstruction (out, in)."""
    from model.codecs.e8p import E8P_DIM, e8p_codewords, e8p_decode, e8p_nearest
    from model.compress.lowering import LayerCoding
    idx, scale, rec = code_rows(w, E8P_DIM, e8p_nearest, e8p_decode)
    return LayerCoding(np.asarray(e8p_codewords()), idx, scale, np.zeros(len(scale)), mode="e8p"), rec


def _check(o: CompressOptions) -> None:
    from model.contract.layout import E8P_DIM
    if o.lanes != E8P_DIM:
        raise CompressError(f"the E8P lattice codebook has dimension {E8P_DIM}: use --lanes {E8P_DIM}, "
                            f"not {o.lanes}")


@register_method("lattice", "the E8P lattice codebook (QuIP#-style, 2**16 codewords of E8 + 1/4 decoded in hardware "
                            "from a 256-entry table, signs and a shift): 2 bits per weight, nearest point per "
                            "row-scaled sub-vector, --lanes 8", options=("pes",), check=_check)
def lattice_program(job: EngineJob):
    """Every weight layer coded against E8P (:func:`code_e8p`) as an engine program of ``LayerMode.E8P`` layers."""
    from model.compress.multicodebook import coded_program
    program = coded_program(job, "lattice", lambda w, i: code_e8p(w))
    program.meta["info"].update(codebook="e8p", codebook_size=1 << 16, table_entries=256)
    return program
