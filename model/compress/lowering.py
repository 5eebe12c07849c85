"""Post-training int8 quantization of a VQ network into an integer "lowered network".

Scales
======
Every real value ``v`` is represented as ``q * s`` with ``q`` an integer:

* the input pixels (in [0, 1]) use ``INPUT_SCALE = 1/127``, so a white pixel
  is 127 and no input ever saturates;
* each layer's codebook uses one symmetric weight scale
  ``s_w = max|codebook| / 127``, so codewords fit int8 without clipping;
* the accumulator of a layer with input scale ``s_in`` has scale
  ``s_in * s_w``; the bias is quantized to it (int32);
* each layer's output scale ``s_out`` comes from calibration: the float VQ
  network runs on calibration images and ``s_out`` maps a high statistic of
  the layer's (post-ReLU) outputs to 127.  Hidden layers use the
  :data:`HIDDEN_PERCENTILE` percentile of all their post-ReLU values (zeros
  included), which clips a few outliers in exchange for a finer step for all
  the other activations.  The logits use the maximum absolute value
  (:data:`OUTPUT_PERCENTILE` = 100), so no calibration logit saturates, where
  it could tie with another at 127.  The choice matters little: on
  LeNet-300-100 with plain k-means VQ (88.98 %), hidden/output statistics of
  99.99th percentile/max give 88.96 %, max/max 88.95 %, 99.9th/max 88.88 %;
* the requantization ``acc -> int8`` multiplies by ``s_in * s_w / s_out``,
  approximated by :func:`model.contract.fixedpoint.quantize_multiplier`.

:func:`golden_forward` is the pure-NumPy definition of the resulting integer
arithmetic.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from model.compress.kmeans.network import (DEFAULT_DIM, DEFAULT_K, FINETUNE_EPOCHS, VQLayer, VQNetwork, to_torch,
                                           vq_compress)
from model.codecs.layers.base import layer_act
from model.codecs.layers.pq import pq_weights
from model.codecs.layers.rvq import rvq_weights
from model.contract.fixedpoint import (ACC_BITS, ACT_MAX, ACT_MIN, ACT_PARAM_MAX, ACT_PARAM_MIN, MULT_BITS, SHIFT_MAX,
                                       SLOPE_FRAC_BITS, quantize_act,
                                       quantize_multiplier, requantize, wrap_acc)
from model.contract.ints import ceil_div
from model.contract.window import Window
from model.nets.graph.modules import ACTIVATIONS, EngineActivation, EngineAdd, EngineAvgPool, EngineSave
from model.nets.data import load_fashion_mnist
from model.nets.networks import get_network
from model.nets.training import TORCH_THREADS, TorchThreads

#: Pixels in [0, 1] map onto 0..127.
INPUT_SCALE = 1.0 / ACT_MAX
#: Percentile of a hidden layer's post-ReLU activations (zeros included) mapped to 127.
HIDDEN_PERCENTILE = 99.99
#: Percentile of the output layer's |logits| mapped to 127 (100 = the maximum).
OUTPUT_PERCENTILE = 100.0
#: Training images used for calibration by :func:`lower_network`.
CALIBRATION_IMAGES = 2000
INT32_MIN = -(1 << (ACC_BITS - 1))
INT32_MAX = (1 << (ACC_BITS - 1)) - 1


@dataclass
class LoweredLayer:
    """One layer in integers, ready for the program-file writer.

    Attributes
    ----------
    in_features, out_features : int
    codebook : numpy.ndarray of int8, shape (K, lanes)
    indices : numpy.ndarray of int64, shape (out_features, ceil(in_features/lanes))
        Values < K.
    bias : numpy.ndarray of int64, shape (out_features,)
        Fits int32; scale ``s_in * s_w``.
    mult : numpy.ndarray of int64, shape (out_features,)
        ``0 <= mult < 2**MULT_BITS``.
    shift : numpy.ndarray of int64, shape (out_features,)
        ``0 <= shift <= SHIFT_MAX``.
    relu : bool
    act : numpy.ndarray of int64 or None
        Per-row activation parameter (:func:`model.contract.fixedpoint.requantize`): with ``relu`` the
        negative slope in 1/256ths, with ``floor`` the int8 floor; None is zero.
    floor : bool
    kind : str
        ``"fc"`` or ``"conv"`` (:mod:`model.codecs.layers.kinds`).
    window : model.contract.window.Window or None
        A convolution's geometry; its ``in_features`` is then a row's length (taps times padded channels).
    weights_count : int or None
        The source layer's real weights (None: ``in_features * out_features``).
    mode : str or None
        The layer codec (:mod:`model.codecs.layers`): None, the method's (``"vq"``; a deepcomp
        network's layers are ``"huffman"``: :func:`model.program.writer.layer_mode`); ``"rvq"`` (``codebook`` holds the
        stages' codebooks of ``section_size`` one after the other, ``indices`` (out, sub-vectors,
        stages)) or ``"pq"`` (``codebook`` holds each block's codebook of ``section_size``,
        ``indices`` index the sub-vector's block's, blocks of ``block_subvectors``).
    section_size, block_subvectors : int
        RVQ and PQ only (0 otherwise).
    """
    in_features: int
    out_features: int
    codebook: np.ndarray
    indices: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    relu: bool
    kind: str = "fc"
    window: Window | None = None
    weights_count: int | None = None
    act: np.ndarray | None = None
    floor: bool = False
    mode: str | None = None
    section_size: int = 0
    block_subvectors: int = 0

    def __post_init__(self):
        if self.codebook.dtype != np.int8 or self.codebook.ndim != 2:
            raise ValueError("codebook must be a 2-D int8 array")
        s = ceil_div(self.in_features, self.lanes)
        n = self.out_features
        limit = self.section_size if self.mode in ("rvq", "pq") else len(self.codebook)
        shape = (n, s, self.indices.shape[-1]) if self.mode == "rvq" else (n, s)
        in_range = self.indices.size == 0 or (self.indices.min() >= 0 and self.indices.max() < limit)
        if self.indices.shape != shape or not in_range:
            raise ValueError(f"indices must have shape {shape} and values in [0, {limit})")
        for name, lo, hi in (("bias", INT32_MIN, INT32_MAX), ("mult", 0, (1 << MULT_BITS) - 1),
                             ("shift", 0, SHIFT_MAX)):
            a = getattr(self, name)
            if a.shape != (n,) or a.min() < lo or a.max() > hi:
                raise ValueError(f"{name} must have shape {(n,)} and values in [{lo}, {hi}]")

    @property
    def lanes(self) -> int:
        return self.codebook.shape[1]

    def weight(self) -> np.ndarray:
        """The integer weight matrix (out_features, in_features), int64 (the layer codec's arithmetic)."""
        if self.mode == "rvq":
            w = rvq_weights(self.codebook, 0, self.section_size, self.indices)
        elif self.mode == "pq":
            w = pq_weights(self.codebook, 0, self.section_size, self.block_subvectors, self.indices)
        else:
            w = self.codebook.astype(np.int64)[self.indices]  # (out, S, lanes)
        return w.reshape(self.out_features, -1)[:, :self.in_features]


@dataclass
class LoweredPool:
    """A max-pooling layer: no weights, only its window (``in_features``: taps times padded channels)."""
    window: Window
    in_features: int
    out_features: int
    kind: str = "maxpool"
    relu: bool = False


@dataclass
class LoweredAvgPool(LoweredPool):
    """An average-pooling layer: its window and one requantization, ``mult / 2**shift ~ 1 / taps`` (the
    scale passes through, so ``out = sum * in_scale / (taps * out_scale)`` with ``out_scale = in_scale``)."""
    kind: str = "avgpool"
    mult: int = 0
    shift: int = 0

    @classmethod
    def of(cls, window: Window, lanes: int) -> "LoweredAvgPool":
        ch = window.channels(lanes)
        mult, shift = quantize_multiplier(1 / window.taps())
        return cls(window, window.taps() * ch, ch, mult=mult, shift=shift)


@dataclass
class LoweredAdd:
    """A residual add (the engine's ``ADD``): both operands at one scale (the skip's and the branch's
    output share it, :func:`calibrate`), ``mult / 2**shift ~ operand_scale / out_scale``."""
    in_features: int
    out_features: int
    mult: int
    shift: int
    relu: bool = False
    kind: str = "add"


@dataclass
class LayerCoding:
    """A weight layer's integer coding, what :func:`lower_sequence` needs besides the activations' scales.

    Attributes
    ----------
    codebook : numpy.ndarray of int8, shape (K, lanes)
    indices : numpy.ndarray of int64, shape (out_features, ceil(in_features/lanes))
    weight_scale : numpy.ndarray of float64, shape (out_features,)
        Row ``r``'s real weights are ``weight_scale[r] * codebook[indices[r]]`` (RVQ, PQ: the
        integer sub-vectors their codec decodes).
    bias : numpy.ndarray, shape (out_features,)
        The real bias.
    mode, section_size, block_subvectors
        As :class:`LoweredLayer`'s (None, 0, 0 for a k-means layer).
    """
    codebook: np.ndarray
    indices: np.ndarray
    weight_scale: np.ndarray
    bias: np.ndarray
    mode: str | None = None
    section_size: int = 0
    block_subvectors: int = 0


@dataclass
class LoweredNetwork:
    """An integer network: what the engine executes.

    Attributes
    ----------
    name, method : str
        Source network and compression method (``"vq"``).
    lanes : int
        Sub-vector dimension = engine lanes.
    input_scale : float
        ``x_int8 = quantize_act(x, input_scale)``.
    output_scale : float
        Real logit = int8 output * ``output_scale``.
    output_scales : list of float, optional
        With several outputs (:attr:`model.nets.graph.trace.EngineNet.outputs`): each one's scale.
    layers : list of LoweredLayer
    info : dict
        Measured facts (accuracies, calibration, seeds, sizes).
    """
    name: str
    method: str
    lanes: int
    input_scale: float
    output_scale: float
    layers: list[LoweredLayer]
    info: dict = field(default_factory=dict)
    output_scales: list[float] | None = None


def _is_weight_layer(m: torch.nn.Module) -> bool:
    return isinstance(m, torch.nn.Linear) or hasattr(m, "codebook")


def _is_activation(m: torch.nn.Module) -> bool:
    return isinstance(m, ACTIVATIONS)


def _is_scaled(m: torch.nn.Module) -> bool:
    """A module whose output the engine requantizes to a scale of its own: a weight layer or a residual add."""
    return _is_weight_layer(m) or isinstance(m, EngineAdd)


def input_scale_for(calib_x: np.ndarray) -> float:
    """The engine's input scale: :data:`INPUT_SCALE` for inputs within [-1, 1] (pixels), else the
    :data:`HIDDEN_PERCENTILE` percentile of ``|x|`` over the calibration inputs mapped to 127."""
    a = np.abs(np.asarray(calib_x, dtype=np.float64))
    if a.max(initial=0) <= 1:
        return INPUT_SCALE
    return float(np.percentile(a, HIDDEN_PERCENTILE)) / ACT_MAX


@torch.no_grad()
def calibrate(seq: torch.nn.Sequential, calib_x: np.ndarray, n_layers: int,
              outputs: list[dict] | None = None) -> tuple[list[float], list[float]]:
    """Output scales of the weight layers of ``seq`` (a float network computing with the coded weights)
    from its activations on ``calib_x``.

    A hidden layer's scale maps the :data:`HIDDEN_PERCENTILE` percentile of its
    activated values (``|value|`` when the activation lets negatives through) to
    127.  The last layer's outputs get a scale per entry of ``outputs`` (the
    source network's outputs, :attr:`model.nets.graph.trace.EngineNet.outputs`;
    default one for all), mapping the largest ``|value|`` to 127.

    A residual add (:class:`model.nets.graph.modules.EngineAdd`) is a layer
    with a scale of its own (``n_layers`` counts the weight layers only); its
    two operands, the saved vector (:class:`model.nets.graph.modules.EngineSave`)
    and the branch's last layer's output (no activation: ``|value|``), are one
    scale group: both get the larger of their two scales, since the engine adds
    them as int8 values.

    Returns
    -------
    (list of float, list of float)
        The hidden layers' scales (weight layers and adds, in order), and the output scales (one per output).
    """
    h = torch.from_numpy(np.ascontiguousarray(calib_x, dtype=np.float32))
    scales, groups, saved = [], [], None
    mods = list(seq)

    def record(a: np.ndarray, relu: bool) -> None:
        stat = float(np.percentile(a if relu else np.abs(a), HIDDEN_PERCENTILE))
        if not stat > 0:
            raise ValueError(f"layer {len(scales)} is all zero on the calibration set")
        scales.append(stat / ACT_MAX)

    with TorchThreads(TORCH_THREADS):
        for i, m in enumerate(mods):
            h = m(h)
            if i == len(mods) - 1:
                break
            if _is_activation(m) or (_is_scaled(m) and not _is_activation(mods[i + 1])):
                record(h.numpy(), isinstance(m, torch.nn.ReLU))
            if isinstance(m, EngineSave):
                saved = len(scales) - 1
            elif isinstance(mods[i + 1], EngineAdd):
                groups.append((saved, len(scales) - 1))
    for a, b in groups:
        scales[a] = scales[b] = max(scales[a], scales[b])
    n_layers += sum(isinstance(m, EngineAdd) for m in mods)
    if len(scales) != n_layers - 1:
        # A hidden layer without an activation would be missed above.
        raise ValueError("lowering expects an activation after every weight layer but the last")
    a = np.abs(h.numpy())
    spans = outputs or [{"start": 0, "stop": a.shape[1]}]
    out = []
    for sp in spans:
        stat = float(np.percentile(a[:, sp["start"]:sp["stop"]], OUTPUT_PERCENTILE))
        if not stat > 0:
            raise ValueError(f"output {sp['start']}..{sp['stop']} is all zero on the calibration set")
        out.append(stat / ACT_MAX)
    return scales, out


def _calibrate(vq_net: VQNetwork, calib_x: np.ndarray) -> list[float]:
    """Output scale of every layer of a coded network (:func:`calibrate` on its torch form)."""
    hidden, out = calibrate(to_torch(vq_net), calib_x, len(vq_net.layers))
    return hidden + out


def _activation(m: torch.nn.Module | None, rows: int, s_out: np.ndarray) -> dict:
    """The requantizer's activation fields of a weight layer followed by ``m``."""
    if isinstance(m, torch.nn.ReLU):
        return {"relu": True}
    if not isinstance(m, EngineActivation):
        return {"relu": False}
    p = m.params.numpy()[:rows].astype(np.float64)
    if m.kind == "leaky":
        act = np.clip(np.round(p * (1 << SLOPE_FRAC_BITS)), ACT_PARAM_MIN, ACT_PARAM_MAX)
        return {"relu": True, "act": act.astype(np.int64)}
    return {"relu": False, "floor": True, "act": np.clip(np.round(p / s_out), ACT_MIN, ACT_MAX).astype(np.int64)}


def lower_sequence(template: torch.nn.Sequential, coded: torch.nn.Sequential, codings: list[LayerCoding],
                   calib_x: np.ndarray, lanes: int, outputs: list[dict] | None = None) -> tuple[list, list[float]]:
    """Lower a network, any of the engine's layer kinds, to the engine's integers.

    Parameters
    ----------
    template : torch.nn.Sequential
        The network's structure: weight layers (``nn.Linear``; an engine
        convolution carries its ``window``), activations (``nn.ReLU``,
        ``EngineActivation``), pooling (``EngineMaxPool``, ``EngineAvgPool``) and, first, the
        host's input module (``EngineInput``).
    coded : torch.nn.Sequential
        The same modules computing with the coded weights (calibrated on ``calib_x``).
    codings : list of LayerCoding
        One per weight layer, in order.
    calib_x : numpy.ndarray
        Calibration inputs (real values; the input scale is :func:`input_scale_for` them).
    lanes : int
    outputs : list of dict, optional
        The source network's outputs as slices of the last layer's (one output scale each).

    Returns
    -------
    (list, list of float, list of float)
        The lowered layers (:class:`LoweredLayer`, :class:`LoweredPool`, :class:`LoweredAvgPool`,
        :class:`LoweredAdd`; the layer before an ``EngineSave`` has ``save`` set), the
        activation scales (input first, then each hidden weight layer's output),
        and the output scales (one per output).
    """
    s_in = input_scale = input_scale_for(calib_x)
    hidden, out_scales = calibrate(coded, calib_x, len(codings), outputs)
    spans = outputs or [{"start": 0, "stop": codings[-1].indices.shape[0]}]
    last = np.zeros(codings[-1].indices.shape[0])
    for sp, sc in zip(spans, out_scales):
        last[sp["start"]:sp["stop"]] = sc
    mods, coded_mods = list(template), list(coded)
    if not _is_weight_layer([m for m in mods if _is_scaled(m)][-1]):
        raise ValueError("lowering expects the network to end with a weight layer")
    # Each scaled module's output scale (a weight layer's per row), the last layer's per output.
    scaled = iter(hidden + [None])
    layers, k = [], 0
    for i, m in enumerate(mods):
        if isinstance(m, EngineAdd):
            s_out = next(scaled)
            mult, shift = quantize_multiplier(s_in / s_out)   # both operands are at s_in (one scale group)
            nxt = coded_mods[i + 1] if i + 1 < len(mods) else None
            layers.append(LoweredAdd(m.features, m.features, mult, shift, relu=isinstance(nxt, torch.nn.ReLU)))
            s_in = s_out
        elif isinstance(m, EngineSave):
            layers[-1].save = True
        elif _is_weight_layer(m):
            c, sc = codings[k], next(scaled)
            s_out = last if sc is None else np.full(c.indices.shape[0], sc)
            if c.codebook.shape[1] != lanes:
                raise ValueError(f"engine has {lanes} lanes but layer {k}'s codebook has dimension "
                                 f"{c.codebook.shape[1]}")
            acc = s_in * np.asarray(c.weight_scale, dtype=np.float64)
            bias = np.clip(np.round(np.asarray(c.bias, dtype=np.float64) / acc), INT32_MIN, INT32_MAX)
            mq = [quantize_multiplier(a / so) for a, so in zip(acc, s_out)]
            window = getattr(m, "window", None)
            nxt = coded_mods[i + 1] if i + 1 < len(mods) else None
            layers.append(LoweredLayer(
                in_features=m.in_features, out_features=m.out_features, codebook=c.codebook,
                indices=np.asarray(c.indices, dtype=np.int64), bias=bias.astype(np.int64),
                mult=np.array([q for q, _ in mq], dtype=np.int64), shift=np.array([q for _, q in mq], dtype=np.int64),
                kind="fc" if window is None else "conv", window=window, mode=c.mode, section_size=c.section_size,
                block_subvectors=c.block_subvectors,
                weights_count=getattr(m, "weights_count", None), **_activation(nxt, m.out_features, s_out)))
            s_in, k = s_out[0], k + 1
        elif isinstance(m, EngineAvgPool):      # pooling: the scale passes through
            layers.append(LoweredAvgPool.of(m.window, lanes))
        elif hasattr(m, "window"):
            ch = m.window.channels(lanes)
            layers.append(LoweredPool(m.window, m.window.taps() * ch, ch))
    return layers, [input_scale] + hidden, out_scales


def _vq_coding(layer: VQLayer) -> LayerCoding:
    """A k-means layer's codebook at one symmetric int8 scale (``max|codeword| -> 127``)."""
    s_w = float(np.abs(layer.codebook).max()) / ACT_MAX
    if not s_w > 0:
        raise ValueError("a layer's codebook is all zero")
    codebook = np.clip(np.round(layer.codebook / s_w), -ACT_MAX, ACT_MAX).astype(np.int8)
    return LayerCoding(codebook, layer.indices, np.full(layer.out_features, s_w), layer.bias)


def lower_vq(vq_net: VQNetwork, calib_x: np.ndarray, lanes: int) -> LoweredNetwork:
    """Quantize a VQ network to int8 codebooks, int32 biases and requantization parameters.

    Parameters
    ----------
    vq_net : VQNetwork
        ReLU after every weight layer but the last; with a ``template`` (a lowered
        network), its convolutions and pooling layers too.
    calib_x : numpy.ndarray, shape (n, inputs)
        Calibration inputs (pixels in [0, 1]).
    lanes : int
        Engine lanes; must equal the VQ sub-vector dimension.

    Returns
    -------
    LoweredNetwork
        ``info`` holds ``vq_net.info`` plus the calibration facts and scales.
    """
    if vq_net.method != "vq":
        raise ValueError(f"lower_vq lowers VQ networks, not {vq_net.method!r}")
    if lanes != vq_net.dim:
        raise ValueError(f"engine has {lanes} lanes but the codebooks have dimension {vq_net.dim}")
    coded = to_torch(vq_net)
    template = vq_net.template if vq_net.template is not None else coded
    layers, scales, out_scales = lower_sequence(template, coded, [_vq_coding(layer) for layer in vq_net.layers],
                                                calib_x, lanes, getattr(template, "outputs", None))
    info = dict(vq_net.info)
    info.update(calibration_images=int(len(calib_x)), hidden_percentile=HIDDEN_PERCENTILE,
                output_percentile=OUTPUT_PERCENTILE, activation_scales=scales + out_scales)
    return LoweredNetwork(name=vq_net.name, method=vq_net.method, lanes=lanes, input_scale=scales[0],
                          output_scale=out_scales[0], layers=layers, info=info, output_scales=out_scales)


def golden_forward(lowered: LoweredNetwork, x_int8: np.ndarray) -> np.ndarray:
    """Integer reference forward pass.

    Per layer: ``acc = wrap_acc(bias + W @ x)`` with ``W`` rebuilt from
    ``codebook[indices]``, then ``requantize(acc, mult, shift, relu, act, floor)``.

    Parameters
    ----------
    lowered : LoweredNetwork
    x_int8 : numpy.ndarray of int8, shape (n, in_features)

    Returns
    -------
    numpy.ndarray of int8, shape (n, out_features)
    """
    h = np.asarray(x_int8)
    if h.dtype != np.int8 or h.ndim != 2 or h.shape[1] != lowered.layers[0].in_features:
        raise ValueError(f"expected int8 input of shape (n, {lowered.layers[0].in_features}), "
                         f"got {h.dtype} {h.shape}")
    for layer in lowered.layers:
        acc = wrap_acc(exact_matmul(h, np.asarray(layer.weight(), dtype=np.int64), np.asarray(layer.bias)))
        h = requantize(acc, np.asarray(layer.mult)[None, :], np.asarray(layer.shift)[None, :], layer.relu,
                       layer_act(layer)[None, :], getattr(layer, "floor", False))
    return h


#: float64 holds every integer below this exactly.
FLOAT_EXACT = 1 << 53


def exact_matmul(x_int8: np.ndarray, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``bias + x @ w.T`` in exact integers, (n, out) int64.

    float64 (BLAS) when every partial sum is an integer below 2**53 (then the
    result is exact), int64 otherwise: the same numbers either way, fast for
    the whole test set.
    """
    bound = int(np.abs(bias).max(initial=0)) + (-ACT_MIN) * int(np.abs(w).sum(axis=1).max(initial=0))
    if bound < FLOAT_EXACT:
        acc = bias.astype(np.float64)[None, :] + x_int8.astype(np.float64) @ w.T.astype(np.float64)
        return acc.astype(np.int64)
    return bias.astype(np.int64)[None, :] + x_int8.astype(np.int64) @ w.T


def evaluate_lowered(lowered: LoweredNetwork, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of :func:`golden_forward` on real inputs ``x`` (quantized with ``input_scale``)."""
    out = golden_forward(lowered, quantize_act(x, lowered.input_scale))
    return float(np.mean(out.argmax(axis=1) == np.asarray(y)))


def lower_network(name: str = "lenet300", lanes: int = DEFAULT_DIM, k: int = DEFAULT_K, seed: int = 0, *,
                  finetune_epochs: int = FINETUNE_EPOCHS, calibration_images: int = CALIBRATION_IMAGES,
                  cache_dir=None, progress: bool = True) -> LoweredNetwork:
    """The whole model-side pipeline: trained float network -> VQ -> int8, with measured accuracies.

    Calibration uses the first ``calibration_images`` training images; all
    accuracies are on the 10 000 Fashion-MNIST test images.

    Parameters
    ----------
    name : str
        A network trained here (:func:`model.nets.registry.trained_networks`).
    lanes : int
        Engine lanes = sub-vector dimension.
    k : int
        Codebook size per layer.
    seed : int
        Training and k-means seed.
    finetune_epochs : int
        Trained-quantization epochs (see :func:`model.compress.kmeans.network.vq_compress`).
    calibration_images : int
    cache_dir : path, optional
        Float network cache (see :func:`model.nets.networks.get_network`).
    progress : bool

    Returns
    -------
    LoweredNetwork
        ``info`` has ``float_accuracy``, ``vq_float_accuracy`` and ``int8_accuracy``.
    """
    model = get_network(name, cache_dir=cache_dir, progress=progress, seed=seed)
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    vq_net = vq_compress(model, dim=lanes, k=k, seed=seed, name=name,
                         finetune_epochs=finetune_epochs,
                         train_data=train, eval_data=test, progress=progress)
    t0 = time.perf_counter()
    lowered = lower_vq(vq_net, train[0][:calibration_images], lanes)
    lowered.info["lowering_seconds"] = time.perf_counter() - t0
    lowered.info["network_seed"] = seed
    lowered.info["int8_accuracy"] = evaluate_lowered(lowered, *test)
    return lowered


def codebook_depth_for(size: int) -> int:
    """Smallest power of two (>= 2) that holds ``size`` codewords: the engine's index width."""
    return max(2, 1 << (size - 1).bit_length())
