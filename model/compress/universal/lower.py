"""A network fitted to the universal codebook as torch layers, and lowered to the engine's int8 arithmetic."""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from model.compress.lowering import (HIDDEN_PERCENTILE, INPUT_SCALE, INT32_MAX, INT32_MIN, OUTPUT_PERCENTILE,
                                     LoweredLayer, LoweredNetwork)
from model.compress.universal.codebook import UniversalCodebook
from model.compress.universal.fit import HARD_STEPS, SOFT_STEPS, UniversalNetwork, fit_universal
from model.contract.fixedpoint import ACT_MAX, quantize_multiplier
from model.nets.distill import DistillSet
from model.nets.training import TORCH_THREADS, TorchThreads


def to_sequential(net: UniversalNetwork) -> nn.Sequential:
    """A float Linear/ReLU ``nn.Sequential`` computing with the coded weights (chains only)."""
    mods: list[nn.Module] = []
    for layer, w in zip(net.layers, net.weights().values()):
        if len(layer.weight_shape) != 2:
            raise ValueError(f"layer {layer.name!r} is not fully connected: only Linear/ReLU chains lower")
        lin = nn.Linear(layer.in_features, layer.out_features, bias=True)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(layer.bias if layer.bias is not None
                                            else np.zeros(layer.out_features, np.float32)))
        mods.append(lin)
        if layer.relu:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


@torch.no_grad()
def _calibrate(model: nn.Sequential, calib_x: np.ndarray, n_layers: int) -> list[float]:
    """Per-layer output scales, by the rules of :mod:`model.compress.lowering`."""
    h = torch.from_numpy(np.ascontiguousarray(calib_x, dtype=np.float32))
    scales = []
    mods = list(model)
    with TorchThreads(TORCH_THREADS):
        for i, m in enumerate(mods):
            h = m(h)
            last = i == len(mods) - 1
            if isinstance(m, nn.ReLU) or last:
                a = h.numpy()
                stat = float(np.percentile(np.abs(a), OUTPUT_PERCENTILE) if last
                             else np.percentile(a, HIDDEN_PERCENTILE))
                if not stat > 0:
                    raise ValueError(f"layer {len(scales)} is all zero on the calibration set")
                scales.append(stat / ACT_MAX)
    if len(scales) != n_layers:
        raise ValueError("lower_universal expects ReLU after every layer but the last")
    return scales


def lower_universal(net: UniversalNetwork, calib_x: np.ndarray, lanes: int | None = None) -> LoweredNetwork:
    """Integer program of a universally coded Linear/ReLU chain.

    Every layer's ``codebook`` is the same int8 universal ROM (the caller may
    map them all to ROM base 0).  Row ``r`` of a layer with input scale
    ``s_in`` and output scale ``s_out`` computes
    ``acc = bias_r + codeword_int8 . x_int8`` at scale
    ``a_r = s_in * s_codebook * s_r``: the int32 bias is ``round(b_r / a_r)``
    and its requantization multiplier/shift is
    ``quantize_multiplier(a_r / s_out)``, per row.  Output scales come from
    calibration on ``calib_x`` exactly as in :func:`model.compress.lowering.lower_vq`.

    Parameters
    ----------
    net : UniversalNetwork
        Fully-connected layers, ReLU after every one but the last.
    calib_x : numpy.ndarray, shape (n, in_features)
        Calibration inputs in [0, 1] (the input scale is 1/127).
    lanes : int, optional
        Engine lanes; must equal the codebook dimension.

    Returns
    -------
    LoweredNetwork
        ``method="universal"``; ``info`` adds the codebook hash and scales.
    """
    lanes = net.dim if lanes is None else lanes
    if lanes != net.dim:
        raise ValueError(f"engine has {lanes} lanes but the universal codebook has dimension {net.dim}")
    seq = to_sequential(net)
    out_scales = _calibrate(seq, calib_x, len(net.layers))
    in_scales = [INPUT_SCALE] + out_scales[:-1]
    rom = np.ascontiguousarray(net.codebook.codewords, dtype=np.int8)
    s_cb = float(net.codebook.scale)
    layers = []
    for layer, s_in, s_out in zip(net.layers, in_scales, out_scales):
        acc = s_in * s_cb * layer.row_scale.astype(np.float64)
        b = layer.bias if layer.bias is not None else np.zeros(layer.out_features)
        bias = np.clip(np.round(b.astype(np.float64) / acc), INT32_MIN, INT32_MAX).astype(np.int64)
        mq = [quantize_multiplier(a / s_out) for a in acc]
        layers.append(LoweredLayer(in_features=layer.in_features, out_features=layer.out_features, codebook=rom,
                                   indices=layer.indices.astype(np.int64), bias=bias,
                                   mult=np.array([m for m, _ in mq], dtype=np.int64),
                                   shift=np.array([s for _, s in mq], dtype=np.int64), relu=layer.relu))
    info = dict(net.info)
    info.update(codebook_sha256=net.codebook.content_hash(), codebook_scale=s_cb, codebook_size=net.k,
                calibration_images=int(len(calib_x)), hidden_percentile=HIDDEN_PERCENTILE,
                output_percentile=OUTPUT_PERCENTILE, activation_scales=[INPUT_SCALE] + out_scales)
    return LoweredNetwork(name=net.name, method="universal", lanes=lanes, input_scale=INPUT_SCALE,
                          output_scale=out_scales[-1], layers=layers, info=info)


def row_scale_spread(net: UniversalNetwork) -> dict:
    """Largest over smallest row scale per layer (how much per-row scaling matters)."""
    return {layer.name: float(layer.row_scale.max() / max(layer.row_scale.min(), 1e-30)) for layer in net.layers}


def lower_network_universal(name: str = "lenet300", codebook: UniversalCodebook | None = None, seed: int = 0, *,
                            soft_steps: int = SOFT_STEPS, hard_steps: int = HARD_STEPS, calibration_images: int = 2000,
                            cache_dir=None, progress: bool = True) -> LoweredNetwork:
    """The universal-codebook pipeline for a Fashion-MNIST MLP of :mod:`model.nets.networks`.

    Float network -> :func:`fit_universal` against ``codebook`` (default the
    shipped one), distilled on the 60k training images with their labels ->
    :func:`lower_universal`, calibrated on ``calibration_images`` training
    images drawn with ``seed``.  ``info`` records ``float_accuracy``,
    ``universal_float_accuracy`` and ``int8_accuracy`` on the 10k test images.
    """
    from model.compress.lowering import evaluate_lowered
    from model.compress.universal.codebook import load_codebook
    from model.nets.data import load_fashion_mnist
    from model.nets.networks import evaluate, get_network
    codebook = load_codebook() if codebook is None else codebook
    model = get_network(name, cache_dir=cache_dir, progress=progress, seed=seed)
    x_train, y_train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    t0 = time.perf_counter()
    net = fit_universal(model, codebook, DistillSet(x_train, y_train), name=name, soft_steps=soft_steps,
                        hard_steps=hard_steps, seed=seed, progress=progress)
    compress_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    calib = x_train[rng.choice(len(x_train), size=min(calibration_images, len(x_train)), replace=False)]
    lowered = lower_universal(net, calib)
    lowered.info.update(float_accuracy=evaluate(model, *test), universal_float_accuracy=evaluate(net.apply(model), *test),
                        int8_accuracy=evaluate_lowered(lowered, *test), compress_seconds=compress_seconds,
                        codebook_donors=list(codebook.donors))
    return lowered
