"""``--method lvq1|glvq|gmlvq``: an LVQ classifier replacing the network, run on the engine's nearest-prototype unit.

The classifier (:mod:`model.lvq`) is trained on the network's Fashion-MNIST
input, 784 pixels in [0, 1], represented by its 64 leading principal
components (:func:`model.lvq.features.pca_representation`); it replaces the
network (``--network lenet300`` names the input, not a network that runs).

The program is two layers, and its output is the class:

* a **projection** FC layer into the space where the distance is Euclidean:
  the PCA ``z = A x + b`` (LVQ1, GLVQ: 64 x 784), or GMLVQ's ``omega z =
  omega A x + omega b`` (rank x 784, ``omega``'s rank 16), no activation; its
  weights k-means coded like any layer (256 codewords of ``lanes``) and
  lowered to int8 with the usual calibration (output scale ``s``: the
  largest calibration value maps to 127);
* a **nearest-prototype** layer (``kind="nearest"``, :mod:`model.contract.layout`):
  the prototypes in that space (``p``, or ``omega p``) at the projection's
  output scale, ``round(p / s)`` clipped to int8, as VQ rows (their
  ``lanes``-wide sub-vectors k-means coded into at most ``codebook_size``
  ROM codewords: exact when they have no more distinct sub-vectors), each
  row's label in its header.  The engine writes the label of the nearest
  prototype (squared Euclidean distance, ties to the lowest index); the host
  reads it as the class (class step ``engine_class``, :mod:`model.program.host`).

A feature count that is not a multiple of ``lanes`` is padded with zero
projection rows and zero prototype columns (no distance changes).
:func:`lvq_network` is the float FC-equivalent of the same classifier (the
scores ``p . z - ||p||^2 / 2``, whose argmax is the nearest prototype), kept
as the float reference of the identity.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.compress.kmeans.network import DEFAULT_K, kmeans, to_torch, vq_compress
from model.compress.lowering import LoweredLayer, codebook_depth_for, lower_vq
from model.contract.fixedpoint import ACT_MAX, ACT_MIN
from model.contract.layout import NEAREST_OUTPUTS
from model.compress.registry import EngineJob, register_method
from model.lvq.features import PCA_COMPONENTS, fit_pca
from model.lvq.prototypes import PER_CLASS, LVQModel, train
from model.nets.graph.modules import EngineActivation, EngineLinear
from model.program.host import CLASS_STEP
from model.program.writer import build_program

#: The only network whose input the LVQ methods take (Fashion-MNIST's 784 pixels).
NETWORKS = ("lenet300",)
#: The methods and their ``--help`` lines.
SUMMARIES = {
    "lvq1": "LVQ1 classifier (3 prototypes per class, PCA-64 input) replacing the network: PCA projection, "
            "then the nearest-prototype unit (the output is the class)",
    "glvq": "GLVQ classifier (3 prototypes per class, PCA-64 input) replacing the network: PCA projection, "
            "then the nearest-prototype unit (the output is the class)",
    "gmlvq": "GMLVQ classifier (3 prototypes per class, PCA-64 input, rank-16 projection) replacing the network: "
             "its projection, then the nearest-prototype unit (the output is the class)",
}


def identity_activation(features: int) -> EngineActivation:
    """The requantizer's floor at -infinity (-128 in int8): no activation, for a hidden layer."""
    return EngineActivation("floor", np.full(features, -np.inf), features)


def _linear(weight: np.ndarray, bias: np.ndarray) -> EngineLinear:
    lin = EngineLinear(weight.shape[1], weight.shape[0], weight.size)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.asarray(weight, dtype=np.float32)))
        lin.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
    return lin


def prototype_layer(prototypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights and biases (float64) of the FC layer whose scores' argmax is the nearest prototype."""
    p = np.asarray(prototypes, dtype=np.float64)
    return p, -0.5 * (p * p).sum(1)


def lvq_network(model: LVQModel, affine: tuple[np.ndarray, np.ndarray] | None = None) -> nn.Sequential:
    """The float network of FC layers computing ``model``'s prototype scores from raw inputs ``x``.

    Parameters
    ----------
    model : LVQModel
    affine : (numpy.ndarray, numpy.ndarray), optional
        ``(A, b)`` when the model's features are ``x @ A.T + b`` (folded into the first layer).

    Returns
    -------
    torch.nn.Sequential
        One prototype layer, or (GMLVQ) the projection layer, :func:`identity_activation`, the prototype layer.
    """
    k = model.prototypes.shape[1]
    a, b = affine if affine is not None else (np.eye(k), np.zeros(k))
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if model.omega is None:
        w, c = prototype_layer(model.prototypes)
        return nn.Sequential(_linear(w @ a, w @ b + c)).eval()
    om = np.asarray(model.omega, dtype=np.float64)
    w, c = prototype_layer(np.asarray(model.prototypes, dtype=np.float64) @ om.T)
    return nn.Sequential(_linear(om @ a, om @ b), identity_activation(len(om)), _linear(w, c)).eval()


@torch.no_grad()
def scores_accuracy(net: nn.Module, labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the label of the highest score of ``net`` on ``x``."""
    s = net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    return float(np.mean(np.asarray(labels)[s.argmax(1)] == np.asarray(y)))


def distance_space(model: LVQModel, affine: tuple[np.ndarray, np.ndarray], lanes: int):
    """The projection (weights, biases) from raw inputs into the space where the model's distance is Euclidean,
    and the prototypes there, both padded with zeros to a multiple of ``lanes`` features."""
    a, b = (np.asarray(v, dtype=np.float64) for v in affine)
    p = np.asarray(model.prototypes, dtype=np.float64)
    if model.omega is not None:
        om = np.asarray(model.omega, dtype=np.float64)
        a, b, p = om @ a, om @ b, p @ om.T
    pad = -len(a) % lanes
    return (np.pad(a, ((0, pad), (0, 0))), np.pad(b, (0, pad))), np.pad(p, ((0, 0), (0, pad)))


def nearest_layer(prototypes: np.ndarray, labels: np.ndarray, scale: float, lanes: int, k: int,
                  seed: int) -> LoweredLayer:
    """The ``NEAREST`` layer of float ``prototypes`` at the input's int8 ``scale``: int8 prototypes as VQ rows
    (their sub-vectors k-means coded into at most ``k`` codewords), ``labels`` in the rows' headers."""
    q = np.clip(np.round(np.asarray(prototypes) / scale), ACT_MIN, ACT_MAX)
    codebook, indices = kmeans(q.reshape(-1, lanes), k, seed=seed)
    zeros = np.zeros(len(q), dtype=np.int64)
    return LoweredLayer(in_features=q.shape[1], out_features=len(q),
                        codebook=np.clip(np.round(codebook), ACT_MIN, ACT_MAX).astype(np.int8),
                        indices=indices.reshape(len(q), -1), bias=np.asarray(labels, dtype=np.int64), mult=zeros,
                        shift=zeros, relu=False, act=zeros, kind="nearest", mode="vq")


def nearest_accuracy(z: np.ndarray, prototypes: np.ndarray, labels: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the nearest prototype's label (float distances) for features ``z``."""
    d = (z * z).sum(1)[:, None] - 2 * z @ prototypes.T + (prototypes * prototypes).sum(1)[None]
    return float(np.mean(np.asarray(labels)[d.argmin(1)] == np.asarray(y)))


def lvq_program(job: EngineJob, method: str):
    """Train ``method`` on the job's training images; write the projection and nearest-prototype layers."""
    o = job.options
    k = DEFAULT_K if o.codebook_size is None else o.codebook_size
    x, y = np.asarray(job.data.train.inputs), np.asarray(job.data.train.labels)
    mean, axes = fit_pca(x, PCA_COMPONENTS)
    affine = (axes, -(axes @ mean))
    model = train(method, (x @ axes.T + affine[1]).astype(np.float32), y, per_class=PER_CLASS, seed=o.seed,
                  progress=o.progress)
    (wa, wb), protos = distance_space(model, affine, o.lanes)
    vq = vq_compress(nn.Sequential(_linear(wa, wb)).eval(), dim=o.lanes, k=k, seed=o.seed, name=job.network,
                     finetune_epochs=0, progress=o.progress)
    lowered = lower_vq(vq, job.calib, o.lanes)
    lowered.layers.append(nearest_layer(protos, model.labels, lowered.output_scale, o.lanes, k, o.seed))
    lowered.name, lowered.method = job.network, method
    lowered.output_scale, lowered.output_scales = 1.0, [1.0]   # the output is a label
    test_x, test_y = job.data.test
    with torch.no_grad():
        coded_z = to_torch(vq)(torch.from_numpy(np.ascontiguousarray(test_x, dtype=np.float32))).numpy()
    info = dict(job.info, network_float_accuracy=job.info.get("float_accuracy"),
                float_accuracy=model.accuracy(test_x @ axes.T + affine[1], test_y),
                lvq=dict(model.info, method=method, prototypes=len(model.labels), representation="pca",
                         pca_components=PCA_COMPONENTS, rank=None if model.omega is None else len(model.omega),
                         nearest_prototype_unit=True, distance_features=protos.shape[1],
                         float_network_accuracy=scores_accuracy(lvq_network(model, affine), model.labels,
                                                                test_x, test_y)),
                vq_float_accuracy=nearest_accuracy(coded_z, protos, model.labels, test_y),
                compress_seconds=model.info["train_seconds"], codebook_size=k)
    info["float_quality"] = info["float_accuracy"]
    info["vq_float_quality"] = info["vq_float_accuracy"]
    program = build_program(lowered, codebook_depth=codebook_depth_for(k), info=info)
    p = len(model.labels)
    space = f"the {PCA_COMPONENTS}-component PCA space" if model.omega is None else \
        f"GMLVQ's rank-{len(model.omega)} projection of the {PCA_COMPONENTS}-component PCA space"
    program.meta.update(
        input_shape=[x.shape[1]],
        outputs=[{"start": 0, "stop": NEAREST_OUTPUTS, "activation": None, CLASS_STEP: "engine_class"}],
        lowered_from=[f"input: host writes {x.shape[1]} pixels",
                      f"{method}: a projection FC layer into {space} ({protos.shape[1]} features), then the "
                      f"nearest-prototype layer: {p} prototypes ({PER_CLASS} per class), squared distance, argmin",
                      "output: the nearest prototype's label, the class"])
    return program


def _register(method: str) -> None:
    register_method(method, SUMMARIES[method], options=("codebook_size",), networks=NETWORKS)(
        lambda job: lvq_program(job, method))


for _method in SUMMARIES:
    _register(_method)
