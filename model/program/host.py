"""What the host does with a program's outputs to get each input's class (``vqe run``'s accuracy).

A program's ``outputs`` (metadata; :attr:`model.nets.graph.trace.EngineNet.outputs`) lists the slices of
the engine's output vector.  The first slice may name its ``class_step`` (:data:`CLASS_STEPS`):

* ``"argmax"`` (the default, and the only step before LVQ): the class is the index of the largest
  output over the whole vector (logits);
* ``"argmax_label"``: the class is ``labels[j]``, ``j`` the index of the largest output of the slice (ties
  to the lowest index, as :func:`numpy.argmax`) and ``labels`` (the slice's ``labels``, one class per
  output) the class of each output.  An LVQ program's outputs are its prototypes' scores
  ``p.x - ||p||^2 / 2``, whose argmax is the nearest prototype (:mod:`model.compress.lvq`); its
  label is the class.
* ``"engine_class"``: the engine wrote the class itself, the slice's first value (a nearest-prototype
  layer's label, :mod:`model.contract.layout`; the LVQ programs of :mod:`model.compress.lvq`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

#: The key of an output slice naming its class step, and of the per-output classes ``argmax_label`` reads.
CLASS_STEP = "class_step"
LABELS = "labels"


def _argmax(out: np.ndarray, span: dict) -> np.ndarray:
    return np.argmax(out, axis=1)


def _argmax_label(out: np.ndarray, span: dict) -> np.ndarray:
    labels = np.asarray(span[LABELS], dtype=np.int64)
    if len(labels) != span["stop"] - span["start"]:
        raise ValueError(f"an output slice of {span['stop'] - span['start']} values has {len(labels)} labels")
    return labels[np.argmax(out[:, span["start"]:span["stop"]], axis=1)]


def _engine_class(out: np.ndarray, span: dict) -> np.ndarray:
    return np.asarray(out[:, span["start"]], dtype=np.int64)


#: Class steps by name: ``fn(outputs (n, values), first output slice) -> classes (n,)``.
CLASS_STEPS: dict[str, Callable[[np.ndarray, dict], np.ndarray]] = {"argmax": _argmax,
                                                                    "argmax_label": _argmax_label,
                                                                    "engine_class": _engine_class}


def predicted_classes(meta: dict, outputs: np.ndarray) -> np.ndarray:
    """The class of each input from the engine's outputs (n, values), as the program's metadata says."""
    out = np.asarray(outputs)
    spans = meta.get("outputs") or [{"start": 0, "stop": out.shape[1]}]
    step = spans[0].get(CLASS_STEP, "argmax")
    if step not in CLASS_STEPS:
        raise ValueError(f"unknown class step {step!r}; known: {', '.join(CLASS_STEPS)}")
    return CLASS_STEPS[step](out, spans[0])
