"""Torch layers in the engine's own data layout: what a network becomes when it is lowered.

The engine keeps an activation map as HWC int8 values with the channels padded
to ``vector_align(lanes)`` (:mod:`model.contract.layout`, "Layer kinds"), and
reads a convolution's row as taps in ``(ky, kx)`` order, each tap's padded
channels consecutive.  These modules compute in float on exactly that layout:

* :class:`EngineLinear` is an ``nn.Linear`` whose columns are the engine's
  input values (a flattened map's HWC order, padding channels included);
* :class:`EngineConv` is also an ``nn.Linear`` (so every compression method,
  which codes the rows of ``nn.Linear`` weights, codes it unchanged): its
  ``(out, taps * channels)`` weight is the engine's row, and its forward is
  the convolution;
* :class:`EngineMaxPool` and :class:`EngineAvgPool` pool a map;
* :class:`EngineActivation` is the requantizer's leaky-ReLU slope or floor
  (``nn.ReLU`` stands for plain ReLU);
* :class:`EngineSave` marks the vector a residual connection's skip takes
  (the layer before it saves its output, ``FLAG_SAVE``) and :class:`EngineAdd`
  adds it back (the engine's ``ADD``);
* :class:`EngineInput`, first, writes the engine's input from the raw inputs, as the host does.

Inputs and outputs are flat ``(n, values)``; padding channels of every map
are zero.  Each weight layer computes through its ``compute`` with any weight
and bias, which is how coded weights (k-means, the universal codebook) train
and calibrate on the same layout.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.contract.ints import round_up
from model.contract.layout import vector_align
from model.contract.window import Window

#: Index of an engine input value that is padding (the host writes zero there).
PAD = -1


class EngineInput(nn.Module):
    """What the host does when it writes the engine's input: raw inputs (n, ...) -> the engine's values.

    Parameters
    ----------
    index : numpy.ndarray of int64
        For each engine input value, the flattened raw input element it holds, or :data:`PAD` (zero).
    """

    def __init__(self, index):
        super().__init__()
        index = torch.as_tensor(np.asarray(index, dtype=np.int64))
        self.register_buffer("index", index.clamp(min=0), persistent=False)
        self.register_buffer("keep", (index != PAD).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)[:, self.index] * self.keep


class EngineLinear(nn.Linear):
    """A fully-connected layer on the engine's input values (``in_features`` of them, padding included).

    Members
    -------
    weights_count : int
        Real weights (the source layer's), not counting columns that only meet padding.
    """

    def __init__(self, in_features: int, out_features: int, weights_count: int):
        super().__init__(in_features, out_features)
        self.weights_count = weights_count

    def compute(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.compute(x, self.weight, self.bias)


def _to_nchw(x: torch.Tensor, h: int, w: int, c: int) -> torch.Tensor:
    return x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)


def _to_flat_hwc(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(n, C, H, W) -> (n, H*W*channels), channels zero-padded to ``channels``."""
    x = F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1]))
    return x.permute(0, 2, 3, 1).reshape(len(x), -1)


def _pads(win: Window) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that makes a floor-mode window give exactly the output size."""
    right = (win.out_width - 1) * win.stride_x + win.kernel_w - win.pad_left - win.in_width
    bottom = (win.out_height - 1) * win.stride_y + win.kernel_h - win.pad_top - win.in_height
    return win.pad_left, right, win.pad_top, bottom


def _windowed(x: torch.Tensor, win: Window, channels: int, fill: float) -> torch.Tensor:
    """The input map of ``x`` padded by the window's pads with ``fill`` (NCHW); negative pads crop."""
    return F.pad(_to_nchw(x, win.in_height, win.in_width, channels), _pads(win), value=fill)


class EngineConv(nn.Linear):
    """A 2-D convolution (1-D: height 1) whose weight is the engine's row, ``(out, taps * channels)``.

    Parameters
    ----------
    window : Window
        The geometry, as the descriptor records it.
    lanes : int
        Engine lanes (sets the channel padding).
    out_channels : int
    weights_count : int
        Real weights of the source convolution.

    Members
    -------
    window, lanes, weights_count
    in_channels_padded, out_channels_padded : int
        The input and output maps' channels, padded to ``vector_align(lanes)``.
    """

    def __init__(self, window: Window, lanes: int, out_channels: int, weights_count: int):
        channels = window.channels(lanes)
        super().__init__(window.taps() * channels, out_channels)
        self.window, self.lanes, self.weights_count = window, lanes, weights_count
        self.in_channels_padded = channels
        self.out_channels_padded = round_up(out_channels, vector_align(lanes))

    def compute(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        win = self.window
        kernel = weight.reshape(self.out_features, win.kernel_h, win.kernel_w, self.in_channels_padded)
        y = F.conv2d(_windowed(x, win, self.in_channels_padded, 0.0), kernel.permute(0, 3, 1, 2), bias,
                     stride=(win.stride_y, win.stride_x))
        return _to_flat_hwc(y, self.out_channels_padded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.compute(x, self.weight, self.bias)


class EnginePool(nn.Module):
    """A pooling layer of a map: its window and its (padded) channels, in and out.

    Parameters
    ----------
    window : Window
    lanes : int

    Members
    -------
    window, lanes, channels
    """

    def __init__(self, window: Window, lanes: int):
        super().__init__()
        self.window, self.lanes = window, lanes
        self.channels = window.channels(lanes)


class EngineMaxPool(EnginePool):
    """Max pooling of a map, windows partly outside it taking the maximum of what is inside."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = self.window
        y = F.max_pool2d(_windowed(x, win, self.channels, float("-inf")), (win.kernel_h, win.kernel_w),
                         stride=(win.stride_y, win.stride_x))
        return _to_flat_hwc(y, self.channels)


class EngineAvgPool(EnginePool):
    """Average pooling of a map: each window's sum over ``kernel_h * kernel_w``, taps outside the map zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = self.window
        y = F.avg_pool2d(_windowed(x, win, self.channels, 0.0), (win.kernel_h, win.kernel_w),
                         stride=(win.stride_y, win.stride_x))
        return _to_flat_hwc(y, self.channels)


#: Pooling layers (no weights; the scale passes through them).
POOLING = (EngineMaxPool, EngineAvgPool)

#: Layers that carry weights (coded by the compression methods).
WEIGHT_LAYERS = (EngineLinear, EngineConv)


class EngineActivation(nn.Module):
    """The requantizer's activation beyond ReLU, per output channel (repeated over a map's positions).

    Parameters
    ----------
    kind : {"leaky", "floor"}
        ``"leaky"``: negative values times the channel's slope (PReLU, LeakyReLU);
        ``"floor"``: ``max(value, floor)`` (a ReLU followed by batch norm, folded).
    params : array_like, shape (channels,)
        Slopes or floors of the real channels.
    period : int
        Values per position (a map's padded channels; an FC layer's outputs); padding channels get 0.
    """

    def __init__(self, kind: str, params, period: int):
        super().__init__()
        if kind not in ("leaky", "floor"):
            raise ValueError(f"unknown activation {kind!r}")
        self.kind, self.period = kind, period
        p = torch.zeros(period)
        p[:len(params)] = torch.as_tensor(params, dtype=torch.float32)
        self.register_buffer("params", p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.reshape(len(x), -1, self.period)
        y = torch.maximum(y, self.params) if self.kind == "floor" else torch.where(y < 0, y * self.params, y)
        return y.reshape(len(x), -1)


#: Modules the requantizer applies after a weight layer.
ACTIVATIONS = (nn.ReLU, EngineActivation)


class SkipBox:
    """Where a residual block's saved vector waits for its add, shared by an :class:`EngineSave` and the
    :class:`EngineAdd` that reads it.  Copies of the modules (a coded network built module by module from
    its template) keep sharing one box: one forward pass fills it before it reads it."""

    def __init__(self):
        self.value = None

    def __deepcopy__(self, memo):
        return self


class EngineSave(nn.Module):
    """The skip of a residual connection: the vector here (the layer before's output, activated) is saved.

    Parameters
    ----------
    box : SkipBox
        Shared with the block's :class:`EngineAdd`.
    """

    def __init__(self, box: SkipBox):
        super().__init__()
        self.box = box

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.box.value = x
        return x


class EngineAdd(nn.Module):
    """The residual connection's add (the engine's ``ADD``): the input plus the saved vector.

    Parameters
    ----------
    box : SkipBox
        Shared with the block's :class:`EngineSave`.
    features : int
        Values of both operands.
    """

    def __init__(self, box: SkipBox, features: int):
        super().__init__()
        self.box = box
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.box.value
