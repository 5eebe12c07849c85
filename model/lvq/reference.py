"""The cross-check: PyPI ``unilvq`` 0.2.0 (an independent LVQ implementation) on the same data.

``unilvq`` is installed without its dependencies (its metadata pins numpy <= 1.26 and pandas < 2.2;
it runs with the project's numpy and pandas 3), see ``scripts/setup.sh``.  Its settings here:

* ``Lvq1Classifier`` makes one pass over the data at a constant step, from prototypes drawn at random
  from each class.  It is given :data:`LVQ1_PASSES` seeded shuffles of the data, tiled, at step
  :data:`LVQ1_STEP`, the best of a sweep on the PCA representation (test accuracy: 0.1 x 1 pass 68.3 %,
  0.01 x 1 72.7 %, 0.003 x 5 74.5 %, 0.001 x 10 75.4 %, 0.002 x 10 75.6 %, 0.003 x 10 75.7 %).
* ``GlvqClassifier`` and ``LgmlvqClassifier`` (localized GMLVQ: a full matrix per prototype) train with
  Adam from random normal prototypes; they get the epochs, minibatch and step of
  :func:`model.lvq.prototypes.train_glvq` (the step in units of the features' RMS; LGMLVQ
  :data:`LGMLVQ_EPOCHS` epochs only), all the training data (no validation split) and no early stopping.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from model.lvq.prototypes import GLVQ_BATCH, GLVQ_EPOCHS, GLVQ_LR, PER_CLASS, THREADS
from model.nets.training import TorchThreads

#: Passes of unilvq's LVQ1 over the (tiled, reshuffled) data, and its constant step.
LVQ1_PASSES = 10
LVQ1_STEP = 0.003
#: Epochs of unilvq's localized GMLVQ: a 64 x 64 matrix per prototype makes an epoch of the 60k training
#: images about 70 s on one thread, so it trains for fewer epochs than our GMLVQ.
LGMLVQ_EPOCHS = 2
#: What ``pip install`` needs for the cross-check.
REQUIREMENT = "unilvq==0.2.0 (pip install --no-deps unilvq==0.2.0 permetrics==2.1.0, and pandas)"


def available() -> str | None:
    """None when ``unilvq`` imports, else why not (for a test's skip reason)."""
    try:
        import unilvq  # noqa: F401
    except ImportError as e:
        return f"unilvq is not importable ({e}); install {REQUIREMENT}"
    return None


def _lvq1(x, y, per_class, seed, passes=LVQ1_PASSES):
    from unilvq import Lvq1Classifier
    perms = [np.random.default_rng(seed + e).permutation(len(x)) for e in range(passes)]
    return Lvq1Classifier(n_prototypes_per_class=per_class, learning_rate=LVQ1_STEP, seed=seed).fit(
        np.concatenate([x[p] for p in perms]), np.concatenate([y[p] for p in perms]))


def _gradient(cls_name: str, epochs: int):
    def fit(x, y, per_class, seed):
        import unilvq
        torch.manual_seed(seed)   # its minibatch order draws from torch's global generator
        lr = GLVQ_LR * float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        model = getattr(unilvq, cls_name)(n_prototypes_per_class=per_class, epochs=epochs, batch_size=GLVQ_BATCH,
                                          optim="Adam", optim_paras={"lr": lr}, early_stopping=False,
                                          valid_rate=None, seed=seed, verbose=False)
        return model.fit(x, y)
    return fit


#: unilvq's classifier standing beside each of our methods.
COUNTERPARTS = {"lvq1": ("Lvq1Classifier", _lvq1),
                "glvq": ("GlvqClassifier", _gradient("GlvqClassifier", GLVQ_EPOCHS)),
                "gmlvq": ("LgmlvqClassifier", _gradient("LgmlvqClassifier", LGMLVQ_EPOCHS))}


def reference_accuracy(method: str, train, test, *, per_class: int = PER_CLASS, seed: int = 0,
                       lvq1_passes: int = LVQ1_PASSES) -> dict:
    """unilvq's counterpart of ``method`` trained on ``train`` and scored on ``test`` (features, labels).

    ``lvq1_passes``: passes of unilvq's LVQ1 (a small subset needs more for as many updates).

    Returns
    -------
    dict
        ``classifier`` (unilvq's class), ``accuracy``, ``train_seconds``.
    """
    name, fit = COUNTERPARTS[method]
    x, y = np.asarray(train[0], dtype=np.float32), np.asarray(train[1], dtype=np.int64)
    t0 = time.perf_counter()
    with TorchThreads(THREADS):
        model = fit(x, y, per_class, seed, **({"passes": lvq1_passes} if method == "lvq1" else {}))
        seconds = time.perf_counter() - t0
        acc = float(np.mean(np.asarray(model.predict(np.asarray(test[0], dtype=np.float32))) == np.asarray(test[1])))
    return {"classifier": name, "accuracy": acc, "train_seconds": seconds}
