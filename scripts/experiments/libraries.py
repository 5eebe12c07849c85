"""Libraries against the hand-written code they replace or not (issue 15, item 5), into reports/libraries.json.

Usage::

    OMP_NUM_THREADS=1 python -m scripts.experiments.libraries [--json reports/libraries.json]

Measured, all on one thread unless said (a few minutes):

``kmeans``
    On every weight layer of LeNet-300-100 and LeNet-5 with at least ``4 k`` sub-vectors (d = 4,
    k = 16, 64, 256): the mean squared error and seconds of the project's k-means
    (:func:`model.compress.kmeans.network.kmeans`: its k-means++ seeding, then ``faiss.Kmeans``'s
    Lloyd), of the numpy Lloyd it replaced (:func:`numpy_lloyd`, same seeding, early stop), of
    ``faiss.Kmeans`` with its own seeding (random sample; k-means++) and of scikit-learn's
    ``kmeans_plusplus`` seeding then faiss's Lloyd.  Determinism: the same seed twice, and on 2
    OpenMP threads, give bit-identical codebooks.
``pq_rq``
    The model-level product and residual coders (:func:`model.compress.baselines.code_pq`,
    :func:`~model.compress.baselines.code_rq`: int8 codewords, the residual taken against them)
    against ``faiss.ProductQuantizer`` and ``faiss.ResidualQuantizer`` (float training, then the same
    int8 rounding): weight MSE and seconds.
``end_to_end``
    ``vqe compress --network lenet300 --method kmeans`` (golden int8 accuracy on the 10k test images)
    with the project's k-means and with the numpy Lloyd patched in.
``kde``
    The held-out mean log-density over the bandwidth grid on the shipped codebook's donor sample: the
    project's :class:`~model.compress.universal.extract.GaussianKDE` against ``scipy.stats.gaussian_kde``.
``nested``
    One stage of the nested codebook (128 -> 1024 codewords on its 262,144 KDE draws): the hand-written
    fixed-prefix k-means (:func:`model.compress.universal.nested.kmeans_fixed_prefix`) against
    ``faiss.Kmeans`` with ``frozen_centroids`` (k-means++ and random seeding of the new codewords).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np

from model.compress.kmeans.network import KMEANS_ITERS, _kmeans_pp, kmeans, split_subvectors

NETWORKS = ("lenet300", "lenet5")
DIM = 4
KS = (16, 64, 256)
SHIPPED_BASE = "model/codebooks/universal-d4-k128-v1.npz"
NESTED_STAGE = 1024


def numpy_lloyd(vectors: np.ndarray, k: int, seed: int = 0, iters: int = KMEANS_ITERS):
    """The k-means the project used before faiss: the same k-means++ seeding, then numpy Lloyd
    iterations (float32 distances, float64 means) until the assignment is stable; an emptied cluster
    takes the worst-served vector.  Kept here as the measurement's baseline."""
    x = np.asarray(vectors, dtype=np.float64)
    uniq, inverse = np.unique(x, axis=0, return_inverse=True)
    if uniq.shape[0] <= k:
        return uniq.astype(np.float32), inverse.reshape(-1).astype(np.int64)
    xf = x.astype(np.float32)
    x_sq = np.einsum("ij,ij->i", xf, xf)

    def assign(c):
        d = xf @ (-2.0 * c.T.astype(np.float32)) + np.einsum("ij,ij->i", c, c).astype(np.float32)
        j = d.argmin(axis=1)
        return j, np.maximum(d[np.arange(len(j)), j] + x_sq, 0)

    centers = _kmeans_pp(xf, x_sq, k, np.random.default_rng(seed)).astype(np.float64)
    idx, dist = assign(centers)
    for _ in range(iters):
        counts = np.bincount(idx, minlength=k)
        sums = np.stack([np.bincount(idx, weights=x[:, d], minlength=k) for d in range(x.shape[1])], axis=1)
        full = counts > 0
        centers[full] = sums[full] / counts[full, None]
        empty = np.flatnonzero(~full)
        if empty.size:
            centers[empty] = x[np.argsort(-dist, kind="stable")[:empty.size]]
        new_idx, dist = assign(centers)
        if empty.size == 0 and np.array_equal(new_idx, idx):
            break
        idx = new_idx
    return centers.astype(np.float32), idx


def faiss_own(x: np.ndarray, k: int, seed: int, init_method: int):
    """``faiss.Kmeans`` seeded its own way (0: random sample, 1: k-means++), all vectors, KMEANS_ITERS."""
    import faiss
    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=KMEANS_ITERS, seed=seed, max_points_per_centroid=len(x),
                      min_points_per_centroid=1, init_method=init_method)
    km.train(x)
    return km.centroids, km.index.search(x, 1)[1][:, 0]


def sklearn_seeded_faiss(x: np.ndarray, k: int, seed: int):
    """scikit-learn's greedy k-means++ seeding, then faiss's Lloyd (as the project's)."""
    from sklearn.cluster import kmeans_plusplus

    from model.compress.kmeans.network import _faiss_lloyd
    x = np.ascontiguousarray(x, dtype=np.float32)
    init, _ = kmeans_plusplus(x, k, random_state=seed)
    return _faiss_lloyd(x, init.astype(np.float32), seed, KMEANS_ITERS)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def _mse(x, c, idx) -> float:
    return float(((np.asarray(x, np.float64) - np.asarray(c, np.float64)[idx]) ** 2).sum(1).mean())


def layer_matrices():
    """``(network, layer, weight matrix)`` of every weight layer of :data:`NETWORKS`."""
    from model.compress.universal.extract import resolve_network
    from model.nets.weightmat import get_module, weight_matrix
    for net in NETWORKS:
        model, names = resolve_network(net)
        for name in names:
            yield net, name, np.asarray(weight_matrix(get_module(model, name)), np.float32)


def kmeans_rows() -> list[dict]:
    import faiss
    rows = []
    for net, layer, w in layer_matrices():
        x = split_subvectors(w, DIM).reshape(-1, DIM)
        for k in KS:
            if len(x) < 4 * k:
                continue
            row = {"network": net, "layer": layer, "vectors": len(x), "k": k}
            (c, i), row["seconds"] = _timed(lambda: kmeans(x, k, seed=0))
            row["mse"] = _mse(x, c, i)
            (cb, ib), row["numpy_lloyd_seconds"] = _timed(lambda: numpy_lloyd(x, k, seed=0))
            row["numpy_lloyd_mse"] = _mse(x, cb, ib)
            row["identical_to_numpy_lloyd"] = bool(np.array_equal(c, cb) and np.array_equal(i, ib))
            for key, f in (("faiss_random_init", lambda: faiss_own(x, k, 0, 0)),
                           ("faiss_kmeanspp_init", lambda: faiss_own(x, k, 0, 1)),
                           ("sklearn_kmeanspp_then_faiss", lambda: sklearn_seeded_faiss(x, k, 0))):
                (cf, jf), row[key + "_seconds"] = _timed(f)
                row[key + "_mse"] = _mse(x, cf, jf)
            again, _ = kmeans(x, k, seed=0)
            faiss.omp_set_num_threads(2)
            try:
                two, _ = kmeans(x, k, seed=0)
            finally:
                faiss.omp_set_num_threads(1)
            row["same_seed_identical"] = bool(np.array_equal(c, again))
            row["two_threads_identical"] = bool(np.array_equal(c, two))
            row["codebook_sha256"] = _digest(c)
            rows.append(row)
            print(f"kmeans {net}/{layer} k={k}: MSE {row['mse']:.5g} ({row['seconds']:.2f} s), numpy Lloyd "
                  f"{row['numpy_lloyd_mse']:.5g} ({row['numpy_lloyd_seconds']:.2f} s)", flush=True)
    return rows


def _faiss_decode_int8(q, codes, codebooks: np.ndarray, per_stage: bool) -> np.ndarray:
    """Decode ``codes`` with ``q``'s codebooks rounded to int8 as the project's coders round them."""
    import faiss

    from model.compress.baselines import int8_side
    if per_stage:
        rounded = np.stack([int8_side(c)[0] for c in codebooks])
    else:
        rounded = int8_side(codebooks)[0]
    faiss.copy_array_to_vector(np.ascontiguousarray(rounded, np.float32).ravel(),
                               q.codebooks if per_stage else q.centroids)
    return q.decode(codes)


def pq_rq_rows() -> list[dict]:
    import faiss

    from model.compress.baselines import capped_k, code_pq, code_rq
    rows = []
    for net, layer, w in layer_matrices():
        if (net, layer) not in (("lenet300", "0"), ("lenet5", "classifier.0")):
            continue
        sub = split_subvectors(w, DIM)
        out, s, _ = sub.shape
        rowvec = np.ascontiguousarray(sub.reshape(out, s * DIM))
        for k in (16, 256):
            # Product VQ: one codebook per sub-vector position (faiss's M = s sub-quantizers).
            ke = capped_k(k, out)
            (rec, _, _), t_ours = _timed(lambda: code_pq(w, DIM, k, seed=0))
            pq = faiss.ProductQuantizer(s * DIM, s, int(np.log2(ke)))

            def faiss_pq():
                pq.train(rowvec)
                codes = pq.compute_codes(rowvec)
                cents = faiss.vector_to_array(pq.centroids).reshape(s, ke, DIM)
                return _faiss_decode_int8(pq, codes, cents, per_stage=False)
            frec, t_f = _timed(faiss_pq)
            rows.append({"network": net, "layer": layer, "coder": "pq", "k": ke, "ours_mse": _wmse(w, rec),
                         "ours_seconds": t_ours, "faiss_mse": _wmse(w, frec[:, :w.shape[1]]), "faiss_seconds": t_f})
            # Residual VQ, two stages (the baselines' and the engine's default).
            ke = capped_k(k, out * s)
            (rec, _, _), t_ours = _timed(lambda: code_rq(w, DIM, k, 2, seed=0))
            vec = np.ascontiguousarray(sub.reshape(-1, DIM))
            rq = faiss.ResidualQuantizer(DIM, 2, int(np.log2(ke)))

            def faiss_rq():
                rq.train(vec)
                codes = rq.compute_codes(vec)
                books = faiss.vector_to_array(rq.codebooks).reshape(2, ke, DIM)
                return _faiss_decode_int8(rq, codes, books, per_stage=True)
            frec, t_f = _timed(faiss_rq)
            frec = frec.reshape(out, s * DIM)[:, :w.shape[1]]
            rows.append({"network": net, "layer": layer, "coder": "rq2", "k": ke, "ours_mse": _wmse(w, rec),
                         "ours_seconds": t_ours, "faiss_mse": _wmse(w, frec), "faiss_seconds": t_f})
            print(f"pq/rq {net}/{layer} k={k}: " + "; ".join(
                f"{r['coder']} ours {r['ours_mse']:.4g} faiss {r['faiss_mse']:.4g}" for r in rows[-2:]), flush=True)
    return rows


def _wmse(w, rec) -> float:
    return float(np.mean((np.asarray(w, np.float64) - np.asarray(rec, np.float64)) ** 2))


def end_to_end() -> dict:
    """lenet300 --method kmeans, golden int8 accuracy, with the project's k-means and the numpy Lloyd."""
    import model.compress.kmeans.network as network
    from model.compress.pipeline import compress
    out = {}
    for key, impl in (("faiss", kmeans), ("numpy_lloyd", numpy_lloyd)):
        with mock.patch.object(network, "kmeans", impl):
            program, seconds = _timed(lambda: compress("lenet300", "kmeans", progress=False))
        info = program.meta["info"]
        out[key] = {"int8_accuracy": info["int8_accuracy"], "coded_float_quality": info["vq_float_quality"],
                    "compress_seconds": seconds}
        print(f"lenet300 kmeans ({key}): int8 accuracy {info['int8_accuracy']:.4f}", flush=True)
    out["float_accuracy"] = info["float_accuracy"]
    return out


def kde_comparison() -> dict:
    """Held-out log-likelihood over the bandwidth grid: ours against scipy's, on the shipped donors' sample."""
    from scipy.stats import gaussian_kde

    from model.compress.universal.codebook import load_codebook
    from model.compress.universal.extract import (BANDWIDTH_GRID, HELDOUT_FRACTION, SAMPLES_PER_DONOR,
                                                  GaussianKDE, donor_subvectors, pool_samples, scott_factor)
    base = load_codebook(SHIPPED_BASE)
    per_donor, _ = donor_subvectors(list(base.donors), base.dim)
    x, _ = pool_samples(per_donor, SAMPLES_PER_DONOR, 0)
    perm = np.random.default_rng(0).permutation(len(x))        # fit_kde's split for seed 0
    n_held = int(round(len(x) * HELDOUT_FRACTION))
    held, train = x[perm[:n_held]], x[perm[n_held:]]
    factors = [g * scott_factor(len(train), base.dim) for g in BANDWIDTH_GRID]
    ours, t_ours = _timed(lambda: GaussianKDE.fit(train, factors[0]).log_density(held, factors))

    def scipy_grid():
        return [float(gaussian_kde(train.T.astype(np.float64), bw_method=f).logpdf(held.T.astype(np.float64)).mean())
                for f in factors]
    theirs, t_scipy = _timed(scipy_grid)
    rel = [abs(a - b) / abs(b) for a, b in zip(ours, theirs)]
    print(f"kde: ours {t_ours:.1f} s, scipy {t_scipy:.1f} s, largest relative difference {max(rel):.2g}", flush=True)
    return {"train_points": len(train), "heldout_points": n_held, "factors": factors,
            "ours_heldout_loglik": [float(v) for v in ours], "scipy_heldout_loglik": theirs,
            "shipped_heldout_loglik": base.params["kde"]["heldout_loglik"], "max_relative_difference": max(rel),
            "same_bandwidth_choice": int(np.argmax(ours)) == int(np.argmax(theirs)),
            "ours_seconds": t_ours, "scipy_seconds": t_scipy}


def nested_stage() -> dict:
    """Stage 128 -> :data:`NESTED_STAGE` of the nested codebook: hand-written against faiss's frozen prefix."""
    import faiss

    from model.compress.universal.codebook import load_codebook
    from model.compress.universal.extract import (KDE_DRAWS, donor_subvectors, fit_kde, pool_samples,
                                                  quantize_codewords)
    from model.compress.universal.nested import kmeans_fixed_prefix, nearest, stage_draws
    base = load_codebook(SHIPPED_BASE)
    per_donor, _ = donor_subvectors(list(base.donors), base.dim)
    samples, _ = pool_samples(per_donor, int(base.params["samples_per_donor"]), 0)
    kde, _, rng = fit_kde(samples, seed=0)
    # The base codebook's own k-means (kde_codewords: the draws continue fit_kde's generator): would
    # `vqe codebook build` with this k-means write the shipped file's codewords?
    drawn = kde.sample(KDE_DRAWS, rng)
    base_same = {name: bool(np.array_equal(quantize_codewords(f(drawn, base.k, seed=0)[0])[0], base.codewords))
                 for name, f in (("kmeans", kmeans), ("numpy_lloyd", numpy_lloyd))}
    x = stage_draws(kde, NESTED_STAGE, 0, {})
    fixed = base.codewords.astype(np.float64) * base.scale
    (new, info), t_hand = _timed(lambda: kmeans_fixed_prefix(x, fixed, NESTED_STAGE, seed=1))
    out = {"shipped_base_codewords_rebuilt_by": base_same, "draws": len(x), "fixed": len(fixed), "k": NESTED_STAGE,
           "hand_mse": info["mse"], "hand_seconds": t_hand, "hand_lloyd_iterations": info["lloyd_iterations"]}
    for name, method in (("faiss_random_init", 0), ("faiss_kmeanspp_init", 1)):
        def run():
            km = faiss.Kmeans(base.dim, NESTED_STAGE, niter=info["lloyd_iterations"], seed=1,
                              max_points_per_centroid=len(x), min_points_per_centroid=1,
                              frozen_centroids=True, init_method=method)
            km.train(np.ascontiguousarray(x, np.float32), init_centroids=np.ascontiguousarray(fixed, np.float32))
            return km.centroids
        c, t = _timed(run)
        out[name + "_mse"] = float(nearest(x, c)[1].mean())
        out[name + "_seconds"] = t
        out[name + "_prefix_kept"] = bool(np.array_equal(c[:len(fixed)], fixed.astype(np.float32)))
    print(f"nested stage {NESTED_STAGE}: hand {out['hand_mse']:.5g} ({t_hand:.1f} s), faiss k-means++ "
          f"{out['faiss_kmeanspp_init_mse']:.5g} ({out['faiss_kmeanspp_init_seconds']:.1f} s)", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="reports/libraries.json", help="output (default reports/libraries.json)")
    args = ap.parse_args(argv)
    import faiss
    faiss.omp_set_num_threads(1)
    out = {"faiss": faiss.__version__, "dim": DIM, "seed": 0, "threads": 1,
           "kmeans": kmeans_rows(), "pq_rq": pq_rq_rows(), "end_to_end": end_to_end(),
           "kde": kde_comparison(), "nested": nested_stage()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2, default=lambda v: v.item() if isinstance(v, np.generic)
                                          else str(v)) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
