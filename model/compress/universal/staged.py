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
per-row least-squares scales, alternated :data:`ROUNDS` times, as the flat ROM's nearest start
(:func:`code_staged`).  The differentiable fit (:func:`model.compress.universal.fit.fit_universal`) sees a
staged ROM as the flat codebook of its ``section ** S`` stage sums (:class:`StagedSums`), starts from a
beam search over the stages (:func:`staged_assignment`) and keeps each sub-vector's :data:`BEAM` best sums
as its candidates (:func:`staged_candidates`).
"""
from __future__ import annotations

import numpy as np
import torch

from model.compress.kmeans.network import join_subvectors, kmeans, split_subvectors
from model.compress.universal.codebook import UniversalCodebook
from model.compress.universal.nested import nearest
from model.compress.universal.fit import UniversalLayer, UniversalNetwork, smallest_distances
from model.contract.fixedpoint import ACT_MAX
from model.nets.weightmat import get_module, layer_bias, row_rms, weight_matrix

#: Alternations of greedy assignment and per-row least-squares scale.
ROUNDS = 2
#: Donor sub-vectors sampled per donor to build the stages.
SAMPLES_PER_DONOR = 65536
PARAMS_KEY = "staged"
#: Partial sums kept per stage by the beam search (and candidate sums per sub-vector of the fit).
BEAM = 8
#: Sub-vectors searched at a time.
_CHUNK = 1 << 14
#: Most stage sums :class:`StagedSums` tabulates (64 MiB of float32 sums at 4 lanes): 2 x 2048, or 3 x 128.
MAX_SUMS = 1 << 22


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


class StagedSums:
    """A staged ROM seen as a flat codebook: entry ``v = sum_s i_s * section**s`` is the sum of codeword
    ``i_s`` of every section ``s`` (stage 0 lowest, as :func:`model.codecs.layers.rvq.pack_stages`).

    What :func:`model.compress.universal.fit.fit_universal` needs of a codebook: ``values()``, ``k``,
    ``dim``, ``donors``, ``content_hash()``; :meth:`split` turns its indices into the engine's per-stage ones.

    Parameters
    ----------
    rom : UniversalCodebook
        A staged ROM (:func:`is_staged`).

    Members
    -------
    stages, section : int
    k : int
        ``section ** stages`` sums.
    """

    def __init__(self, rom: UniversalCodebook):
        self.rom = rom
        self.stages, self.section = stage_shape(rom)
        if self.section ** self.stages > MAX_SUMS:
            raise ValueError(f"a staged ROM of {self.stages} sections of {self.section} has "
                             f"{self.section ** self.stages:,} stage sums; the fit tabulates at most {MAX_SUMS:,}")
        self.k, self.dim, self.donors = self.section ** self.stages, rom.dim, rom.donors
        v = rom.values().astype(np.float32)
        self.books = [v[s * self.section:(s + 1) * self.section] for s in range(self.stages)]
        table = np.zeros((1, self.dim), np.float32)
        for book in self.books:   # later stages vary slowest
            table = (book[:, None, :] + table[None, :, :]).reshape(-1, self.dim)
        self._values = table

    def values(self) -> np.ndarray:
        return self._values

    def content_hash(self) -> str:
        return self.rom.content_hash()

    def split(self, idx: np.ndarray) -> np.ndarray:
        """Sum indices ``(...)`` as the engine's stage indices ``(..., stages)``."""
        idx = np.asarray(idx, dtype=np.int64)
        return np.stack([(idx // self.section ** s) % self.section for s in range(self.stages)], axis=-1)


def staged_candidates(x: np.ndarray, sums: StagedSums, n: int, beam: int = BEAM) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best stage sums for every row of ``x`` ``(N, dim)``, by a beam search of width ``beam``
    over the stages: ``(sum indices (N, n), squared distances (N, n))``, best first.

    Stage 0 keeps the ``beam`` nearest codewords; each later stage extends every kept partial sum by its
    ``beam`` nearest codewords to the remainder and keeps the ``beam`` (at the last stage ``n``) best.
    """
    books = [torch.from_numpy(b) for b in sums.books]
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    width = min(beam, sums.section)
    n = min(n, sums.k, width * width if sums.stages > 1 else sums.section)   # what the last stage can offer
    out_i = np.empty((len(xt), n), np.int64)
    out_d = np.empty((len(xt), n), np.float32)
    for lo in range(0, len(xt), _CHUNK):
        xc = xt[lo:lo + _CHUNK]
        d, idx = smallest_distances(xc, books[0], min(beam, sums.section) if sums.stages > 1 else n)
        part = books[0][idx]                      # (m, kept, dim): the kept partial sums
        for s in range(1, sums.stages):
            m, b = idx.shape
            d2, j = smallest_distances((xc[:, None, :] - part).reshape(-1, sums.dim), books[s],
                                       min(beam, sums.section))
            j = j.reshape(m, b, -1)
            cand = (idx[:, :, None] + j * sums.section ** s).reshape(m, -1)
            parts = (part[:, :, None, :] + books[s][j]).reshape(m, -1, sums.dim)
            keep = min(n if s == sums.stages - 1 else beam, cand.shape[1])
            d, pos = torch.topk(d2.reshape(m, -1), keep, dim=1, largest=False, sorted=True)
            idx = torch.gather(cand, 1, pos)
            part = torch.gather(parts, 1, pos[:, :, None].expand(-1, -1, sums.dim))
        out_i[lo:lo + len(xc)], out_d[lo:lo + len(xc)] = idx[:, :n].numpy(), d[:, :n].numpy()
    return out_i, out_d


def staged_assignment(w2d: np.ndarray, sums: StagedSums, *, rounds: int = ROUNDS, top_n: int = BEAM,
                      col_scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Beam-searched stage sums with per-row least-squares scales, alternated ``rounds`` times, for the
    matrix ``w2d * col_scale`` (the columns a smoothed layer codes): ``(sum indices (out, S_sub), row_scale
    (out,), (candidates, squared distances) each (out, S_sub, top_n))``.  Pad columns of the last sub-vector
    are coded as zeros."""
    w = np.asarray(w2d, np.float64) * (1.0 if col_scale is None else np.asarray(col_scale, np.float64)[None, :])
    sub = split_subvectors(w, sums.dim)
    rms = row_rms(w)
    pos = rms[rms > 0]
    scale = np.where(rms > 0, rms, 1e-6 * (float(np.median(pos)) if pos.size else 1.0))
    values = sums.values().astype(np.float64)
    for r in range(max(1, rounds)):
        last = r == max(1, rounds) - 1
        cand, d2 = staged_candidates((sub / scale[:, None, None]).reshape(-1, sums.dim), sums,
                                     top_n if last else 1)
        idx = cand[:, 0].reshape(sub.shape[:2])
        rec = join_subvectors(values[idx], w.shape[1])
        num, den = np.einsum("ij,ij->i", w, rec), np.einsum("ij,ij->i", rec, rec)
        with np.errstate(invalid="ignore", divide="ignore"):
            ls = num / den
        if not last:
            scale = np.where((rms > 0) & (ls > 0) & np.isfinite(ls), ls, scale)
    shape = (*sub.shape[:2], -1)
    return idx, scale.astype(np.float32), (cand.reshape(shape), d2.reshape(shape))


def assign_staged(model, sums: StagedSums, names: list[str], *, name: str = "", rounds: int = ROUNDS,
                  top_n: int = BEAM, col_scales: dict | None = None):
    """:func:`staged_assignment` of every named layer: the start of the fit, ``(UniversalNetwork, candidates
    by layer)``; a layer with ``col_scales[name]`` codes its columns multiplied by it."""
    layers, cands = [], {}
    for n in names:
        mod = get_module(model, n)
        c = None if col_scales is None else col_scales.get(n)
        idx, scale, cands[n] = staged_assignment(weight_matrix(mod), sums, rounds=rounds, top_n=top_n, col_scale=c)
        layers.append(UniversalLayer(n, tuple(mod.weight.shape), idx, scale, layer_bias(mod),
                                     col_scale=None if c is None else np.asarray(c, np.float32)))
    return UniversalNetwork(name, sums, layers, {"method": "universal-staged-beam"}), cands
