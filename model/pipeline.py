"""``vqe compress``: network -> compression method -> int8 lowering -> program file."""
from __future__ import annotations

import time

import numpy as np

from .data import load_fashion_mnist
from .fixedpoint import quantize_act
from .golden import GoldenEngine
from .program import Program, build_program

#: Compression methods ``vqe compress --method`` accepts.
METHODS = ("kmeans", "pvq")
DATASET = "fashion-mnist"
MAX_CODEBOOK = 1 << 16


class CompressError(Exception):
    """Compression options that cannot work."""


def codebook_depth_for(size: int) -> int:
    """Smallest power of two (>= 2) that holds ``size`` codewords: the engine's index width."""
    return max(2, 1 << (size - 1).bit_length())


def golden_accuracy(program: Program, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the golden model (the engine's exact arithmetic) on float inputs ``x``."""
    image, _, _ = program.dram_image(quantize_act(x, program.meta["input_scale"]))
    outputs = GoldenEngine(program.config).run(image).outputs
    return float(np.mean(np.argmax(outputs, axis=1) == y))


def compress(network: str, method: str, *, lanes: int = 4, codebook_size: int = 256,
             finetune_epochs: int | None = None, calibration: int = 2000, seed: int = 0,
             progress: bool = True, bits_per_weight: float | None = None) -> Program:
    """Compress a registered network into a :class:`Program`, with its accuracies measured.

    Parameters
    ----------
    network : str
        A name in :data:`model.networks.NETWORKS`.
    method : str
        One of :data:`METHODS`.
    lanes : int
        Engine lanes, which is the VQ sub-vector dimension.
    codebook_size : int
        Codewords per layer.
    finetune_epochs : int, optional
        Codeword fine-tuning epochs after k-means; the method's default if None.
    calibration : int
        Training images used to calibrate activation scales.
    seed : int
        Seed for training, k-means and calibration sampling.
    progress : bool
        Show progress bars.
    """
    from .lowering import lower_vq
    from .networks import evaluate, get_network
    from .vq import vq_compress, to_torch

    if method not in METHODS:
        raise CompressError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if lanes not in (1, 2, 4, 8):
        raise CompressError(f"--lanes must be 1, 2, 4 or 8, got {lanes}")
    if not 1 <= codebook_size <= MAX_CODEBOOK:
        raise CompressError(f"--codebook-size must be 1..{MAX_CODEBOOK}, got {codebook_size}")
    if calibration < 1:
        raise CompressError("--calibration must be at least 1 image")

    model = get_network(network, progress=progress, seed=seed)
    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    rng = np.random.default_rng(seed)
    calib = x_train[rng.choice(len(x_train), size=min(calibration, len(x_train)), replace=False)]
    if method == "pvq":
        return _compress_pvq(network, model, lanes, bits_per_weight, finetune_epochs, seed, progress,
                             (x_train, y_train), (x_test, y_test), calib)
    t0 = time.perf_counter()
    kwargs = {} if finetune_epochs is None else {"finetune_epochs": finetune_epochs}
    vq = vq_compress(model, dim=lanes, k=codebook_size, seed=seed, name=network,
                     train_data=(x_train, y_train), progress=progress, **kwargs)
    compress_seconds = time.perf_counter() - t0
    lowered = lower_vq(vq, calib, lanes)
    lowered.name, lowered.method = network, method
    program = build_program(lowered, codebook_depth=codebook_depth_for(codebook_size), info={
        "float_accuracy": evaluate(model, x_test, y_test),
        "vq_float_accuracy": evaluate(to_torch(vq), x_test, y_test),
        "compress_seconds": compress_seconds,
        "codebook_size": codebook_size, "seed": seed, "calibration_images": len(calib),
        "test_images": len(x_test),
    })
    program.meta["dataset"] = DATASET
    program.meta["info"]["int8_accuracy"] = golden_accuracy(program, x_test, y_test)
    return program


def _compress_pvq(network, model, lanes, bits_per_weight, finetune_epochs, seed, progress,
                  train, test, calib) -> Program:
    """PVQ-code every layer (model/pvq_compress.py); the engine gets a PVQ unit sized to the largest K."""
    from .networks import evaluate
    from .pvq_compress import DEFAULT_BITS_PER_WEIGHT, FINETUNE_EPOCHS, pvq_compress, pvq_to_torch
    t0 = time.perf_counter()
    net, lowered = pvq_compress(model, lanes=lanes,
                                bits_per_weight=bits_per_weight or DEFAULT_BITS_PER_WEIGHT,
                                finetune_epochs=FINETUNE_EPOCHS if finetune_epochs is None else finetune_epochs,
                                seed=seed, progress=progress, name=network, train_data=train, calib_x=calib)
    seconds = time.perf_counter() - t0
    lowered.name, lowered.method = network, "pvq"
    ks = [int(layer.pvq_k) for layer in lowered.layers]
    program = build_program(lowered, pvq_k_max=max(ks), info={
        "float_accuracy": evaluate(model, *test),
        "pvq_float_accuracy": evaluate(pvq_to_torch(net), *test),
        "compress_seconds": seconds, "pvq_k": ks, "seed": seed, "calibration_images": len(calib),
        "test_images": len(test[0]),
        "bits_per_weight_budget": bits_per_weight or DEFAULT_BITS_PER_WEIGHT,
    })
    program.meta["dataset"] = DATASET
    program.meta["info"]["int8_accuracy"] = golden_accuracy(program, *test)
    return program
