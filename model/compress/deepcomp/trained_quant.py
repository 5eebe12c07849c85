"""Trained quantization with shared scalar centroids (Deep Compression, step 2).

Every layer's surviving (non-pruned) weights share ``2**bits - 1`` scalar
centroids; index 0 of the layer's codebook is reserved for the exact value
0.0, which pruned positions (and the filler entries of sparse rows) use.  A
weight is replaced by the index of its nearest non-zero-slot centroid.

Initialisation is linear, as in the paper: the centroids are spaced evenly
between the smallest and largest surviving weight, which keeps the rare
large weights represented (density-based or random initialisation puts
almost no centroid there).  Optionally a few Lloyd (1-D k-means) iterations
follow.

Fine-tuning keeps the indices fixed and trains the centroids: the gradient of
centroid ``k`` is the sum of the loss gradients of every weight that uses it
(:func:`gather_centroid_grads`).  Centroid 0 never moves, so pruned weights
stay exactly zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model.compress.deepcomp.prune import TRAIN_THREADS, linear_layers
from model.nets.training import as_tensors, cosine_lr, train_epochs

#: Most Lloyd iterations after linear initialisation (stops earlier once no index changes).
LLOYD_ITERS_MAX = 100
#: Codebook index of the exact zero (pruned weights, fillers).
ZERO_INDEX = 0


@dataclass
class QuantLayer:
    """One fully-connected layer with shared scalar centroids.

    Attributes
    ----------
    centroids : numpy.ndarray of float32, shape (2**bits,)
        ``centroids[0] == 0.0``.
    indices : numpy.ndarray of int64, shape (out_features, in_features)
        Centroid index per weight; 0 exactly where the weight is pruned.
    bias : numpy.ndarray of float32, shape (out_features,)
    relu : bool
    """
    centroids: np.ndarray
    indices: np.ndarray
    bias: np.ndarray
    relu: bool

    def __post_init__(self):
        k = len(self.centroids)
        if k < 2 or k & (k - 1) or self.centroids[ZERO_INDEX] != 0.0:
            raise ValueError("a layer needs 2**bits >= 2 centroids with centroids[0] == 0.0")
        if self.indices.ndim != 2 or self.indices.min() < 0 or self.indices.max() >= k:
            raise ValueError(f"indices must be a 2-D array of values in [0, {k})")
        if self.bias.shape != (self.indices.shape[0],):
            raise ValueError("bias must have one entry per output row")

    @property
    def bits(self) -> int:
        """Index width: ``log2`` of the number of centroids."""
        return len(self.centroids).bit_length() - 1

    @property
    def out_features(self) -> int:
        return self.indices.shape[0]

    @property
    def in_features(self) -> int:
        return self.indices.shape[1]

    def weight(self) -> np.ndarray:
        """The dense float weight matrix ``centroids[indices]``."""
        return self.centroids[self.indices]


def init_centroids(values: np.ndarray, bits: int, lloyd: bool = False) -> np.ndarray:
    """Centroids for the non-zero ``values`` of a layer: slot 0 is 0.0, slots 1.. are shared values.

    Parameters
    ----------
    values : numpy.ndarray
        The surviving (non-pruned) weights.
    bits : int
        ``2**bits`` centroids in all, ``2**bits - 1`` for ``values``.
    lloyd : bool
        Refine the linear initialisation with 1-D k-means.

    Returns
    -------
    numpy.ndarray of float32, shape (2**bits,)
    """
    if bits < 1:
        raise ValueError(f"a codebook needs at least 1 index bit, got {bits}")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("a layer with every weight pruned has nothing to quantize")
    shared = np.linspace(v.min(), v.max(), (1 << bits) - 1)
    if lloyd:
        assign = assign_nonzero(v, shared)
        for _ in range(LLOYD_ITERS_MAX):
            sums = np.bincount(assign, weights=v, minlength=len(shared))
            counts = np.bincount(assign, minlength=len(shared))
            # An empty cluster keeps its place: it may still serve after fine-tuning moves others.
            shared = np.where(counts > 0, sums / np.maximum(counts, 1), shared)
            new = assign_nonzero(v, shared)
            if np.array_equal(new, assign):
                break
            assign = new
    return np.concatenate([[0.0], shared]).astype(np.float32)


def assign_nonzero(values: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Index (into ``shared``) of the nearest shared centroid for each value; ties go to the lower index."""
    order = np.argsort(shared, kind="stable")
    s = shared[order]
    mid = (s[1:] + s[:-1]) / 2
    return order[np.searchsorted(mid, values, side="left")]


def quantize_layer(weight: np.ndarray, mask: np.ndarray, bias: np.ndarray, bits: int, relu: bool,
                   lloyd: bool = False) -> QuantLayer:
    """Share the surviving weights of one layer among ``2**bits - 1`` centroids; pruned ones get index 0."""
    weight = np.asarray(weight, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != weight.shape:
        raise ValueError("mask and weight differ in shape")
    centroids = init_centroids(weight[mask], bits, lloyd)
    indices = np.zeros(weight.shape, dtype=np.int64)
    indices[mask] = 1 + assign_nonzero(weight[mask], centroids[1:].astype(np.float64))
    return QuantLayer(centroids=centroids, indices=indices, bias=np.asarray(bias, dtype=np.float32), relu=relu)


def quantize_network(model: nn.Module, masks, bits, lloyd: bool = False) -> list[QuantLayer]:
    """:func:`quantize_layer` for each Linear of ``model`` (ReLU after all but the last)."""
    layers = linear_layers(model)
    if len(bits) != len(layers) or len(masks) != len(layers):
        raise ValueError(f"need one mask and one bit width per Linear layer ({len(layers)})")
    return [quantize_layer(l.weight.detach().numpy(), np.asarray(m) != 0, l.bias.detach().numpy(), b,
                           relu=i < len(layers) - 1, lloyd=lloyd)
            for i, (l, m, b) in enumerate(zip(layers, masks, bits))]


def gather_centroid_grads(weight_grad: torch.Tensor, indices: torch.Tensor, k: int) -> torch.Tensor:
    """Gradient of each centroid: the sum of the gradients of the weights that share it.

    Slot :data:`ZERO_INDEX` gets 0 so the exact zero never moves.

    Parameters
    ----------
    weight_grad : torch.Tensor, shape (out, in)
        dLoss/dW of the dense weight matrix.
    indices : torch.Tensor of int64, same shape
    k : int
        Number of centroids.

    Returns
    -------
    torch.Tensor, shape (k,)
    """
    if weight_grad.shape != indices.shape:
        raise ValueError("weight_grad and indices differ in shape")
    g = torch.zeros(k, dtype=weight_grad.dtype).index_add_(0, indices.reshape(-1), weight_grad.reshape(-1))
    g[ZERO_INDEX] = 0.0
    return g


class QuantNet(nn.Module):
    """A float network of :class:`QuantLayer` s whose centroids and biases are trainable."""

    def __init__(self, layers: list[QuantLayer]):
        super().__init__()
        self.relus = [l.relu for l in layers]
        self.centroids = nn.ParameterList(nn.Parameter(torch.from_numpy(l.centroids.copy())) for l in layers)
        self.biases = nn.ParameterList(nn.Parameter(torch.from_numpy(l.bias.copy())) for l in layers)
        for i, l in enumerate(layers):
            self.register_buffer(f"indices{i}", torch.from_numpy(l.indices.copy()))

    def indices(self, i: int) -> torch.Tensor:
        """Layer ``i``'s (fixed) centroid index matrix."""
        return getattr(self, f"indices{i}")

    def dense_weights(self) -> list[torch.Tensor]:
        """Each layer's ``centroids[indices]`` as a fresh leaf tensor that collects its gradient."""
        return [c.detach()[self.indices(i)].requires_grad_(True) for i, c in enumerate(self.centroids)]

    def forward_with(self, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        """The network on ``x`` with the given dense weight matrices (one per layer) and its own biases."""
        for w, b, relu in zip(weights, self.biases, self.relus):
            x = F.linear(x, w, b)
            if relu:
                x = F.relu(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(x, [c[self.indices(i)] for i, c in enumerate(self.centroids)])

    def to_layers(self) -> list[QuantLayer]:
        """The current centroids, indices and biases as :class:`QuantLayer` s (copies)."""
        return [QuantLayer(centroids=c.detach().numpy().copy(), indices=self.indices(i).numpy().copy(),
                           bias=b.detach().numpy().copy(), relu=r)
                for i, (c, b, r) in enumerate(zip(self.centroids, self.biases, self.relus))]


def finetune_centroids(layers: list[QuantLayer], x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int,
                       lr: float, seed: int, progress: bool = True, anneal: bool = False) -> list[QuantLayer]:
    """Fine-tune centroids and biases (Adam, cross-entropy) with the indices fixed.

    Each step builds the dense weights from the centroids, back-propagates to
    them, and hands every centroid the gathered gradient of its weights
    (:func:`gather_centroid_grads`).  ``anneal`` decays the step size along a
    cosine (:func:`model.nets.training.cosine_lr`).

    Returns
    -------
    list of QuantLayer
        New layers; the inputs are not modified.
    """
    net = QuantNet(layers)
    xt, yt = as_tensors(x, y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step(idx):
        weights = net.dense_weights()
        loss = F.cross_entropy(net.forward_with(xt[idx], weights), yt[idx])
        loss.backward()
        for j, (c, w) in enumerate(zip(net.centroids, weights)):
            c.grad = gather_centroid_grads(w.grad, net.indices(j), len(c))
        return loss
    train_epochs(len(xt), step, opt, epochs=epochs, batch=batch, seed=seed, threads=TRAIN_THREADS,
                 progress=progress, desc="quant finetune",
                 lr=(lambda k, steps: cosine_lr(lr, k, steps)) if anneal else None)
    out = net.to_layers()
    for layer in out:
        layer.centroids[ZERO_INDEX] = 0.0  # Adam with zero gradients leaves it there; this makes it certain.
    return out
