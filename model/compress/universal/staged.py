"""A multi-stage universal ROM: S sections of K int8 codewords, a sub-vector the sum of one per section.

The engine's residual-VQ mode (``LayerMode.RVQ``) reads one codeword from each ROM section in the same
cycle and adds them lane-wise, so S sections of K entries give K**S effective codewords from S * K ROM
entries: 2 x 256 (16 bits per sub-vector of 4 weights) against the nested ROM's flat 16,384 entries (14
bits), or 2 x 128 at the same 14 bits with 1/64 of its ROM.  Like the flat universal ROM it is one image
shared by every network, built once from the donors' row-normalized sub-vectors
(:func:`model.compress.universal.extract.donor_subvectors`): stage 0 is k-means on them, each later stage
k-means on what the earlier int8 stages leave, every stage at one int8 scale (the engine adds the stages'
integers).  A file is a universal codebook file (:func:`model.compress.universal.codebook.save_codebook`,
content-hashed) whose ``params["staged"]`` says ``stages`` and ``section``.

Layers are coded greedily (nearest stage-0 codeword, then the nearest codeword to the residual, ...) with
per-row least-squares scales, alternated :data:`ROUNDS` times, as the flat ROM's nearest start.
"""
from __future__ import annotations

import numpy as np

from model.compress.kmeans.network import join_subvectors, kmeans, split_subvectors
from model.compress.universal.codebook import UniversalCodebook
from model.compress.universal.nested import nearest
from model.contract.fixedpoint import ACT_MAX
from model.nets.weightmat import row_rms

#: Alternations of greedy assignment and per-row least-squares scale.
ROUNDS = 2
#: Donor sub-vectors sampled per donor to build the stages.
SAMPLES_PER_DONOR = 65536
PARAMS_KEY = "staged"


def is_staged(codebook) -> bool:
    return isinstance(codebook, UniversalCodebook) and PARAMS_KEY in codebook.params


def stage_shape(codebook: UniversalCodebook) -> tuple[int, int]:
    """``(stages, section)`` of a staged codebook."""
    p = codebook.params[PARAMS_KEY]
    return int(p["stages"]), int(p["section"])


def build_staged(per_donor: dict[str, np.ndarray], section: int, stages: int, *, seed: int = 0,
                 samples_per_donor: int = SAMPLES_PER_DONOR) -> UniversalCodebook:
    """The staged ROM from the donors' normalized sub-vectors ``{donor: (n, dim)}``."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([v[rng.choice(len(v), min(len(v), samples_per_donor), replace=False)]
                        for v in per_donor.values()]).astype(np.float32)
    books, scale, resid = [], None, x
    for s in range(stages):
        c, _ = kmeans(resid, section, seed=seed + s)
        c = np.pad(c, ((0, section - len(c)), (0, 0)))
        if scale is None:
            scale = float(np.abs(c).max()) / ACT_MAX
        q = np.clip(np.round(c / scale), -ACT_MAX, ACT_MAX).astype(np.int8)
        idx, _ = nearest(resid, q.astype(np.float32) * scale)
        resid = resid - q[idx].astype(np.float32) * scale
        books.append(q)
    params = {PARAMS_KEY: {"stages": stages, "section": section, "seed": seed,
                           "samples_per_donor": samples_per_donor,
                           "method": "k-means per stage on what the earlier int8 stages leave",
                           "residual_rms": float(np.sqrt(np.mean(resid ** 2)))},
              "normalization": "each weight row divided by its RMS; full sub-vectors of consecutive row weights"}
    return UniversalCodebook(np.concatenate(books), scale, tuple(per_donor), params)


def code_staged(w2d: np.ndarray, codebook: UniversalCodebook, rounds: int = ROUNDS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy staged coding of a weight matrix: ``(indices (out, S_sub, stages) into each section,
    row_scale (out,), the float reconstruction (out, in))``; codeword ``i`` of stage ``s`` is ROM entry
    ``s * section + i``."""
    stages, section = stage_shape(codebook)
    values = codebook.values()
    books = [values[s * section:(s + 1) * section] for s in range(stages)]
    w = np.asarray(w2d, np.float64)
    sub = split_subvectors(w, codebook.dim)
    rms = row_rms(w)
    scale = np.where(rms > 0, rms, 1.0)
    for _ in range(max(1, rounds)):
        resid = (sub / scale[:, None, None]).reshape(-1, codebook.dim).astype(np.float32)
        picks, total = [], np.zeros_like(resid)
        for book in books:
            i, _ = nearest(resid, book)
            picks.append(i)
            total += book[i]
            resid = resid - book[i]
        rec = join_subvectors(total.reshape(sub.shape), w.shape[1]).astype(np.float64)
        num, den = np.einsum("ij,ij->i", w, rec), np.einsum("ij,ij->i", rec, rec)
        with np.errstate(invalid="ignore", divide="ignore"):
            ls = num / den
        scale = np.where((ls > 0) & np.isfinite(ls), ls, scale)
    idx = np.stack(picks, axis=-1).reshape(*sub.shape[:2], stages)
    return idx.astype(np.int64), scale.astype(np.float32), (rec * scale[:, None]).astype(np.float32)
