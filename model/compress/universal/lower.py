"""A network fitted to the universal codebook as torch layers, and lowered to the engine's int8 arithmetic."""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from model.compress.lowering import (HIDDEN_PERCENTILE, OUTPUT_PERCENTILE, LayerCoding,
                                     LoweredNetwork, lower_sequence)
from model.codecs.layers.vq import make_compact
from model.compress.universal.codebook import UniversalCodebook
from model.compress.universal.fit import HARD_STEPS, SOFT_STEPS, UniversalNetwork, fit_universal
from model.nets.distill import DistillSet


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


def lower_universal(net: UniversalNetwork, calib_x: np.ndarray, lanes: int | None = None,
                    template: nn.Sequential | None = None) -> LoweredNetwork:
    """Integer program of a network coded against the universal codebook.

    Every layer's ``codebook`` is the same int8 universal ROM (the caller may
    map them all to ROM base 0).  Row ``r`` of a layer with input scale
    ``s_in`` and output scale ``s_out`` computes
    ``acc = bias_r + codeword_int8 . x_int8`` at scale
    ``a_r = s_in * s_codebook * s_r``: the int32 bias is ``round(b_r / a_r)``
    and its requantization multiplier/shift is
    ``quantize_multiplier(a_r / s_out)``, per row.  Output scales come from
    calibration on ``calib_x`` (:func:`model.compress.lowering.lower_sequence`).

    Parameters
    ----------
    net : UniversalNetwork
        ReLU after every weight layer but the last.
    calib_x : numpy.ndarray
        Calibration inputs in [0, 1] (the input scale is 1/127).
    lanes : int, optional
        Engine lanes; must equal the codebook dimension.
    template : torch.nn.Sequential, optional
        The network ``net`` was fitted on when it is not a Linear/ReLU chain
        (a lowered :class:`model.nets.graph.trace.EngineNet`, convolutions and pooling included).

    Returns
    -------
    LoweredNetwork
        ``method="universal"``; ``info`` adds the codebook hash and scales.
    """
    lanes = net.dim if lanes is None else lanes
    if lanes != net.dim:
        raise ValueError(f"engine has {lanes} lanes but the universal codebook has dimension {net.dim}")
    if template is None:
        template = coded = to_sequential(net)
    else:
        coded = net.apply(template)
    rom = np.ascontiguousarray(net.codebook.codewords, dtype=np.int8)
    s_cb = float(net.codebook.scale)
    codings = [LayerCoding(rom, layer.indices, s_cb * layer.row_scale.astype(np.float64),
                           layer.bias if layer.bias is not None else np.zeros(layer.out_features))
               for layer in net.layers]
    layers, scales, out_scales = lower_sequence(template, coded, codings, calib_x, lanes,
                                                getattr(template, "outputs", None))
    # One header word per row where a layer can take it: the rows of a universal program are mostly
    # index bits, so their two-word headers are a large share of its bytes (LeNet-5: 12 %).
    compact = [make_compact(layer) for layer in layers]
    info = dict(net.info)
    info.update(codebook_sha256=net.codebook.content_hash(), codebook_scale=s_cb, codebook_size=net.k,
                calibration_images=int(len(calib_x)), hidden_percentile=HIDDEN_PERCENTILE,
                output_percentile=OUTPUT_PERCENTILE, activation_scales=scales + out_scales,
                compact_layers=[i for i, c in enumerate(compact) if c])
    return LoweredNetwork(name=net.name, method="universal", lanes=lanes, input_scale=scales[0],
                          output_scale=out_scales[0], layers=layers, info=info, output_scales=out_scales)


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
