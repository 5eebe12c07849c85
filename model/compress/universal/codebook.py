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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.contract.errors import NPZ_READ_ERRORS, VqeError

FORMAT_VERSION = 1
#: Default codeword dimension (the engine's default lanes) and count (7-bit indices).
DEFAULT_DIM = 4
DEFAULT_K = 128
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
    except NPZ_READ_ERRORS as e:
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
