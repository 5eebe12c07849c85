"""The universal codebook (VQ4ALL, arXiv 2412.06875): one int8 ROM of codewords for every network.

Extraction
==========
1. **Normalize.**  Every weight layer (Linear/Conv, as a matrix: see
   :mod:`model.nets.weightmat`) of every donor network has each row divided by the
   row's RMS, so all rows of all networks have unit RMS and share one
   distribution whatever their layer's or network's weight scale (RMS rather
   than max-abs: a single outlier weight would otherwise shrink the whole row
   towards zero).  Rows are cut into sub-vectors of ``dim`` weights; a row's
   zero-padded last sub-vector and all-zero rows are left out.  In use, a row
   is represented as ``scale_row * codeword``, the per-row scale being free in
   the engine (it folds into the row's requantization multiplier).
2. **Sample equally.**  :data:`SAMPLES_PER_DONOR` sub-vectors are drawn
   uniformly (without replacement when there are enough) from each donor's
   pooled sub-vectors, so a big network does not outvote a small one.
3. **Kernel density estimate.**  A Gaussian KDE with bandwidth matrix
   ``H = h^2 * Cov`` (``Cov`` the pooled sample covariance, as in
   ``scipy.stats.gaussian_kde``).  The factor ``h`` is chosen by held-out
   likelihood: :data:`HELDOUT_FRACTION` of the pooled sample is set aside
   and ``h`` is the multiple of Scott's factor ``n^(-1/(dim+4))`` in
   :data:`BANDWIDTH_GRID` that maximizes the mean log-density of the
   held-out points under the KDE of the rest (Scott's rule assumes a
   Gaussian and over-smooths these peaked, heavy-tailed distributions).
4. **Codewords from the density.**  :data:`KDE_DRAWS` points are drawn from
   the KDE (a random sample point plus Gaussian noise of covariance ``H``,
   shrunk towards the mean by ``1/sqrt(1 + h^2)`` so the draws keep the
   sample covariance: Silverman's variance-corrected smoothed bootstrap) and
   clustered by k-means (:func:`model.compress.kmeans.network.kmeans`) into ``k`` codewords: the
   codebook that minimizes the expected squared error under the smoothed
   density, not under the finite sample.
5. **int8.**  The codewords are quantized symmetrically with one scale
   ``max|c| / 127``: the ROM holds ``k`` entries of ``dim`` int8 values.

Nested codebook
===============
1.75 bits per weight (a 7-bit index per 4 weights) is enough for the small
networks but not for a transformer like MiniLM.  Rather than a second
codebook, the shipped 128 entries are the first stage of a *nested* codebook
(:data:`DEFAULT_NESTED`, :data:`NESTED_K` entries, built by
:mod:`model.compress.universal.nested`): stages of 1024, 2048, 4096, 8192 and 16384
codewords are added by k-means on draws from the same KDE (same donors,
samples and bandwidth) with all earlier codewords held fixed, and quantized
with the same int8 scale.  So ``load_codebook()`` is still the 128-entry ROM
the engine is built with, and ``load_codebook(k=1024)`` (or
``cb.prefix(1024)`` of the nested file) is its first 1024 entries: a network
may use any stage, with ``log2(stage)``-bit indices (2.5, 2.75, 3, 3.25, 3.5
bits per weight at dim 4).  The extension parameters are recorded in the
file's ``params["nested"]`` and described in :mod:`model.compress.universal.nested`:
KDE draws in blocks of 2^18 = 262144 (block 0 seeded ``(seed, 1)``, block
``j`` ``(seed, 1, j)``), 64 per codeword (one block up to 4096 codewords, two
at 8192, four at 16384); D^2 seeding of each stage's new codewords against
the fixed ones (64 batches), then at most 15 Lloyd iterations moving only the
new ones.

The file
========
``model/codebooks/universal-d{dim}-k{k}-v{FORMAT_VERSION}.npz`` (NumPy npz,
no pickles): ``format``, ``codewords`` (int8, ``(k, dim)``), ``scale``,
``dim``, ``count``, ``donors``, ``params`` (JSON: normalization, KDE
bandwidth, sample counts, seeds; for a nested file also ``nested``: its
stages, the base codebook's parameters and hash, and the extension's facts)
and ``sha256``, a hash over all of them.  :func:`load_codebook` rejects a
corrupt, truncated or mismatched file (for a nested one also stages that do
not increase to its count, or a base prefix that does not hash to the base it
names) with a one-line :class:`CodebookError`.
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model.compress.kmeans.network import kmeans
from model.contract.errors import VqeError
from model.contract.fixedpoint import ACT_MAX
from model.nets.weightmat import find_weight_layers, get_module, row_rms, weight_matrix

FORMAT_VERSION = 1
#: Default codeword dimension (the engine's default lanes) and count (7-bit indices).
DEFAULT_DIM = 4
DEFAULT_K = 128
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
#: The codebook shipped with the repository.
CODEBOOK_DIR = Path(__file__).resolve().parents[2] / "codebooks"
DEFAULT_CODEBOOK = CODEBOOK_DIR / f"universal-d{DEFAULT_DIM}-k{DEFAULT_K}-v{FORMAT_VERSION}.npz"
#: Codewords of the shipped nested codebook, whose first :data:`DEFAULT_K` are :data:`DEFAULT_CODEBOOK`'s.
NESTED_K = 16384
DEFAULT_NESTED = CODEBOOK_DIR / f"universal-d{DEFAULT_DIM}-k{NESTED_K}-nested-v{FORMAT_VERSION}.npz"
_FIELDS = ("format", "codewords", "scale", "dim", "count", "donors", "params", "sha256")


class CodebookError(VqeError):
    """A codebook cannot be built, read or used; the message is one line."""


@dataclass
class UniversalCodebook:
    """The universal codebook: the engine's ROM image.

    Attributes
    ----------
    codewords : numpy.ndarray of int8, shape (k, dim)
        One ROM entry per row.
    scale : float
        Real value of one int8 step: codeword ``i`` is ``codewords[i] * scale``
        in units of a row's RMS.
    donors : tuple of str
        Networks whose weights shaped the codebook.
    params : dict
        How it was built (normalization, KDE bandwidth, sample counts, seeds, timings).
    """
    codewords: np.ndarray
    scale: float
    donors: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        c = np.asarray(self.codewords)
        if c.dtype != np.int8 or c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
            raise CodebookError(f"codewords must be a non-empty (k, dim) int8 array, got {c.dtype} {c.shape}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise CodebookError(f"codebook scale must be positive and finite, got {self.scale}")
        self.donors = tuple(str(d) for d in self.donors)

    @property
    def dim(self) -> int:
        return int(self.codewords.shape[1])

    @property
    def k(self) -> int:
        return int(self.codewords.shape[0])

    @property
    def index_bits(self) -> int:
        """Bits of one index: ``ceil(log2 k)``."""
        return max(1, (self.k - 1).bit_length())

    def values(self) -> np.ndarray:
        """The codewords as float32 (``codewords * scale``)."""
        return self.codewords.astype(np.float32) * np.float32(self.scale)

    def content_hash(self) -> str:
        return _content_hash(self.codewords, self.scale, self.donors, _params_json(self.params))

    @property
    def rom_bytes(self) -> int:
        """Bytes of the ROM image (one int8 per codeword value)."""
        return self.k * self.dim

    @property
    def stages(self) -> tuple[int, ...]:
        """Codeword counts usable as a codebook: the nested stages, or just ``k``."""
        nested = self.params.get("nested")
        return tuple(int(s) for s in nested["stages"]) if isinstance(nested, dict) else (self.k,)

    def prefix(self, k: int) -> "UniversalCodebook":
        """The codebook of the first ``k`` entries; ``k`` must be one of :attr:`stages`.

        The base stage comes back with the base codebook's own parameters, so
        it is identical (same content hash) to the base file; the others keep
        this codebook's parameters plus ``prefix_of``.
        """
        k = int(k)
        if k == self.k:
            return self
        if k not in self.stages:
            raise CodebookError(f"a {self.k}-codeword codebook has no {k}-codeword prefix "
                                f"(usable sizes: {', '.join(map(str, self.stages))})")
        if k == self.stages[0]:
            params = json.loads(_params_json(self.params["nested"]["base_params"]))
        else:
            params = dict(self.params, prefix_of=self.k)
        return UniversalCodebook(self.codewords[:k].copy(), self.scale, self.donors, params)


# ---------------------------------------------------------------------------
# Normalized sub-vectors


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


# ---------------------------------------------------------------------------
# Kernel density estimate


@dataclass
class GaussianKDE:
    """Gaussian KDE with bandwidth matrix ``factor^2 * cov``, computed in whitened coordinates."""
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
    info.update(draws=int(draws), seconds_kmeans=time.perf_counter() - t0,
                codeword_method="k-means (k-means++ seeded Lloyd) on variance-corrected KDE draws")
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


# ---------------------------------------------------------------------------
# File


def _params_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=float)


def _content_hash(codewords: np.ndarray, scale: float, donors, params_json: str) -> str:
    h = hashlib.sha256()
    c = np.ascontiguousarray(codewords, dtype=np.int8)
    h.update(f"vqe-universal-codebook:{FORMAT_VERSION}:{c.shape[0]}:{c.shape[1]}:{float(scale).hex()}:".encode())
    h.update(c.tobytes())
    h.update(json.dumps(list(donors)).encode())
    h.update(params_json.encode())
    return h.hexdigest()


def default_filename(dim: int, k: int) -> str:
    return f"universal-d{dim}-k{k}-v{FORMAT_VERSION}.npz"


def save_codebook(cb: UniversalCodebook, path: str | Path) -> Path:
    """Write ``cb`` as an npz file (see the module docstring); returns the path."""
    path = Path(path)
    pj = _params_json(cb.params)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, format=np.int64(FORMAT_VERSION), codewords=np.ascontiguousarray(cb.codewords),
                            scale=np.float64(cb.scale), dim=np.int64(cb.dim), count=np.int64(cb.k),
                            donors=np.array(list(cb.donors), dtype=str), params=np.array(pj),
                            sha256=np.array(_content_hash(cb.codewords, cb.scale, cb.donors, pj)))
    return path


def load_codebook(path: str | Path | None = None, *, dim: int | None = None, k: int | None = None) -> UniversalCodebook:
    """Read a codebook file, or a prefix of a nested one.

    Parameters
    ----------
    path : path, optional
        Default: the shipped :data:`DEFAULT_CODEBOOK` (128 codewords, the
        engine's ROM) when ``k`` is None or 128, else the shipped nested
        :data:`DEFAULT_NESTED`.
    dim : int, optional
        Required codeword dimension (engine lanes).
    k : int, optional
        Required codeword count: the file's own count, or one of its nested
        stages (the prefix of that many codewords is returned).

    Raises
    ------
    CodebookError
        Unreadable, not a codebook, wrong format version, inconsistent or
        corrupted (hash mismatch), a nested file whose base prefix is not its
        recorded base, or not of the required dimension/count.
    """
    if path is None:
        path = DEFAULT_CODEBOOK if k is None or k == DEFAULT_K else DEFAULT_NESTED
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [f for f in _FIELDS if f not in z.files]
            if missing:
                raise CodebookError(f"{path}: not a universal codebook file (missing {', '.join(missing)})")
            data = {f: z[f] for f in _FIELDS}
    except CodebookError:
        raise
    except FileNotFoundError:
        raise CodebookError(f"{path}: codebook file not found") from None
    except (OSError, ValueError, EOFError, KeyError, RuntimeError, struct.error, zipfile.BadZipFile, zlib.error) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CodebookError(f"{path}: not a readable codebook file ({msg})") from None
    try:
        version = int(data["format"])
        cw = data["codewords"]
        scale = float(data["scale"])
        fdim, fcount = int(data["dim"]), int(data["count"])
        donors = tuple(str(d) for d in np.atleast_1d(data["donors"]))
        pj = str(data["params"])
        digest = str(data["sha256"])
    except (TypeError, ValueError) as e:
        raise CodebookError(f"{path}: malformed codebook field ({e})") from None
    if version != FORMAT_VERSION:
        raise CodebookError(f"{path}: codebook format version {version}; this vqe reads version {FORMAT_VERSION}")
    if cw.dtype != np.int8 or cw.ndim != 2 or cw.shape != (fcount, fdim):
        raise CodebookError(f"{path}: codewords are {cw.dtype} {cw.shape}, header says int8 ({fcount}, {fdim})")
    if _content_hash(cw, scale, donors, pj) != digest:
        raise CodebookError(f"{path}: corrupted (content hash mismatch)")
    if dim is not None and fdim != dim:
        raise CodebookError(f"{path}: codewords have dimension {fdim}, but {dim} is required (engine lanes)")
    try:
        params = json.loads(pj)
    except json.JSONDecodeError as e:
        raise CodebookError(f"{path}: codebook parameters are not valid JSON ({e})") from None
    try:
        cb = UniversalCodebook(cw.copy(), scale, donors, params)
    except CodebookError as e:
        raise CodebookError(f"{path}: {e}") from None
    if "nested" in params:
        _check_nested(cb, path)
    if k is not None and k != fcount:
        if k not in cb.stages:
            raise CodebookError(f"{path}: codebook has {fcount} codewords, but {k} are required")
        cb = cb.prefix(k)
    return cb


def _check_nested(cb: UniversalCodebook, path: Path) -> None:
    """A nested file's stages must increase up to its count and its base prefix must hash to its base."""
    nested = cb.params["nested"]
    try:
        stages = [int(s) for s in nested["stages"]]
        base_hash = str(nested["base_sha256"])
        base_params = nested["base_params"]
    except (KeyError, TypeError, ValueError):
        raise CodebookError(f"{path}: malformed nested-codebook parameters") from None
    if not stages or stages[-1] != cb.k or stages[0] < 1 or any(b <= a for a, b in zip(stages, stages[1:])):
        raise CodebookError(f"{path}: nested stages {stages} do not increase to the codeword count {cb.k}")
    base = UniversalCodebook(cb.codewords[:stages[0]], cb.scale, cb.donors, base_params)
    if base.content_hash() != base_hash:
        raise CodebookError(f"{path}: the first {stages[0]} codewords are not the base codebook the file names")
