"""Test inputs for a program: its dataset's test split (or a zoo network's evaluation set) as the engine
takes it, or seeded random vectors.

A program's metadata names its dataset (``dataset``), where each engine input
value comes from in a raw input (``input_index``, see :mod:`model.nets.tasks`)
and the engine's input scale (``input_scale``).
A program without a dataset (a synthetic network) runs on random int8
vectors.

May import: ``model.contract``, ``model.codecs`` and ``model.nets``.
"""
from __future__ import annotations

import numpy as np

from model.codecs.vectors import random_vectors
from model.contract.errors import VqeError
from model.contract.fixedpoint import quantize_act

#: Datasets whose test split this version can load, as a program's ``dataset`` names them (besides
#: ``zoo:NAME``, the evaluation set of zoo network NAME).
DATASETS = ("fashion-mnist",)


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
    if dataset is None:
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
