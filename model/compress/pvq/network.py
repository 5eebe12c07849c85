"""Pyramid vector quantization of a network's weights, lowered to the engine's integers.

Every fully-connected layer's weight matrix ``W`` (out, in) is cut row-wise
into sub-vectors of ``N`` weights, ``N`` = the engine's lanes (same layout and
zero padding as :func:`model.compress.kmeans.network.split_subvectors`).  Each sub-vector is coded
as ``g * y`` with ``y`` on the pyramid ``P(N, K)`` (``sum |y_i| = K``) and a
gain ``g >= 0`` (:func:`model.compress.pvq.pyramid.pvq_quantize_matrix`).  The engine holds per
sub-vector ``y``'s enumeration index (``pvq_bits(N, K)`` bits) and an unsigned
``PVQ_SCALE_BITS``-bit integer scale.

Bits and the choice of K
========================
A layer costs, counted the way :func:`model.program.compression_stats` counts a
program's row streams (but without padding each row to whole words):

    layer_bits = out * (S * (pvq_bits(N, K) + SCALE_BITS) + BIAS_BITS + REQUANT_BITS)

with ``S = ceil(in / N)`` sub-vectors per row (the padded last one is paid in
full), ``SCALE_BITS = 8``, a 32-bit bias and a 32-bit requantization word per
row.  Its bits per weight are ``layer_bits / (in * out)``.  For a budget ``B``
each layer takes the largest ``K`` with ``bits per weight <= B``
(:func:`choose_layer_k`; ``row_overhead=False`` leaves the per-row words out
of the test).  When even ``K = 1`` exceeds ``B`` (a narrow layer such as
LeNet-300-100's 100 -> 10 pays 0.64 bits/weight for its row words alone) the
layer takes ``K = 1`` and is listed in ``info["over_budget_layers"]``; the
network-wide figure ``info["bits_per_weight"]`` is the honest total.

Integer scales
==============
Per row ``r``: ``s_row = max_s g[r, s] / 255`` and ``scale_int = round(g /
s_row)`` in 0..255, so the real weight the engine represents is ``s_row *
scale_int * y``.  A row whose gains are all zero takes ``s_row`` = the median
``s_row`` of the layer's other rows (1/255 if every row is zero), so its bias
keeps a sensible resolution.

Fine-tuning
===========
``y`` stays fixed; the per-sub-vector gains and the biases are trained with
Adam for ``finetune_epochs`` epochs (k-means' :data:`~model.compress.kmeans.network.FINETUNE_BATCH`,
:data:`~model.compress.kmeans.network.FINETUNE_LR`) on float gains, the way :mod:`model.compress.kmeans.network` trains codewords
with fixed indices.  A gain trained below zero is folded into ``y``
(``y -> -y``, ``g -> -g``: still on the pyramid).  Re-projecting ``y`` during
training was not tried.

Lowering
========
Activation scales are calibrated exactly as :func:`model.compress.lowering.lower_vq`
does (its calibration helper runs on the float network whose weights are the
scale-quantized ``s_row * scale_int * y``, i.e. the weights the engine holds).
Per row: ``acc_scale = s_in * s_row``, ``bias = round(b / acc_scale)``
(clipped to int32), ``(mult, shift) = quantize_multiplier(acc_scale /
s_out)``.  The engine computes

    acc = wrap32(bias[r] + sum_s pvq_scale[r, s] * sum_i pvq_y[r, s, i] * x[s*N + i])
    out = requantize(acc, mult[r], shift[r], relu)

(:func:`golden_forward_pvq`).
"""
from __future__ import annotations

import time
import warnings
from typing import Sequence

import numpy as np
from torch import nn

from model.compress.kmeans.network import FINETUNE_BATCH, FINETUNE_LR, _linear_layers, finetune_coded
from model.compress.lowering import CALIBRATION_IMAGES, LoweredNetwork
from model.compress.pvq.budget import (DEFAULT_BITS_PER_WEIGHT, SCALE_BITS, PVQBudgetError, choose_layer_k,
                                       pvq_layer_stream_bits)
from model.compress.pvq.layers import PVQLinear, PVQNetwork, pvq_to_torch, quantize_linear
from model.compress.pvq.lower import evaluate_lowered_pvq, lower_pvq
from model.compress.registry import CompressError, EngineJob, register_method
from model.nets.data import load_fashion_mnist
from model.nets.networks import evaluate

#: Fine-tuning of gains and biases (``y`` fixed).  Adam, as for VQ codewords.
FINETUNE_EPOCHS = 2


def _layer_ks(linears, lanes: int, bits_per_weight: float | None, k, row_overhead: bool) -> tuple[list[int], list[int]]:
    """K per layer and the indices of layers that could not meet the budget."""
    if k is not None:
        ks = [int(k)] * len(linears) if np.ndim(k) == 0 else [int(v) for v in k]
        if len(ks) != len(linears) or min(ks) < 1:
            raise PVQBudgetError(f"k must be an int >= 1 or one per layer ({len(linears)}), got {k}")
        return ks, []
    if bits_per_weight is None:
        raise PVQBudgetError("give bits_per_weight or k")
    ks, over = [], []
    for i, (lin, _) in enumerate(linears):
        kk = choose_layer_k(lin.in_features, lin.out_features, lanes, bits_per_weight, row_overhead)
        if kk == 0:
            over.append(i)
            kk = 1
        ks.append(kk)
    if over:
        warnings.warn(f"PVQ: layers {over} cannot meet {bits_per_weight} bits/weight even with K=1; "
                      f"they use K=1", stacklevel=3)
    return ks, over


def pvq_compress(model: nn.Module, lanes: int = 4, bits_per_weight: float | None = DEFAULT_BITS_PER_WEIGHT,
                 finetune_epochs: int = FINETUNE_EPOCHS, seed: int = 0, progress: bool = True, *,
                 k: int | Sequence[int] | None = None, row_overhead: bool = True, name: str = "",
                 train_data: tuple[np.ndarray, np.ndarray] | None = None,
                 eval_data: tuple[np.ndarray, np.ndarray] | None = None,
                 calib_x: np.ndarray | None = None,
                 calibration_images: int = CALIBRATION_IMAGES) -> tuple[PVQNetwork, LoweredNetwork]:
    """PVQ-code every layer of a Linear/ReLU network, fine-tune the gains, lower to integers.

    Parameters
    ----------
    model : torch.nn.Sequential
        ``nn.Linear`` layers, each but the last followed by ``nn.ReLU``.  Not modified.
    lanes : int
        Sub-vector dimension = engine lanes (``>= 2``; 4 and 8 are the engine's).
    bits_per_weight : float
        Per-layer budget, all-in (index + scale + row words, see :func:`choose_layer_k`).
    finetune_epochs : int
        Epochs of gain/bias training with ``y`` fixed; 0 keeps the projection's gains.
    seed : int
        Fine-tuning batch order and the calibration sample.
    progress : bool
        Progress bar while fine-tuning.
    k : int or sequence of int, optional
        Pulses per sub-vector (one for all layers or one per layer); overrides the budget.
    row_overhead : bool
        Count the per-row bias and requantization words when choosing K.
    name : str
        Network name recorded in the results.
    train_data : (x, y), optional
        Fine-tuning and calibration data; default the Fashion-MNIST training set (loaded only if needed).
    eval_data : (x, y), optional
        If given, ``info`` records accuracies (float, projection, fine-tuned, scale-quantized, int8).
    calib_x : numpy.ndarray, optional
        Calibration inputs; default ``calibration_images`` training images drawn with ``seed``
        (as ``vqe compress`` does).
    calibration_images : int

    Returns
    -------
    net : PVQNetwork
        The float PVQ network (evaluate it with ``pvq_to_torch(net)``).
    lowered : model.compress.lowering.LoweredNetwork
        ``method = "pvq"``, layers :class:`PVQLoweredLayer`; ``info`` includes ``net.info``.
    """
    if lanes < 2:
        raise PVQBudgetError(f"PVQ needs lanes >= 2, got {lanes}")
    linears = _linear_layers(model)
    ks, over = _layer_ks(linears, lanes, bits_per_weight, k, row_overhead)
    info: dict = {"lanes": lanes, "requested_bits_per_weight": bits_per_weight, "seed": seed,
                  "pvq_k": ks, "over_budget_layers": over, "row_overhead_in_budget": row_overhead,
                  "finetune_epochs": finetune_epochs, "finetune_batch": FINETUNE_BATCH, "finetune_lr": FINETUNE_LR,
                  "scale_bits": SCALE_BITS}
    t0 = time.perf_counter()
    layers = [quantize_linear(lin, lanes, kk, relu) for (lin, relu), kk in zip(linears, ks)]
    info["project_seconds"] = time.perf_counter() - t0
    net = PVQNetwork(name=name, method="pvq", dim=lanes, bits_per_weight=bits_per_weight, layers=layers, info=info)
    weights = net.weights()
    info["weights"] = weights
    info["layer_bits"] = [layer.bits() for layer in layers]
    info["layer_bits_per_weight"] = [layer.bits() / (layer.in_features * layer.out_features) for layer in layers]
    info["bits"] = net.bits()
    info["bits_per_weight"] = net.bits() / weights
    info["bits_per_weight_entries_only"] = net.bits(row_overhead=False) / weights
    info["stream_bits_per_weight"] = sum(
        pvq_layer_stream_bits(l.in_features, l.out_features, lanes, l.k) for l in layers) / weights
    if eval_data is not None:
        info["float_accuracy"] = evaluate(model, *eval_data)
        info["pvq_projection_accuracy"] = evaluate(pvq_to_torch(net), *eval_data)
    if finetune_epochs > 0 or calib_x is None:
        if train_data is None:
            train_data = load_fashion_mnist("train")
    if finetune_epochs > 0:
        net.layers, info["finetune_seconds"] = finetune_coded(pvq_to_torch(net), PVQLinear, layers, train_data,
                                                              epochs=finetune_epochs, seed=seed, progress=progress,
                                                              desc="pvq finetune")
    if eval_data is not None:
        info["pvq_float_accuracy"] = evaluate(pvq_to_torch(net), *eval_data)
        info["pvq_scaleq_accuracy"] = evaluate(pvq_to_torch(net, quantized_scales=True), *eval_data)
    if calib_x is None:
        rng = np.random.default_rng(seed)
        x_train = train_data[0]
        calib_x = x_train[rng.choice(len(x_train), size=min(calibration_images, len(x_train)), replace=False)]
    t0 = time.perf_counter()
    lowered = lower_pvq(net, calib_x)
    lowered.info["lowering_seconds"] = time.perf_counter() - t0
    if eval_data is not None:
        lowered.info["int8_accuracy"] = evaluate_lowered_pvq(lowered, *eval_data)
        info["int8_accuracy"] = lowered.info["int8_accuracy"]
    return net, lowered


def _linear_chain(job: EngineJob) -> nn.Sequential:
    chain = job.task.net.linear_chain()
    if chain is None:
        raise CompressError(f"--method pvq codes fully-connected networks; {job.network} has convolutions "
                            "(use --method kmeans or universal)")
    return chain


@register_method("pvq", "pyramid VQ: an enumeration index and an 8-bit scale per sub-vector, no codebook",
                 options=("bits_per_weight", "finetune_epochs"))
def pvq_program(job: EngineJob):
    """PVQ-code every layer; the engine gets a PVQ unit sized to the largest K."""
    from model.program.writer import build_program
    o = job.options
    budget = o.bits_per_weight or DEFAULT_BITS_PER_WEIGHT
    epochs = FINETUNE_EPOCHS if o.finetune_epochs is None else o.finetune_epochs
    if job.data.train.labels is None:
        epochs = 0      # the gains are fine-tuned on labels; a user's model brings inputs only
    t0 = time.perf_counter()
    net, lowered = pvq_compress(_linear_chain(job), lanes=o.lanes, bits_per_weight=budget,
                                finetune_epochs=epochs,
                                seed=o.seed, progress=o.progress, name=job.network,
                                train_data=(job.data.train.inputs, job.data.train.labels),
                                calib_x=job.calib.reshape(len(job.calib), -1))
    seconds = time.perf_counter() - t0
    lowered.name, lowered.method = job.network, "pvq"
    ks = [int(layer.pvq_k) for layer in lowered.layers]
    return build_program(lowered, pvq_k_max=max(ks), info=dict(
        # The chain takes the raw inputs flattened (its input index is the identity).
        job.info, pvq_float_accuracy=job.quality(nn.Sequential(nn.Flatten(), pvq_to_torch(net))), compress_seconds=seconds, pvq_k=ks,
        bits_per_weight_budget=budget, pvq_finetune_epochs=epochs))
