"""``--method lvq1|glvq|gmlvq``: an LVQ classifier replacing the network, run on the engine as FC layers.

The classifier (:mod:`model.lvq`) is trained on the network's Fashion-MNIST
input, 784 pixels in [0, 1], represented by its 64 leading principal
components (:func:`model.lvq.features.pca_representation`); it replaces the
network (``--network lenet300`` names the input, not a network that runs).

The engine has no nearest-prototype unit (an argmin over distances, one
``lanes``-wide distance step per cycle): that dedicated unit is not built.
The classifier runs as the equivalent linear layers, by the exact identity

    argmin_p ||z - p||^2 = argmax_p (p . z - ||p||^2 / 2)

(``||z||^2`` is the same for every prototype).  A prototype layer is a
fully-connected layer with the prototypes as weights and ``-||p||^2 / 2`` as
biases, without activation, and the class is the label of the highest score
(ties to the lowest index; the host step ``argmax_label`` of
:mod:`model.program.host`).  The PCA projection ``z = A x + b`` is affine, so it
folds into the first layer:

* LVQ1, GLVQ: one layer, weights ``p A``, biases ``p . b - ||p||^2 / 2`` (P x 784);
* GMLVQ, ``||omega (z - p)||^2``: a projection layer ``omega A`` with biases
  ``omega b`` and no activation (rank x 784), then the prototype layer on
  ``omega z`` with prototypes ``omega p`` (P x rank).  Its projection passes
  the requantizer unchanged: a floor at -128, which saturation implies.

Every layer's weights are coded like any other layer's: k-means VQ over
``lanes``-dimensional sub-vectors (:mod:`model.compress.kmeans`, no
fine-tuning), then the usual int8 lowering (the scores' scale maps the
largest calibration score to 127).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.compress.kmeans.network import DEFAULT_K, to_torch, vq_compress
from model.compress.lowering import codebook_depth_for, lower_vq
from model.compress.registry import EngineJob, register_method
from model.lvq.features import PCA_COMPONENTS, fit_pca
from model.lvq.prototypes import PER_CLASS, LVQModel, train
from model.nets.graph.modules import EngineActivation, EngineLinear
from model.program.host import CLASS_STEP, LABELS
from model.program.writer import build_program

#: The only network whose input the LVQ methods take (Fashion-MNIST's 784 pixels).
NETWORKS = ("lenet300",)
#: The methods and their ``--help`` lines.
SUMMARIES = {
    "lvq1": "LVQ1 classifier (3 prototypes per class, PCA-64 input) replacing the network: one prototype FC layer",
    "glvq": "GLVQ classifier (3 prototypes per class, PCA-64 input) replacing the network: one prototype FC layer",
    "gmlvq": "GMLVQ classifier (3 prototypes per class, PCA-64 input, rank-16 projection) replacing the network: "
             "projection then prototype FC layers",
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


def lvq_program(job: EngineJob, method: str):
    """Train ``method`` on the job's training images, write its prototype layers as an engine program."""
    o = job.options
    k = DEFAULT_K if o.codebook_size is None else o.codebook_size
    x, y = np.asarray(job.data.train.inputs), np.asarray(job.data.train.labels)
    mean, axes = fit_pca(x, PCA_COMPONENTS)
    affine = (axes, -(axes @ mean))
    model = train(method, (x @ axes.T + affine[1]).astype(np.float32), y, per_class=PER_CLASS, seed=o.seed,
                  progress=o.progress)
    net = lvq_network(model, affine)
    vq = vq_compress(net, dim=o.lanes, k=k, seed=o.seed, name=job.network, finetune_epochs=0, progress=o.progress)
    lowered = lower_vq(vq, job.calib, o.lanes)
    lowered.name, lowered.method = job.network, method
    test_x, test_y = job.data.test
    info = dict(job.info, network_float_accuracy=job.info.get("float_accuracy"),
                float_accuracy=model.accuracy(test_x @ axes.T + affine[1], test_y),
                lvq=dict(model.info, method=method, prototypes=len(model.labels), representation="pca",
                         pca_components=PCA_COMPONENTS, rank=None if model.omega is None else len(model.omega),
                         nearest_prototype_unit=False, float_network_accuracy=scores_accuracy(net, model.labels,
                                                                                              test_x, test_y)),
                vq_float_accuracy=scores_accuracy(to_torch(vq), model.labels, test_x, test_y),
                compress_seconds=model.info["train_seconds"], codebook_size=k)
    info["float_quality"] = info["float_accuracy"]
    info["vq_float_quality"] = info["vq_float_accuracy"]
    program = build_program(lowered, codebook_depth=codebook_depth_for(k), info=info)
    p = len(model.labels)
    program.meta.update(
        input_shape=[x.shape[1]],
        outputs=[{"start": 0, "stop": p, "activation": None, CLASS_STEP: "argmax_label",
                  LABELS: model.labels.tolist()}],
        lowered_from=[f"input: host writes {x.shape[1]} pixels",
                      f"{method}: {p} prototypes ({PER_CLASS} per class) in the {PCA_COMPONENTS}-component PCA "
                      "space, as " + ("one prototype FC layer" if model.omega is None else
                                      f"a rank-{len(model.omega)} projection FC layer and a prototype FC layer"),
                      "output: prototype scores p.x - |p|^2/2; the class is the label of the highest score"])
    return program


def _register(method: str) -> None:
    register_method(method, SUMMARIES[method], options=("codebook_size",), networks=NETWORKS)(
        lambda job: lvq_program(job, method))


for _method in SUMMARIES:
    _register(_method)
