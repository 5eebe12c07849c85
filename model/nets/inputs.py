"""Test inputs for a program: its dataset's test split (or a zoo network's evaluation set) as the engine
takes it, or seeded random vectors.

A program's metadata names its dataset (``dataset``), where each engine input
value comes from in a raw input (``input_index``, see :mod:`model.nets.tasks`)
and the engine's input scale (``input_scale``).
A program without a dataset (a synthetic network) runs on random int8
vectors, and so does a user's model (``dataset: "user"``) unless its own
inputs are given (:func:`load_user_inputs`, ``vqe run --inputs FILE.npz``).

May import: ``model.contract``, ``model.codecs`` and ``model.nets``.
"""
from __future__ import annotations

import numpy as np

from model.codecs.vectors import random_vectors
from model.contract.errors import NPZ_READ_ERRORS, VqeError
from model.contract.fixedpoint import quantize_act

#: Datasets whose test split this version can load, as a program's ``dataset`` names them (besides
#: ``zoo:NAME``, the evaluation set of zoo network NAME).
DATASETS = ("fashion-mnist",)
#: The ``dataset`` of a user's model (:mod:`model.nets.user`): its inputs come from the user (``vqe run --inputs``).
USER_DATASET = "user"


class InputError(VqeError):
    """The inputs asked for cannot be given: a dataset this version cannot load, or a range past its test split."""


def load_inputs(meta: dict, n: int, offset: int, seed: int):
    """Test inputs for a program: its dataset's test split, or seeded random vectors.

    Parameters
    ----------
    meta : dict
        The program's metadata (``dataset``, ``input_features``, ``input_index``, ``input_scale``).
    n : int
        Inputs to give.
    offset : int
        First test image (dataset only).
    seed : int
        Seed of the random vectors (no dataset only).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None, numpy.ndarray or None)
        The engine's int8 inputs ``(n, input_features)``; the labels and the
        float images (both None for random vectors).

    Raises
    ------
    InputError
        If the dataset is unknown, or ``offset`` and ``n`` run past its test split.
    model.nets.data.DataError
        If the dataset's files are missing or invalid.
    """
    dataset = meta.get("dataset")
    if dataset is None or dataset == USER_DATASET:
        return random_vectors(np.random.default_rng(seed), n, meta["input_features"]), None, None
    from model.nets.tasks import engine_input, eval_inputs, zoo_dataset
    if dataset.startswith("zoo:") and dataset == zoo_dataset(meta["network"]):
        # A zoo network's evaluation set: no labels (its metric compares with the float network).
        x = eval_inputs(dataset)
        if not 0 <= offset or offset + n > len(x):
            raise InputError(f"--offset {offset} --images {n} runs past the {len(x)} evaluation inputs")
        x = x[offset:offset + n]
        return engine_input(meta, quantize_act(x.reshape(n, -1), meta["input_scale"])), None, x
    if dataset not in DATASETS:
        raise InputError(f"program uses dataset {dataset!r}, which this vqe cannot load")
    from model.nets.data import load_fashion_mnist

    x, y = load_fashion_mnist("test")
    if not 0 <= offset or offset + n > len(x):
        raise InputError(f"--offset {offset} --images {n} runs past the {len(x)} test images")
    x, y = x[offset:offset + n], y[offset:offset + n]
    # A convolutional network's input is an HWC map with padded channels, written by the host.
    return engine_input(meta, quantize_act(x, meta["input_scale"])), y, x


def load_user_inputs(meta: dict, path, n: int | None, offset: int):
    """A program's inputs from a ``.npz`` file: array ``x`` (N, *input shape) and, optionally, ``y`` (integer labels
    or float reference outputs).

    Parameters
    ----------
    meta : dict
        The program's metadata (``input_shape``, ``input_index``, ``input_scale``).
    path : path or dict
        The file (``vqe run --inputs``), or its arrays (``{"x": ..., "y": ...}``).
    n : int or None
        Inputs to give (None: all from ``offset``).
    offset : int
        First input.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None, numpy.ndarray)
        The engine's int8 inputs, ``y`` (or None) and the float inputs.

    Raises
    ------
    InputError
        An unreadable file, no ``x``, inputs of another shape or type, or a range past the file.
    """
    from model.nets.tasks import engine_input
    if isinstance(path, dict):
        x, y, path = np.asarray(path["x"]), path.get("y"), "inputs"
        y = None if y is None else np.asarray(y)
    else:
        try:
            f = np.load(path, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile) or "x" not in f.files:
                raise InputError(f"{path}: --inputs takes an .npz archive with an array x (and optionally y)")
            with f:
                x, y = f["x"], (f["y"] if "y" in f.files else None)
        except NPZ_READ_ERRORS as e:
            raise InputError(f"{path}: not a readable .npz archive: {str(e).splitlines()[0] if str(e) else e}") \
                from None
    shape = tuple(meta.get("input_shape") or (meta["input_features"],))
    if x.dtype.kind != "f" or x.shape[1:] != shape:
        raise InputError(f"{path}: x must be float inputs (N, {', '.join(map(str, shape))}), got {x.dtype} {x.shape}")
    if y is not None and (y.dtype.kind not in "iuf" or len(y) != len(x) or (y.dtype.kind in "iu" and y.ndim != 1)):
        raise InputError(f"{path}: y must be integer labels (N,) or float reference outputs (N, values) for the "
                         f"{len(x)} inputs, got {y.dtype} {y.shape}")
    n = len(x) - offset if n is None else n
    if not 0 <= offset or n < 1 or offset + n > len(x):
        raise InputError(f"--offset {offset} --images {n} runs past the {len(x)} inputs of {path}")
    x = x[offset:offset + n].astype(np.float32)
    if y is not None:
        y = y[offset:offset + n]
        y = y.astype(np.int64) if y.dtype.kind in "iu" else y.astype(np.float32).reshape(n, -1)
    return engine_input(meta, quantize_act(x.reshape(n, -1), meta["input_scale"])), y, x
