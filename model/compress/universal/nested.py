"""Nested universal codebooks: one ROM whose prefixes are themselves good codebooks.

A nested codebook grows a shipped base codebook (its first ``stages[0]``
entries, kept bit for bit, int8 values and scale) in stages: stage ``i`` adds
``stages[i] - stages[i-1]`` codewords by k-means on draws from the *same*
kernel density estimate the base was extracted from (same donors, same
per-donor samples, same held-out bandwidth choice; see :mod:`model.compress.universal.codebook`),
with every codeword of the earlier stages held fixed.  So the first
``stages[i]`` entries are the k-means codebook of that size given the smaller
ones, and a network may use any stage as its codebook with
``ceil(log2 stages[i])``-bit indices: small networks keep the 128-entry prefix
(and the 128-deep engine ROM), bigger ones use more of the same ROM.

Extension parameters (recorded in the file's ``params["nested"]``):

* the KDE draws (variance-corrected smoothed bootstrap, as for the base), in
  blocks of :data:`NESTED_DRAWS` points: block 0 drawn with the generator
  seeded ``(seed, EXTENSION_STREAM)``, block ``j >= 1`` with
  ``(seed, EXTENSION_STREAM, j)``, all independent of the base's draws.  A
  stage of ``k`` codewords clusters the first ``max(1, ceil(k *
  DRAWS_PER_CODEWORD / NESTED_DRAWS))`` blocks (one block up to 4096
  codewords, four at 16384), so the prefixes of a file built to more stages
  are those of one built to fewer;
* stage ``i`` of the whole list (the base is stage 0) seeds its generator with
  ``seed + i``, so a nested file extended by :func:`extend_codebook` is the
  file built to all its stages at once;
* per stage: D^2 seeding of the new codewords against the distances to all
  codewords so far, in :data:`SEED_ROUNDS` batches, then at most :data:`LLOYD_ITERS` Lloyd
  iterations that move only the new codewords (an emptied one is re-seeded
  with the worst-served draw);
* int8 with the base's scale (so the base's entries are unchanged), clipped to
  +-127; a new codeword that rounds onto an existing one is replaced by the
  rounded worst-served draw not yet in the codebook.  Each stage's new block
  is sorted lexicographically (a canonical file).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from model.compress.universal.codebook import CodebookError, UniversalCodebook
from model.compress.universal.extract import SAMPLES_PER_DONOR, donor_subvectors, fit_kde, pool_samples
from model.contract.fixedpoint import ACT_MAX

#: Cumulative codeword counts of the shipped nested codebook (the first is the base's).
NESTED_STAGES = (128, 1024, 2048, 4096, 8192, 16384)
#: KDE draws per block (every stage clusters whole blocks, the same ones whatever the last stage,
#: so a file built to more stages has the same prefixes).
NESTED_DRAWS = 1 << 18
#: Draws wanted per codeword: a stage takes enough blocks for this many.
DRAWS_PER_CODEWORD = 64
#: Rounds of D^2 sampling that seed a stage's new codewords.
SEED_ROUNDS = 64
#: Lloyd iterations per stage (fewer when the assignment stops changing).
LLOYD_ITERS = 15
#: Second element of the extension draws' seed, apart from the base's stream.
EXTENSION_STREAM = 1
#: Draw-by-codeword distances computed at a time (entries).
_BLOCK = 1 << 24


def nearest(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest row of ``c`` for every row of ``x``."""
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    ct = torch.as_tensor(np.ascontiguousarray(c, dtype=np.float32))
    c_sq = (ct * ct).sum(1)
    rows = max(1, _BLOCK // max(1, len(ct)))
    idx = torch.empty(len(xt), dtype=torch.int64)
    d2 = torch.empty(len(xt), dtype=torch.float32)
    x_sq = (xt * xt).sum(1)
    for i in range(0, len(xt), rows):
        # |c|^2 - 2 x.c in one fused pass; |x|^2 does not change the arg-min and is added after.
        d = torch.addmm(c_sq[None, :], xt[i:i + rows], ct.T, beta=1.0, alpha=-2.0)
        v, j = d.min(dim=1)
        idx[i:i + rows], d2[i:i + rows] = j, v
    return idx.numpy(), (d2 + x_sq).clamp_min(0).numpy().astype(np.float64)


def _seed_new(x: np.ndarray, d2: np.ndarray, n_new: int, rng: np.random.Generator) -> np.ndarray:
    """``n_new`` centres by D^2 sampling in :data:`SEED_ROUNDS` rounds (k-means|| style): each round
    draws a batch of draws with probability proportional to their squared distance ``d2`` to the
    nearest centre so far, then updates ``d2`` (sequential k-means++ would take one pass per centre)."""
    d2 = d2.astype(np.float64).copy()
    out = []
    per_round = -(-n_new // SEED_ROUNDS)
    while len(out) < n_new:
        total = d2.sum()
        if not total > 0:
            raise CodebookError("the KDE draws are all on existing codewords: nothing left to cluster")
        m = min(per_round, n_new - len(out), int(np.count_nonzero(d2)))
        pick = rng.choice(len(x), size=m, replace=False, p=d2 / total)
        out.extend(x[pick])
        _, d_new = nearest(x, x[pick])
        np.minimum(d2, d_new, out=d2)
    return np.array(out, dtype=np.float64)


def kmeans_fixed_prefix(x: np.ndarray, fixed: np.ndarray, k: int, *, seed: int = 0,
                        iters: int = LLOYD_ITERS) -> tuple[np.ndarray, dict]:
    """``k - len(fixed)`` new centres for the draws ``x`` by k-means with the ``fixed`` centres held.

    Hand-written, not faiss: the nested ROM's format needs the prefix fixed, and this procedure (its D^2
    seeding and Lloyd) is what built the shipped nested file, which a rebuild must reproduce.
    ``faiss.Kmeans(frozen_centroids=True)`` holds a prefix too; reports/libraries.json times it on the
    128 -> 1024 stage (faster, slightly higher MSE, a different file): moving to it means rebuilding
    and re-hashing the shipped codebook, a separate step.

    Returns the new centres (float64) and facts (iterations, mean squared
    error of the draws before and after).
    """
    x = np.asarray(x, dtype=np.float64)
    fixed = np.asarray(fixed, dtype=np.float64)
    n_new = k - len(fixed)
    if n_new < 1:
        raise CodebookError(f"a stage must add codewords: {k} requested, {len(fixed)} already fixed")
    rng = np.random.default_rng(seed)
    _, d2_fixed = nearest(x, fixed)
    new = _seed_new(x, d2_fixed, n_new, rng)
    m = len(fixed)
    idx, d2 = nearest(x, np.concatenate([fixed, new]))
    mse_seed = float(d2.mean())
    done = 0
    for done in range(1, iters + 1):
        sel = idx >= m
        j = idx[sel] - m
        counts = np.bincount(j, minlength=n_new)
        sums = np.stack([np.bincount(j, weights=x[sel, c], minlength=n_new) for c in range(x.shape[1])], axis=1)
        full = counts > 0
        new[full] = sums[full] / counts[full, None]
        empty = np.flatnonzero(~full)
        if empty.size:
            new[empty] = x[np.argsort(-d2, kind="stable")[:empty.size]]
        new_idx, d2 = nearest(x, np.concatenate([fixed, new]))
        if empty.size == 0 and np.array_equal(new_idx, idx):
            break
        idx = new_idx
    return new, {"lloyd_iterations": done, "mse_seeded": mse_seed, "mse": float(d2.mean())}


def quantize_new(new: np.ndarray, existing: np.ndarray, scale: float, x: np.ndarray) -> tuple[np.ndarray, int]:
    """New float codewords as int8 at ``scale``, distinct from ``existing`` (int8) and each other.

    A codeword that rounds onto one already present is replaced by the rounded
    draw of ``x`` worst served by the codebook so far that is not present.
    Returns the block (sorted lexicographically) and how many were replaced.
    """
    q = np.clip(np.round(np.asarray(new) / scale), -ACT_MAX, ACT_MAX).astype(np.int8)
    seen = {r.tobytes() for r in existing}
    keep, dup = [], 0
    for r in q:
        if r.tobytes() in seen:
            dup += 1
            continue
        seen.add(r.tobytes())
        keep.append(r)
    if dup:
        book = np.concatenate([existing, np.array(keep, np.int8).reshape(-1, existing.shape[1])])
        _, d2 = nearest(x, book.astype(np.float64) * scale)
        xq = np.clip(np.round(x / scale), -ACT_MAX, ACT_MAX).astype(np.int8)
        for i in np.argsort(-d2, kind="stable"):
            if len(keep) == len(q):
                break
            if xq[i].tobytes() not in seen:
                seen.add(xq[i].tobytes())
                keep.append(xq[i])
        if len(keep) < len(q):
            raise CodebookError(f"only {len(keep)} distinct int8 codewords of {len(q)} could be placed")
    block = np.array(keep, dtype=np.int8)
    return block[np.lexsort(block.T[::-1])], dup


def stage_draws(kde, k: int, seed: int, blocks: dict, draws: int = NESTED_DRAWS) -> np.ndarray:
    """The KDE draws a stage of ``k`` codewords clusters: the first blocks of :data:`NESTED_DRAWS`
    (``draws``) points, enough for :data:`DRAWS_PER_CODEWORD` per codeword.  ``blocks`` caches them."""
    n_blocks = max(1, -(-k * DRAWS_PER_CODEWORD // draws))
    for j in range(len(blocks), n_blocks):
        key = [seed, EXTENSION_STREAM] if j == 0 else [seed, EXTENSION_STREAM, j]
        blocks[j] = kde.sample(draws, np.random.default_rng(key)).astype(np.float64)
    return np.concatenate([blocks[j] for j in range(n_blocks)]) if n_blocks > 1 else blocks[0]


def extend_codebook(base: UniversalCodebook, per_donor: dict[str, np.ndarray], stages=NESTED_STAGES, *,
                    draws: int = NESTED_DRAWS, iters: int = LLOYD_ITERS, progress=None) -> UniversalCodebook:
    """Grow ``base`` into a nested codebook of ``stages[-1]`` codewords (see the module docstring).

    Parameters
    ----------
    base : UniversalCodebook
        Its codewords become the first ``base.k`` entries, unchanged.  A
        nested ``base`` is continued: its stages are kept and the new ones
        appended, giving the file a build to all the stages at once gives.
    per_donor : dict of str to numpy.ndarray
        Each donor's normalized sub-vectors (:func:`model.compress.universal.codebook.donor_subvectors`),
        from the donors ``base`` was extracted from.
    stages : sequence of int
        Increasing cumulative codeword counts, starting at ``base.k``.
    draws, iters : int
        KDE draws per block; Lloyd iterations per stage.
    progress : callable, optional
        ``str -> None``, told when each stage ends.

    Raises
    ------
    CodebookError
        Stages that do not start at ``base.k`` or do not increase, donors that
        are not the base's, or a KDE that is not the base's (its bandwidth or
        held-out likelihoods differ: other donor weights).
    """
    stages = [int(s) for s in stages]
    if not stages or stages[0] != base.k or any(b <= a for a, b in zip(stages, stages[1:])):
        raise CodebookError(f"nested stages must increase from the base's {base.k} codewords, got {stages}")
    if tuple(per_donor) != base.donors:
        raise CodebookError(f"donors {list(per_donor)} are not the base codebook's {list(base.donors)}")
    old = base.params.get("nested")
    if isinstance(old, dict):  # continue a nested file: its base is the root
        root_params, root_hash = old["base_params"], old["base_sha256"]
        done_stages, done_facts = [int(k) for k in old["stages"]], list(old["stage_facts"])
        done_seconds = float(old.get("seconds", 0.0))
        if int(old.get("draws", draws)) != int(draws):
            raise CodebookError(f"{draws} draws per block, but the nested base was built with {old['draws']}")
    else:
        root_params, root_hash = base.params, base.content_hash()
        done_stages, done_facts, done_seconds = [base.k], [], 0.0
    seed = int(base.params.get("seed", 0))
    spd = int(base.params.get("samples_per_donor", SAMPLES_PER_DONOR))
    samples, _ = pool_samples(per_donor, spd, seed)
    t0 = time.perf_counter()
    kde, kde_info, _ = fit_kde(samples, seed=seed)
    # The held-out log-likelihoods fingerprint the pooled sample: equal ones mean the same KDE.
    want = base.params.get("kde", {})
    same = (math.isclose(kde.factor, want.get("factor", math.nan), rel_tol=1e-9)
            and np.allclose(kde_info["heldout_loglik"], want.get("heldout_loglik", math.nan), rtol=1e-6, atol=0))
    if not same:
        raise CodebookError(f"the donors' KDE (bandwidth {kde.factor:.6g}) is not the base codebook's "
                            f"({want.get('factor', math.nan):.6g}): donor weights or sampling changed")
    if int(draws) < 4 * DRAWS_PER_CODEWORD:
        raise CodebookError(f"{draws} KDE draws per block are too few (need {4 * DRAWS_PER_CODEWORD})")
    blocks: dict[int, np.ndarray] = {}
    book = np.ascontiguousarray(base.codewords, dtype=np.int8)
    stage_info = []
    for i, k in enumerate(stages[1:], start=len(done_stages)):
        ts = time.perf_counter()
        x = stage_draws(kde, k, seed, blocks, int(draws))
        new, info = kmeans_fixed_prefix(x, book.astype(np.float64) * base.scale, k, seed=seed + i, iters=iters)
        clipped = int(np.sum(np.abs(new).max(axis=1) > ACT_MAX * base.scale))
        block, dup = quantize_new(new, book, base.scale, x)
        book = np.concatenate([book, block])
        _, d2 = nearest(x, book.astype(np.float64) * base.scale)
        info.update(k=k, added=len(block), draws=len(x), clipped_to_int8_range=clipped, replaced_duplicates=dup,
                    mse_int8=float(d2.mean()), seconds=time.perf_counter() - ts)
        stage_info.append(info)
        if progress is not None:
            progress(f"stage {k}: draw MSE {info['mse_int8']:.5f} ({info['seconds']:.0f} s)")
    nested = {
        "stages": done_stages + stages[1:], "base_sha256": root_hash, "base_params": root_params,
        "method": "k-means on KDE draws with all earlier codewords fixed, stage by stage",
        "kde_factor": float(kde.factor), "draws": int(draws), "draws_per_codeword": DRAWS_PER_CODEWORD,
        "seed_rounds": SEED_ROUNDS, "draw_seed": [seed, EXTENSION_STREAM], "lloyd_iterations_max": int(iters),
        "int8": "base scale, clipped to +-127; duplicates replaced by worst-served draws",
        "stage_facts": done_facts + stage_info, "seconds": done_seconds + time.perf_counter() - t0,
    }
    params = {k: v for k, v in base.params.items() if k not in ("seconds", "nested", "prefix_of")}
    params["nested"] = nested
    return UniversalCodebook(book, base.scale, base.donors, params)


def build_nested_codebook(base: UniversalCodebook, stages=NESTED_STAGES, *, resolve=None,
                          **kw) -> UniversalCodebook:
    """:func:`extend_codebook` with the base's donors loaded by name (``resolve``: see
    :func:`model.compress.universal.codebook.build_codebook`)."""
    per_donor, _ = donor_subvectors(list(base.donors), base.dim, resolve)
    return extend_codebook(base, per_donor, stages, **kw)
