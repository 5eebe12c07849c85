"""Extracting a universal codebook from donor networks: their row-normalised sub-vectors, a Gaussian
KDE with a held-out bandwidth, draws from it clustered into int8 codewords (VQ4ALL, arXiv 2412.06875).

The codebook file itself (format, hash, loading) is :mod:`model.compress.universal.codebook`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from model.compress.kmeans.network import kmeans
from model.compress.universal.codebook import DEFAULT_DIM, DEFAULT_K, CodebookError, UniversalCodebook
from model.contract.fixedpoint import ACT_MAX
from model.nets.weightmat import find_weight_layers, get_module, row_rms, weight_matrix

#: Sub-vectors drawn from each donor network.
SAMPLES_PER_DONOR = 16384


#: Fraction of the pooled sample held out to choose the KDE bandwidth.
HELDOUT_FRACTION = 0.15


#: Candidate bandwidth factors, as multiples of Scott's factor ``n^(-1/(dim+4))``.
BANDWIDTH_GRID = (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


#: Points drawn from the KDE and clustered into the codewords.
KDE_DRAWS = 1 << 17


#: Held-out rows whose distances to the KDE's points are computed at a time.
_KDE_CHUNK = 256


def normalized_subvectors(w2d: np.ndarray, dim: int) -> np.ndarray:
    """Row-RMS-normalized full sub-vectors of a weight matrix, shape (n, dim), float32.

    All-zero rows and each row's zero-padded last sub-vector are left out.
    """
    w = np.asarray(w2d, dtype=np.float64)
    rms = row_rms(w)
    w = w[rms > 0] / rms[rms > 0, None]
    full = w.shape[1] // dim
    return np.ascontiguousarray(w[:, :full * dim].reshape(-1, dim), dtype=np.float32)


def network_subvectors(model, layer_names: list[str] | None, dim: int) -> np.ndarray:
    """All normalized sub-vectors of a network's weight layers, pooled."""
    names = find_weight_layers(model) if layer_names is None else list(layer_names)
    parts = [normalized_subvectors(weight_matrix(get_module(model, n)), dim) for n in names]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise CodebookError(f"no weight row is {dim} or more wide")
    return np.concatenate(parts)


def resolve_network(name: str):
    """``(model, weight layer names)`` of a network: the zoo's if it knows it, else :mod:`model.nets.networks`."""
    try:
        from model.nets.zoo import load_network
    except ImportError:
        load_network = None
    if load_network is not None:
        try:
            zn = load_network(name, progress=False)
        except LookupError:  # not in the zoo: try model.nets.networks below
            zn = None
        except ImportError as e:  # the zoo knows it but a package it needs is missing
            raise CodebookError(f"donor {name!r}: {e}") from None
        if zn is not None:
            return zn.model, list(zn.weight_layers)
    from model.nets.networks import UnknownNetwork, get_network
    try:
        model = get_network(name, progress=False)
    except UnknownNetwork as e:
        raise CodebookError(str(e)) from None
    return model, find_weight_layers(model)


@dataclass
class GaussianKDE:
    """Gaussian KDE with bandwidth matrix ``factor^2 * cov``, computed in whitened coordinates.

    Kept hand-written rather than ``scipy.stats.gaussian_kde`` (the same estimator): on the shipped
    codebook's 41,779 donor points and 7,373 held-out ones the two agree to 2.2e-7 relative on every
    held-out log-likelihood of the bandwidth grid, but ours scores the whole grid in 12.8 s against
    scipy's 134 s (one distance matrix for all bandwidths), and scipy has no variance-corrected
    smoothed bootstrap for :meth:`sample` (reports/libraries.json).
    """
    points: np.ndarray      # (n, dim) whitened sample points
    mean: np.ndarray        # (dim,)
    chol: np.ndarray        # (dim, dim) lower Cholesky factor of cov
    factor: float

    @classmethod
    def fit(cls, x: np.ndarray, factor: float) -> "GaussianKDE":
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        cov += np.eye(len(cov)) * 1e-9 * np.trace(cov)
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (x - mean).T).T
        return cls(np.ascontiguousarray(z, dtype=np.float32), mean, chol, float(factor))

    def whiten(self, x: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.chol, (np.asarray(x, dtype=np.float64) - self.mean).T).T.astype(np.float32)

    def log_density(self, x: np.ndarray, factors=None) -> np.ndarray:
        """Mean log-density of the rows of ``x`` for each bandwidth factor (default: this KDE's)."""
        factors = [self.factor] if factors is None else list(factors)
        z = self.whiten(x)
        n, d = self.points.shape
        p_sq = np.einsum("ij,ij->i", self.points, self.points)
        log_det = float(np.sum(np.log(np.diag(self.chol))))
        total = np.zeros(len(factors))
        for i in range(0, len(z), _KDE_CHUNK):
            zc = z[i:i + _KDE_CHUNK]
            d2 = np.einsum("ij,ij->i", zc, zc)[:, None] - 2.0 * (zc @ self.points.T) + p_sq[None, :]
            np.maximum(d2, 0, out=d2)
            for j, h in enumerate(factors):
                e = d2 * np.float32(-0.5 / (h * h))
                m = e.max(axis=1, keepdims=True)
                lse = m[:, 0] + np.log(np.exp(e - m).sum(axis=1))
                total[j] += float(np.sum(lse - math.log(n) - d * math.log(h) - 0.5 * d * math.log(2 * math.pi)))
        return total / len(z) - log_det

    def sample(self, n: int, rng: np.random.Generator, preserve_variance: bool = True) -> np.ndarray:
        """``n`` draws from the KDE.

        With ``preserve_variance`` (Silverman's smoothed bootstrap with variance
        correction) each whitened draw ``z_i + h e`` is divided by
        ``sqrt(1 + h^2)``, so the draws keep the sample's covariance instead of
        inflating it by ``(1 + h^2)``; the shape of the density is the KDE's.
        """
        base = self.points[rng.integers(len(self.points), size=n)].astype(np.float64)
        z = base + self.factor * rng.standard_normal(base.shape)
        if preserve_variance:
            z /= math.sqrt(1.0 + self.factor ** 2)
        return (z @ self.chol.T + self.mean).astype(np.float32)


def scott_factor(n: int, dim: int) -> float:
    return float(n) ** (-1.0 / (dim + 4))


def fit_kde(samples: np.ndarray, *, seed: int = 0, grid=BANDWIDTH_GRID,
            heldout_fraction: float = HELDOUT_FRACTION) -> tuple[GaussianKDE, dict, np.random.Generator]:
    """The KDE of ``samples`` (n, dim) with its bandwidth chosen by held-out likelihood.

    Returns the KDE, the facts of the bandwidth choice, and the random
    generator in the state the held-out split left it (the codeword draws
    continue from it, so a build is one deterministic stream per ``seed``).
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 2 or len(x) < 4:
        raise CodebookError(f"need at least 4 sample sub-vectors, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_held = max(1, int(round(len(x) * heldout_fraction)))
    held, train = x[perm[:n_held]], x[perm[n_held:]]
    dim = x.shape[1]
    scott = scott_factor(len(train), dim)
    t0 = time.perf_counter()
    kde = GaussianKDE.fit(train, scott)
    factors = [g * scott for g in grid]
    ll = kde.log_density(held, factors)
    best = int(np.argmax(ll))
    kde.factor = factors[best]
    cov = (kde.chol @ kde.chol.T)
    info = {
        "kernel": "gaussian", "bandwidth_matrix": "factor^2 * sample covariance",
        "bandwidth_rule": "max held-out mean log-density over multiples of Scott's factor",
        "scott_factor": scott, "grid_multiples": list(grid), "grid_factors": factors,
        "heldout_loglik": [float(v) for v in ll], "factor": float(kde.factor),
        "factor_over_scott": float(grid[best]),
        "bandwidth_std": [float(v) for v in kde.factor * np.sqrt(np.diag(cov))],
        "train_points": int(len(train)), "heldout_points": int(n_held),
        "seconds_bandwidth": time.perf_counter() - t0,
    }
    return kde, info, rng


def kde_codewords(samples: np.ndarray, k: int, *, seed: int = 0, grid=BANDWIDTH_GRID,
                  heldout_fraction: float = HELDOUT_FRACTION, draws: int = KDE_DRAWS) -> tuple[np.ndarray, dict]:
    """``k`` float codewords from a KDE of ``samples`` (n, dim), and the facts of how.

    The bandwidth is chosen by held-out likelihood over ``grid`` (multiples of
    Scott's factor for the non-held-out count); the codewords are the k-means
    centres of ``draws`` points sampled from the KDE.
    """
    kde, info, rng = fit_kde(samples, seed=seed, grid=grid, heldout_fraction=heldout_fraction)
    t0 = time.perf_counter()
    drawn = kde.sample(draws, rng)
    codewords, _ = kmeans(drawn, k, seed=seed)
    # Since k-means' Lloyd moved to faiss this no longer writes the shipped universal-d4-k128-v1.npz's
    # codewords bit for bit (the numpy Lloyd it replaced did): the shipped file, its hash and the programs
    # that name it stay; rebuilding them is a separate step (reports/libraries.json).
    info.update(draws=int(draws), seconds_kmeans=time.perf_counter() - t0,
                codeword_method="k-means (k-means++ seeded, faiss Lloyd) on variance-corrected KDE draws")
    return codewords, info


def quantize_codewords(c: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric int8 codewords and their scale (``max|c| / 127``), rows sorted for a canonical file."""
    c = np.asarray(c, dtype=np.float64)
    m = float(np.abs(c).max())
    if not m > 0:
        raise CodebookError("all codewords are zero")
    scale = m / ACT_MAX
    q = np.clip(np.round(c / scale), -ACT_MAX, ACT_MAX).astype(np.int8)
    q = q[np.lexsort(q.T[::-1])]
    return q, scale


def pool_samples(per_donor: dict[str, np.ndarray], samples_per_donor: int, seed: int
                 ) -> tuple[np.ndarray, dict[str, int]]:
    """``samples_per_donor`` sub-vectors of each donor (with replacement only when it has fewer), pooled.

    Returns the pooled sample and each donor's sub-vector count.
    """
    if not per_donor:
        raise CodebookError("no donor networks given: the universal codebook needs at least one")
    dims = {v.shape[1] for v in per_donor.values()}
    if len(dims) != 1:
        raise CodebookError(f"donor sub-vectors have different dimensions {sorted(dims)}")
    rng = np.random.default_rng(seed)
    pooled, counts = [], {}
    for name in per_donor:
        v = np.asarray(per_donor[name], dtype=np.float32)
        if len(v) == 0:
            raise CodebookError(f"donor {name!r} has no sub-vectors")
        take = rng.choice(len(v), size=samples_per_donor, replace=len(v) < samples_per_donor)
        pooled.append(v[take])
        counts[name] = int(len(v))
    return np.concatenate(pooled), counts


def codebook_from_samples(per_donor: dict[str, np.ndarray], k: int = DEFAULT_K, *,
                          samples_per_donor: int = SAMPLES_PER_DONOR, seed: int = 0, **kde_kw) -> UniversalCodebook:
    """Build a codebook from each donor's normalized sub-vectors ``{donor: (n, dim)}``.

    Draws ``samples_per_donor`` from each (all of them, with replacement up to
    the count, when a donor has fewer), fits the KDE and extracts the codewords.
    """
    samples, counts = pool_samples(per_donor, samples_per_donor, seed)
    t0 = time.perf_counter()
    cw, kde_info = kde_codewords(samples, k, seed=seed, **kde_kw)
    q, scale = quantize_codewords(cw)
    params = {
        "normalization": "each weight row divided by its RMS; full sub-vectors of consecutive row weights",
        "samples_per_donor": int(samples_per_donor), "donor_subvectors": counts, "seed": int(seed),
        "k_requested": int(k), "kde": kde_info,
        "int8": {"scheme": "symmetric, scale = max|codeword| / 127",
                 "distinct_codewords": int(len(np.unique(q, axis=0))), "float_codewords": int(len(cw))},
        "seconds": time.perf_counter() - t0,
    }
    return UniversalCodebook(q, scale, tuple(per_donor), params)


def build_codebook(donors: list[str], dim: int = DEFAULT_DIM, k: int = DEFAULT_K, *,
                   samples_per_donor: int = SAMPLES_PER_DONOR, seed: int = 0,
                   resolve: Callable[[str], tuple] | None = None, **kde_kw) -> UniversalCodebook:
    """Extract a universal codebook from donor networks (see the module docstring).

    Parameters
    ----------
    donors : list of str
        Network names; each is turned into ``(model, weight layer names)`` by ``resolve``.
    dim, k : int
        Codeword dimension (engine lanes) and count.
    samples_per_donor : int
        Normalized sub-vectors drawn from each donor.
    seed : int
        Seeds the sampling, the held-out split, the KDE draws and k-means.
    resolve : callable, optional
        ``name -> (torch model, list of layer names or None)``; default
        :func:`resolve_network` (the zoo, then :mod:`model.nets.networks`).

    Raises
    ------
    CodebookError
        Empty donor list, unknown donor, or a donor without usable weights.
    """
    if dim < 1 or k < 1:
        raise CodebookError(f"dimension and codeword count must be >= 1, got dim={dim}, k={k}")
    per_donor, layers = donor_subvectors(donors, dim, resolve)
    cb = codebook_from_samples(per_donor, k, samples_per_donor=samples_per_donor, seed=seed, **kde_kw)
    cb.params["donor_layers"] = layers
    return cb


def donor_subvectors(donors: list[str], dim: int, resolve: Callable[[str], tuple] | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Every donor's normalized sub-vectors ``{donor: (n, dim)}`` and weight layer names.

    Raises
    ------
    CodebookError
        Empty or duplicated donor list, unknown donor, or a donor without usable weights.
    """
    donors = list(donors)
    if not donors:
        raise CodebookError("no donor networks given: the universal codebook needs at least one")
    if len(set(donors)) != len(donors):
        raise CodebookError(f"donor list has duplicates: {donors}")
    resolve = resolve or resolve_network
    per_donor, layers = {}, {}
    for name in donors:
        model, names = resolve(name)
        try:
            per_donor[name] = network_subvectors(model, names, dim)
        except CodebookError as e:
            raise CodebookError(f"donor {name!r}: {e}") from None
        layers[name] = list(names) if names is not None else find_weight_layers(model)
    return per_donor, layers
