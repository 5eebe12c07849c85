"""LVQ classifiers (model.lvq) and their engine form (model.compress.lvq): training converges, the
prototype FC layer's argmax is the nearest prototype (ties included), and unilvq agrees."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.compress.lvq.method import lvq_network
from model.lvq.features import fit_pca
from model.lvq.prototypes import LVQModel, prototype_labels, train
from model.lvq.reference import available, reference_accuracy
from model.nets.data import load_fashion_mnist
from model.program.host import CLASS_STEP, LABELS, predicted_classes

#: The small subset every test here trains on (a PCA fitted on it): training and test images.
TRAIN, TEST = 3000, 1000
#: Test accuracy each method must reach on that subset (seed 0 measures lvq1 0.748, glvq 0.783, gmlvq 0.803).
FLOOR = {"lvq1": 0.72, "glvq": 0.75, "gmlvq": 0.77}
#: Epochs on the subset (about as many steps as two epochs of the full set at GLVQ's batch).
EPOCHS = 10
#: unilvq's LVQ1 and GLVQ within this many points of ours on the subset: the issue's 1 point on the full
#: test set, plus the sampling noise of 1,000 test images (one standard error of a difference ~1.4 points).
SUBSET_POINTS = 3.0
#: Passes of unilvq's LVQ1 over the subset.
UNILVQ_PASSES = 50


@pytest.fixture(scope="module")
def subset():
    x, y = load_fashion_mnist("train")
    tx, ty = load_fashion_mnist("test")
    mean, axes = fit_pca(x[:TRAIN], 32)

    def proj(v):
        return ((v - mean) @ axes.T).astype(np.float32)
    return (proj(x[:TRAIN]), y[:TRAIN]), (proj(tx[:TEST]), ty[:TEST])


@pytest.fixture(scope="module")
def trained(subset):
    return {m: train(m, *subset[0], epochs=EPOCHS, progress=False) for m in FLOOR}


@pytest.mark.parametrize("method", list(FLOOR))
def test_training_converges(trained, subset, method):
    model = trained[method]
    assert model.accuracy(*subset[1]) >= FLOOR[method]
    assert model.prototypes.shape == (30, 32) and np.array_equal(model.labels, prototype_labels(10, 3))
    assert (model.omega is not None) == (method == "gmlvq")


def test_training_is_deterministic(subset):
    a = train("glvq", *subset[0], epochs=1, progress=False)
    b = train("glvq", *subset[0], epochs=1, progress=False)
    assert np.array_equal(a.prototypes, b.prototypes)


def _scores(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def test_fc_identity_with_ties():
    """Integer data (exact in float32): the argmax of p.x - |p|^2/2 is the nearest prototype, and a tie
    (a repeated prototype, a point midway between two) goes to the lowest index, as np.argmin."""
    rng = np.random.default_rng(0)
    protos = rng.integers(-4, 5, size=(12, 6)).astype(np.float32)
    protos[7] = protos[2]                               # an exact duplicate: always tied
    labels = np.arange(12) % 4
    model = LVQModel("glvq", protos, labels)
    x = rng.integers(-4, 5, size=(500, 6)).astype(np.float32)
    x[:20] = (protos[0] + protos[5]) / 2                # midway between two prototypes: tied
    d = model.distances(x)
    scores = _scores(lvq_network(model), x)
    assert np.array_equal(scores.argmax(1), d.argmin(1))
    ties = (d == d.min(1, keepdims=True)).sum(1) > 1
    assert ties.sum() >= 20 and np.all(scores.argmax(1)[ties] == d.argmin(1)[ties])
    meta = {"outputs": [{"start": 0, "stop": 12, CLASS_STEP: "argmax_label", LABELS: labels.tolist()}]}
    assert np.array_equal(predicted_classes(meta, scores), model.predict(x))
    assert np.array_equal(predicted_classes({}, scores), scores.argmax(1))   # the default step: argmax


def test_fc_identity_gmlvq_and_pca_fold():
    """GMLVQ as projection then prototype layer, with an affine input map folded into the first layer."""
    rng = np.random.default_rng(1)
    protos = rng.normal(size=(9, 5)).astype(np.float32)
    omega = rng.normal(size=(3, 5)).astype(np.float32)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=5)
    model = LVQModel("gmlvq", protos, np.arange(9) % 3, omega)
    x = rng.normal(size=(400, 8))
    net = lvq_network(model, (a, b))
    assert len(net) == 3 and net[0].out_features == 3
    assert np.array_equal(_scores(net, x).argmax(1), model.distances(x @ a.T + b).argmin(1))


def test_unknown_class_step_is_refused():
    with pytest.raises(ValueError, match="class step"):
        predicted_classes({"outputs": [{"start": 0, "stop": 2, CLASS_STEP: "median"}]}, np.zeros((1, 2)))


@pytest.mark.skipif(available() is not None, reason=available() or "")
@pytest.mark.parametrize("method", ["lvq1", "glvq"])
def test_unilvq_agrees(trained, subset, method):
    ours = trained[method].accuracy(*subset[1])
    # unilvq's LVQ1 makes one update per sample and pass: as many passes over the subset as make about
    # the full set's updates (10 passes of 60k) would take long; 50 passes reach its plateau here.
    ref = reference_accuracy(method, *subset, lvq1_passes=UNILVQ_PASSES)
    assert abs(100 * (ours - ref["accuracy"])) <= SUBSET_POINTS, (ours, ref)
