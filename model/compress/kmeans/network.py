"""Per-layer vector quantization of fully-connected weights.

A layer's weight matrix ``W`` (out, in) is cut row-wise into sub-vectors of
``dim`` consecutive weights (``dim`` equals the engine's lane count, so one
codeword feeds one multiply-accumulate step): row ``r``'s sub-vector ``j`` is
``W[r, j*dim:(j+1)*dim]``.  When ``in % dim != 0`` the last sub-vector of each
row is zero-padded; in hardware the pad coordinates meet zero activations, so
whatever a codeword holds there is harmless, but zero padding keeps those
coordinates from pulling the clustering.

The sub-vectors of a layer are clustered by k-means into a codebook of ``k``
codewords, and each is replaced by the index of its nearest codeword.
Optionally (Deep Compression's "trained quantization") the codewords and
biases are then fine-tuned by gradient descent with the indices fixed: the
gradient of a codeword is the sum of the gradients of every weight slot that
uses it, which is what autograd computes for the gather of codewords.

Other codings (product or residual quantization) belong next to
:class:`VQLayer` as siblings with the same ``weight()`` / ``method`` surface,
so :func:`to_torch` and the lowering can dispatch on ``method``.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from model.contract.ints import ceil_div
from model.nets.data import load_fashion_mnist
from model.nets.networks import evaluate, train_classifier

#: Default sub-vector dimension: the engine's default lane count.
DEFAULT_DIM = 4
#: Default codebook size: 8-bit indices.
DEFAULT_K = 256
#: Lloyd iterations (faiss runs them all).  On LeNet-300-100's first layer
#: the distortion falls 1.5 % from 10 to 50 iterations and only 0.3 % more by 200.
KMEANS_ITERS = 50
#: Fine-tuning recipe: Adam on codewords and biases.  Large batches keep it
#: cheap (the per-step cost of gathering codeword gradients does not shrink
#: with the batch).  On LeNet-300-100 (seed 0) two epochs lift the test
#: accuracy from 88.98 % (plain k-means) to 89.31 %; one epoch gives 89.09 %.
FINETUNE_EPOCHS = 2
FINETUNE_BATCH = 512
FINETUNE_LR = 3e-4


# ---------------------------------------------------------------------------
# Sub-vectors


def split_subvectors(w: np.ndarray, dim: int) -> np.ndarray:
    """Cut each row of ``w`` (out, in) into ``ceil(in/dim)`` sub-vectors, zero-padded.

    Returns
    -------
    numpy.ndarray, shape (out, ceil(in/dim), dim)
    """
    w = np.asarray(w)
    out_f, in_f = w.shape
    s = ceil_div(in_f, dim)
    padded = np.zeros((out_f, s * dim), dtype=w.dtype)
    padded[:, :in_f] = w
    return padded.reshape(out_f, s, dim)


def join_subvectors(sub: np.ndarray, in_features: int) -> np.ndarray:
    """Inverse of :func:`split_subvectors`: (out, S, dim) -> (out, in_features), pad dropped."""
    out_f, s, dim = sub.shape
    return sub.reshape(out_f, s * dim)[:, :in_features]


# ---------------------------------------------------------------------------
# k-means


def _kmeans_pp(x: np.ndarray, x_sq: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (as in scikit-learn).

    Each new centre is the best of ``2 + ln k`` candidates drawn with
    probability proportional to the squared distance to the nearest chosen
    centre, "best" meaning the one that most lowers the total distance.
    """
    n = x.shape[0]
    n_cand = 2 + int(math.log(k))
    xt = np.ascontiguousarray(x.T)  # (dim, n): candidate distances come out as contiguous rows
    centers = np.empty((k, x.shape[1]), dtype=x.dtype)
    centers[0] = x[rng.integers(n)]
    d2 = np.maximum(x_sq - 2.0 * (centers[0] @ xt) + centers[0] @ centers[0], 0)
    for i in range(1, k):
        cum = np.cumsum(d2, dtype=np.float64)
        cand = np.searchsorted(cum, rng.random(n_cand) * cum[-1], side="right")
        cand = np.minimum(cand, n - 1)  # guards the (measure-zero) draw of exactly cum[-1]
        # (n_cand, n) distances to each candidate, then the potential each would leave.
        cand_d2 = x[cand] @ xt
        cand_d2 *= -2.0
        cand_d2 += x_sq
        cand_d2 += x_sq[cand][:, None]
        np.maximum(cand_d2, 0, out=cand_d2)
        np.minimum(cand_d2, d2, out=cand_d2)
        best = int(np.argmin(cand_d2.sum(axis=1, dtype=np.float64)))
        centers[i] = x[cand[best]]
        d2 = cand_d2[best]
    return centers


def kmeans(vectors: np.ndarray, k: int, seed: int = 0, iters: int = KMEANS_ITERS) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``vectors`` into at most ``k`` codewords with k-means: k-means++ seeding, then faiss's Lloyd.

    Deterministic for a given ``seed``.  When the data have no more than ``k``
    distinct vectors the codebook is exactly those vectors (so it may be
    smaller than ``k``) and the quantization is lossless.  A cluster that
    empties during Lloyd's iterations is refilled by faiss (it splits the
    largest one).

    Parameters
    ----------
    vectors : array_like, shape (n, dim)
    k : int
        Largest codebook size, >= 1.
    seed : int
        Seeds k-means++ (and faiss's cluster splitting).
    iters : int
        Lloyd iterations.

    Returns
    -------
    codebook : numpy.ndarray of float32, shape (K, dim), K <= k
    indices : numpy.ndarray of int64, shape (n,)
        Index of each vector's nearest codeword.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans needs a non-empty (n, dim) array, got shape {x.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    uniq, inverse = np.unique(x, axis=0, return_inverse=True)
    if uniq.shape[0] <= k:
        return uniq.astype(np.float32), inverse.reshape(-1).astype(np.int64)

    # k-means++ seeding stays ours: with it faiss's Lloyd reaches the numpy Lloyd's distortion (within
    # 3e-5 relative on the LeNet layers at d=4, k=16..256: the same fixed point, floats differing in the
    # last bits).  faiss's random-sample seeding ends up to 9.8 % worse (2.5 % on average), faiss's own
    # k-means++ and scikit-learn's kmeans_plusplus from -8.6 % to +3.7 % (+0.15 % and +0.35 % on
    # average): reports/libraries.json.
    xf = np.ascontiguousarray(x, dtype=np.float32)
    x_sq = np.einsum("ij,ij->i", xf, xf)
    init = _kmeans_pp(xf, x_sq, k, np.random.default_rng(seed))
    return _faiss_lloyd(xf, init, seed, iters)


def _faiss_lloyd(x: np.ndarray, init: np.ndarray, seed: int, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """``iters`` Lloyd iterations by ``faiss.Kmeans`` from the centres ``init``; codebook and assignment.

    Every vector is used (no subsampling); faiss splits the largest cluster to refill an emptied one.
    For a fixed ``seed`` the result is the same run to run and for 1 or 2 OpenMP threads
    (reports/libraries.json).
    """
    import faiss  # here, not at import time: only building codebooks needs it
    k, dim = init.shape
    km = faiss.Kmeans(dim, k, niter=iters, seed=seed, max_points_per_centroid=len(x), min_points_per_centroid=1)
    km.train(x, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
    _, idx = km.index.search(x, 1)
    return np.array(km.centroids, dtype=np.float32), idx[:, 0].astype(np.int64)


# ---------------------------------------------------------------------------
# VQ layers and networks


@dataclass
class VQLayer:
    """One fully-connected layer whose weights are codebook indices.

    Attributes
    ----------
    codebook : numpy.ndarray of float32, shape (K, dim)
    indices : numpy.ndarray of int64, shape (out_features, ceil(in_features/dim))
        Row ``r``'s sub-vector ``j`` is ``codebook[indices[r, j]]``.
    bias : numpy.ndarray of float32, shape (out_features,)
    in_features, out_features : int
    relu : bool
        A ReLU follows the layer.
    """
    codebook: np.ndarray
    indices: np.ndarray
    bias: np.ndarray
    in_features: int
    out_features: int
    relu: bool
    method: ClassVar[str] = "vq"

    def __post_init__(self):
        s = ceil_div(self.in_features, self.dim)
        if self.indices.shape != (self.out_features, s):
            raise ValueError(f"indices have shape {self.indices.shape}, expected {(self.out_features, s)}")
        if self.bias.shape != (self.out_features,):
            raise ValueError(f"bias has shape {self.bias.shape}, expected {(self.out_features,)}")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= self.codebook.shape[0]):
            raise ValueError("codebook index out of range")

    @property
    def dim(self) -> int:
        """Sub-vector dimension."""
        return self.codebook.shape[1]

    @property
    def k(self) -> int:
        """Number of codewords actually in the codebook."""
        return self.codebook.shape[0]

    def weight(self) -> np.ndarray:
        """The reconstructed float weight matrix (out_features, in_features)."""
        return join_subvectors(self.codebook[self.indices], self.in_features)


@dataclass
class VQNetwork:
    """A fully-connected network whose layers are each vector-quantized.

    Attributes
    ----------
    name : str
        The source network's name (as in :data:`model.nets.registry.NETWORKS`).
    method : str
        ``"vq"``; siblings (product or residual quantization) use their own.
    dim, k : int
        Sub-vector dimension and requested codebook size.
    layers : list of VQLayer
        Input side first.
    info : dict
        Measured facts: seeds, timings, accuracies when an evaluation set was given.
    template : torch.nn.Sequential, optional
        The network the layers were coded from, when it is more than a
        Linear/ReLU chain (a lowered :class:`model.nets.graph.trace.EngineNet`):
        :func:`to_torch` keeps its other modules and computes each weight layer
        through the template layer's ``compute`` (a convolution, say).
    """
    name: str
    method: str
    dim: int
    k: int
    layers: list[VQLayer]
    info: dict = field(default_factory=dict)
    template: nn.Module | None = None


def quantize_layer(linear: nn.Linear, dim: int, k: int, seed: int, relu: bool) -> VQLayer:
    """Vector-quantize one ``nn.Linear`` by k-means over its row sub-vectors."""
    w = linear.weight.detach().cpu().numpy().astype(np.float32)
    b = linear.bias.detach().cpu().numpy().astype(np.float32)
    sub = split_subvectors(w, dim)
    codebook, idx = kmeans(sub.reshape(-1, dim), k, seed=seed)
    return VQLayer(codebook=codebook, indices=idx.reshape(sub.shape[:2]), bias=b,
                   in_features=linear.in_features, out_features=linear.out_features, relu=relu)


class VQLinear(nn.Module):
    """A weight layer computing with ``codebook[indices]``; the codebook and bias are trainable.

    Parameters
    ----------
    layer : VQLayer
    op : torch.nn.Module, optional
        The layer it stands for when that is not a plain ``nn.Linear``: its
        ``compute(x, weight, bias)`` computes the layer (an engine convolution).
    """

    def __init__(self, layer: VQLayer, op: nn.Module | None = None):
        super().__init__()
        # The template's function only, not its (unused) float weights as parameters.
        self._compute = nn.functional.linear if op is None else op.compute
        self.codebook = nn.Parameter(torch.tensor(layer.codebook, dtype=torch.float32))
        self.register_buffer("indices", torch.tensor(layer.indices, dtype=torch.int64))
        self.bias = nn.Parameter(torch.tensor(layer.bias, dtype=torch.float32))
        self.in_features = layer.in_features
        self.out_features = layer.out_features

    def weight(self) -> torch.Tensor:
        # index_select's backward (index_add_) sums each codeword's gradient in a
        # fixed order; plain ``codebook[indices]`` accumulates in a thread-dependent
        # order on CPU, which made fine-tuning irreproducible.
        w = self.codebook.index_select(0, self.indices.reshape(-1))
        return w.reshape(self.out_features, -1)[:, :self.in_features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._compute(x, self.weight(), self.bias)

    def to_layer(self, relu: bool) -> VQLayer:
        return VQLayer(codebook=self.codebook.detach().numpy().copy(), indices=self.indices.numpy().copy(),
                       bias=self.bias.detach().numpy().copy(), in_features=self.in_features,
                       out_features=self.out_features, relu=relu)


def to_torch(net: VQNetwork) -> nn.Sequential:
    """A float torch model computing with ``net``'s reconstructed weights.

    Returns
    -------
    torch.nn.Sequential
        :class:`VQLinear` layers, each followed by ``nn.ReLU`` when its ``relu`` is set; with a
        ``template``, its modules with each weight layer replaced by a :class:`VQLinear`.
    """
    if any(layer.method != "vq" for layer in net.layers):
        raise ValueError("to_torch handles VQ layers only")
    if net.template is None:
        mods: list[nn.Module] = []
        for layer in net.layers:
            mods.append(VQLinear(layer))
            if layer.relu:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods).eval()
    coded = iter(net.layers)
    return nn.Sequential(*(VQLinear(next(coded), m) if isinstance(m, nn.Linear) else copy.deepcopy(m)
                           for m in net.template)).eval()


def _linear_layers(model: nn.Module) -> list[tuple[nn.Linear, bool]]:
    """The weight layers (``nn.Linear``, the engine's convolutions included) of an ``nn.Sequential``
    with their ReLU flags; the other modules must be ReLUs or hold no parameters (pooling)."""
    mods = list(model.children())
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            out.append((m, i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)))
        elif not isinstance(m, nn.ReLU) and any(True for _ in m.parameters()):
            raise TypeError(f"vq_compress handles Linear layers and parameter-free modules, found "
                            f"{type(m).__name__}")
    if not out:
        raise TypeError("model has no nn.Linear layers")
    return out


def finetune_coded(tm: nn.Module, module_type: type, layers: list, train_data, *, epochs: int, seed: int,
                   progress: bool, desc: str) -> tuple[list, float]:
    """Trained quantization of a coded network's torch form ``tm`` (k-means or PVQ layers as
    ``module_type`` modules, indices fixed): returns the trained layers and the seconds it took."""
    t0 = time.perf_counter()
    train_classifier(tm, *train_data, epochs=epochs, batch=FINETUNE_BATCH, lr=FINETUNE_LR, seed=seed,
                     progress=progress, desc=desc)
    mods = [m for m in tm if isinstance(m, module_type)]
    return [m.to_layer(layer.relu) for m, layer in zip(mods, layers)], time.perf_counter() - t0


#: Trained quantization of a network without labels: distillation steps and batch (R-Net, O-Net and
#: CREPE-tiny; the universal method's recipes use 1000 + 200 steps of batch 64 to 128 on them).
DISTILL_STEPS = 600
DISTILL_BATCH = 128


def finetune_distilled(net: VQNetwork, teacher: nn.Module, data, *, steps: int = DISTILL_STEPS,
                       batch: int = DISTILL_BATCH, seed: int = 0, progress: bool = True) -> VQNetwork:
    """Trained quantization by distillation: codewords and biases (indices fixed) trained to reproduce
    ``teacher``'s outputs on ``data`` (a :class:`model.nets.distill.DistillSet`, its loss by its kind)."""
    from model.nets.distill import outputs, train
    t0 = time.perf_counter()
    tm = to_torch(net)
    mods = [m for m in tm if isinstance(m, VQLinear)]
    params = [p for m in mods for p in (m.codebook, m.bias)]
    # The student trains its own codewords and biases: no parameter overrides.
    losses = train(tm, data, outputs(teacher, data.inputs), lambda: {}, [{"params": params, "lr": FINETUNE_LR}],
                   steps=steps, batch=batch, seed=seed, progress=progress, desc="vq distill")
    layers = [m.to_layer(layer.relu) for m, layer in zip(mods, net.layers)]
    info = dict(net.info, distill_steps=steps, distill_batch=batch, distill_loss_first_last=[losses[0], losses[-1]],
                finetune_seconds=time.perf_counter() - t0)
    return VQNetwork(net.name, net.method, net.dim, net.k, layers, info, net.template)


def vq_compress(model: nn.Module, dim: int = DEFAULT_DIM, k: int = DEFAULT_K,
                finetune_epochs: int = FINETUNE_EPOCHS, seed: int = 0, *, name: str = "",
                train_data: tuple[np.ndarray, np.ndarray] | None = None,
                eval_data: tuple[np.ndarray, np.ndarray] | None = None,
                progress: bool = True) -> VQNetwork:
    """Vector-quantize every layer of a Linear/ReLU network, then fine-tune the codewords.

    Parameters
    ----------
    model : torch.nn.Sequential
        ``nn.Linear`` layers, optionally each followed by ``nn.ReLU``, or a lowered
        :class:`model.nets.graph.trace.EngineNet` (its weight layers are ``nn.Linear``s).  Not modified.
    dim : int
        Sub-vector dimension (the engine's lanes).
    k : int
        Codebook size per layer (fewer codewords when a layer has fewer distinct sub-vectors).
    finetune_epochs : int
        Epochs of trained quantization; 0 keeps the plain k-means codebooks.
    seed : int
        Layer ``i`` runs k-means with seed ``seed + i``; fine-tuning's batch order uses ``seed``.
    name : str
        Network name recorded in the result.
    train_data : (x, y), optional
        Fine-tuning data; default the Fashion-MNIST training set (only loaded if needed).
    eval_data : (x, y), optional
        If given, ``info`` records the accuracy of the float, plain k-means and
        fine-tuned networks on it.
    progress : bool
        Progress bar while fine-tuning.

    Returns
    -------
    VQNetwork
    """
    linears = _linear_layers(model)
    info: dict = {"dim": dim, "k": k, "seed": seed, "kmeans_seeds": [seed + i for i in range(len(linears))],
                  "finetune_epochs": finetune_epochs, "finetune_batch": FINETUNE_BATCH, "finetune_lr": FINETUNE_LR}
    t0 = time.perf_counter()
    layers = [quantize_layer(lin, dim, k, seed + i, relu) for i, (lin, relu) in enumerate(linears)]
    info["kmeans_seconds"] = time.perf_counter() - t0
    info["codebook_sizes"] = [layer.k for layer in layers]
    plain = all(isinstance(m, (nn.Linear, nn.ReLU)) and type(m) in (nn.Linear, nn.ReLU) for m in model.children())
    net = VQNetwork(name=name, method="vq", dim=dim, k=k, layers=layers, info=info,
                    template=None if plain else model)
    if eval_data is not None:
        info["float_accuracy"] = evaluate(model, *eval_data)
        info["vq_kmeans_accuracy"] = evaluate(to_torch(net), *eval_data)
    if finetune_epochs > 0:
        if train_data is None:
            train_data = load_fashion_mnist("train")
        net.layers, info["finetune_seconds"] = finetune_coded(to_torch(net), VQLinear, layers, train_data,
                                                              epochs=finetune_epochs, seed=seed, progress=progress,
                                                              desc="vq finetune")
    if eval_data is not None:
        info["vq_float_accuracy"] = evaluate(to_torch(net), *eval_data)
    return net
