"""Lowering a torch network onto the engine's layer kinds, from its ``torch.fx`` graph.

:func:`lower_graph` traces a network (``torch.fx.symbolic_trace``), propagates
shapes through it on an example input, and walks its nodes once, turning each
into the engine's layout (:mod:`model.nets.graph.modules`):

* ``Conv1d`` / ``Conv2d`` become :class:`EngineConv` (1-D: height 1), their
  weights reordered to the engine's rows (taps, then padded channels); a first
  layer whose kernel is too wide for its field goes space to depth;
* ``Linear`` becomes :class:`EngineLinear`, its columns permuted to the engine's
  order of its input (a flattened map is HWC, the network's flatten is CHW; any
  reshape or permute in between is followed exactly); parallel Linear heads on
  one input become one layer;
* ``MaxPool1d`` / ``MaxPool2d`` become :class:`EngineMaxPool`; ``AvgPool1d`` /
  ``AvgPool2d`` (floor mode, padding counted as zeros) and ``AdaptiveAvgPool1d`` /
  ``AdaptiveAvgPool2d`` whose output divides the input (global average pooling
  included) become :class:`EngineAvgPool`;
* ``ReLU``, ``PReLU`` and ``LeakyReLU`` after a weight layer are the requantizer's activation;
* ``BatchNorm`` directly after a weight layer is folded into its weights and
  bias, and after its ReLU into them and a floor activation;
* ``F.pad`` with zeros before a convolution joins its padding;
* reshapes, views, permutes, flatten, ``Dropout`` and ``Identity`` move no data;
* a final ``sigmoid``, ``softmax`` or ``log_softmax`` is left to the host
  (recorded with the output: none of them changes the arg-max);
* ``y = f(x) + x`` (``operator.add``, ``torch.add``, ``Tensor.add``; a
  residual connection) where ``x`` is a vector an engine layer wrote and
  ``f`` a chain of engine layers with ``x``'s shape becomes the engine's
  ``ADD`` (:class:`EngineAdd`), the layer writing ``x`` saving it
  (:class:`EngineSave`); a ReLU after the add is its activation.  Blocks may
  follow one another but not overlap: the skip is the newest vector saved.

Every step of the walk is a handler in :data:`MODULE_HANDLERS` or
:data:`FUNCTION_HANDLERS`, looked up by the node's module type or function, so
a new operator is a new handler.  Before the first weight layer only data
movement is allowed: it, and any padding of the first layer's input, is what
the host does when it writes the engine's input (:attr:`EngineNet.input_index`).
Anything else is refused with one line naming the operator, its node and what
is supported, as is a branch other than a residual block: the engine runs one
chain of layers.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from model.contract.errors import VqeError
from model.contract.ints import round_up
from model.contract.layout import vector_align
from model.contract.window import KERNEL_BITS, PAD_BITS, STRIDE_BITS, Window
from model.nets.graph.modules import (PAD, WEIGHT_LAYERS, EngineActivation, EngineAdd, EngineAvgPool, EngineConv,
                                      EngineInput, EngineLinear, EngineMaxPool, EngineSave, SkipBox)


class GraphError(VqeError, ValueError):
    """A network the engine cannot run: the first operator it cannot lower."""


@dataclass
class _Value:
    """A tensor of the traced graph, as the engine holds it.

    ``pos`` has the tensor's shape without the batch dimension and gives each
    element's index in the engine's vector of ``size`` values (``stage="engine"``),
    or in the network's raw input (``stage="input"``, before the first layer).
    ``map`` is ``(channels, height, width)`` while ``pos`` is the engine's HWC
    layout of that map; ``pad`` a pending zero pad ``(left, right, top, bottom)``;
    ``fresh`` that a weight layer produced it and nothing has touched it since,
    ``relued`` that a ReLU right after the weight layer did; ``gen`` counts the
    data-moving layers before it (the engine holds one vector: the newest).
    """
    pos: np.ndarray
    size: int
    stage: str
    map: tuple[int, int, int] | None = None
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    fresh: bool = False
    activation: str | None = None
    relued: bool = False
    gen: int = 0


class EngineNet(nn.Sequential):
    """A network in the engine's layout: :class:`EngineInput`, then engine layers and ``nn.ReLU``.

    It takes the source network's raw inputs (module 0 writes the engine's
    input values from them, as the host does).

    Members
    -------
    lanes : int
    input_shape : tuple of int
        The source network's input, without the batch dimension.
    outputs : list of dict
        The source network's outputs, in its order: each ``{"start", "stop", "activation"}``, a slice of
        the engine's output vector and what the host applies to it (None, ``"sigmoid"``,
        ``"softmax"``, ``"log_softmax"``).  Parallel heads (Linear layers on the same input) are one
        engine layer whose rows are the heads' rows one after the other.
    source : list of str
        One line per lowered operator.
    """

    def __init__(self, layers, lanes: int, input_shape, outputs, source=()):
        super().__init__(*layers)
        self.lanes = lanes
        self.input_shape = tuple(input_shape)
        self.outputs = list(outputs)
        self.source = list(source)

    def source_outputs(self, y: torch.Tensor):
        """The engine's outputs ``y`` as the source network gives them (its heads, activations applied)."""
        return split_outputs(y, self.outputs)

    @property
    def input_index(self) -> np.ndarray:
        """For each engine input value, the flattened raw input element it holds, or :data:`PAD`."""
        inp = self[0]
        return np.where(inp.keep.numpy() > 0, inp.index.numpy(), PAD)

    def linear_chain(self) -> nn.Sequential | None:
        """The network as a plain ``nn.Linear`` / ``nn.ReLU`` chain on the raw inputs, when that is all
        it is (no convolution or pooling, the input written as it is); else None."""
        index = self.input_index
        if not np.array_equal(index, np.arange(len(index))):
            return None
        mods = []
        for m in list(self)[1:]:
            if type(m) is nn.ReLU:
                mods.append(nn.ReLU())
            elif type(m) is EngineLinear:
                lin = nn.Linear(m.in_features, m.out_features)
                lin.load_state_dict(m.state_dict())
                mods.append(lin)
            else:
                return None
        return nn.Sequential(*mods).eval()

    def relu_flags(self) -> list[bool]:
        """For each weight layer, whether a ReLU follows it."""
        mods = list(self)
        return [i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU)
                for i, m in enumerate(mods) if isinstance(m, WEIGHT_LAYERS)]


def split_outputs(y, outputs: list[dict]):
    """Engine outputs ``y`` (n, values; a tensor or an array) as the source network's outputs: one per
    entry of ``outputs``, its activation applied (a tuple when there are several)."""
    y = torch.as_tensor(y, dtype=torch.float32)
    parts = []
    for o in outputs:
        part = y[:, o["start"]:o["stop"]]
        act = o.get("activation")
        if act is not None:
            part = {"sigmoid": torch.sigmoid, "softmax": lambda t: torch.softmax(t, dim=1),
                    "log_softmax": lambda t: torch.log_softmax(t, dim=1)}[act](part)
        parts.append(part)
    return parts[0] if len(parts) == 1 else tuple(parts)


@dataclass
class _Walk:
    """The state of one lowering: the layers so far and each node's value."""
    lanes: int
    layers: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    input_index: np.ndarray | None = None
    source: list = field(default_factory=list)
    gen: int = 0                        # data-moving layers so far
    head: tuple | None = None           # (input value, layer) of the newest Linear, for parallel heads
    batch: int = 1                      # the batch reshapes are replayed at (an exported graph's is fixed)
    read_at: dict = field(default_factory=dict)   # each vector (gen): the index in layers of its first reader
    block_gen: int = 0                  # the newest residual add's output: a later skip may not be older

    def consume(self, v: _Value, node: fx.Node, m: nn.Module | None) -> None:
        """Refuse a layer on anything but the engine's newest vector (the engine runs one chain)."""
        if v.activation is not None:
            raise GraphError(f"{describe(node, m)}: it reads the output of a {v.activation}, which the host "
                             "applies after the engine's last layer only")
        if v.stage == "engine" and v.gen != self.gen:
            raise GraphError(f"{describe(node, m)}: it reads an earlier layer's output; the engine runs one chain "
                             "of layers (parallel Linear heads at the end and residual adds excepted)")
        self.read_at.setdefault(v.gen, len(self.layers))

    def produced(self, v: _Value) -> _Value:
        self.gen += 1
        return replace(v, gen=self.gen)

    @property
    def align(self) -> int:
        return vector_align(self.lanes)

    def arg(self, node: fx.Node, i: int = 0) -> _Value:
        v = self.values.get(node.args[i]) if isinstance(node.args[i], fx.Node) else None
        if not isinstance(v, _Value):
            raise GraphError(f"{describe(node)}: its input is not a tensor the engine holds")
        return v


def describe(node: fx.Node, module: nn.Module | None = None) -> str:
    """``operator NAME (node 'n', module 'm')`` for error messages."""
    what = type(module).__name__ if module is not None else getattr(node.target, "__name__", str(node.target))
    where = f"node {node.name!r}" + (f", module {node.target!r}" if node.op == "call_module"
                                     and node.target != node.name else "")
    return f"operator {what} ({where})"


def _out_shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta["tensor_meta"]
    # An operator with several outputs (pooling with its indices): the first is the one lowered.
    return tuple((meta if hasattr(meta, "shape") else meta[0]).shape)[1:]


# --- the engine's map layout ------------------------------------------------------------------


def hwc_positions(c: int, h: int, w: int, channels: int) -> np.ndarray:
    """Index of element ``[c, y, x]`` of a (C, H, W) map in its HWC storage of ``channels`` padded channels."""
    cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return (yy * w + xx) * channels + cc


def hwc_index(raw: np.ndarray, channels: int) -> np.ndarray:
    """The engine input of a (C, H, W) map whose element ``[c, y, x]`` is raw input ``raw[c, y, x]``."""
    c, h, w = raw.shape
    index = np.full(h * w * channels, PAD, dtype=np.int64)
    index[hwc_positions(c, h, w, channels).reshape(-1)] = raw.reshape(-1)
    return index


def _map_value(c: int, h: int, w: int, channels: int, one_d: bool) -> _Value:
    pos = hwc_positions(c, h, w, channels)
    return _Value(pos[:, 0, :] if one_d else pos, h * w * channels, "engine", (c, h, w), fresh=True)


def _map_input(walk: _Walk, v: _Value, node: fx.Node, one_d: bool, pad: tuple[int, int, int, int],
               phases: int = 1):
    """The (C, H, W, padded C) map a windowed layer reads, and the pads left to its window.

    Before the first layer the host writes the map: unpadded when the window's pad
    fields hold the pads, else with its padding (so a pad of any size is free), and
    with ``phases > 1`` space-to-depth along the width (``phases`` columns side by
    side become channels: channel ``r * C + c`` holds column ``x * phases + r``).
    Later the value must be the previous layer's map.
    """
    shape = v.pos.shape
    if len(shape) != (2 if one_d else 3):
        raise GraphError(f"{describe(node)}: expected a {'(C, L)' if one_d else '(C, H, W)'} input, got {shape}")
    c, h, w = (shape[0], 1, shape[1]) if one_d else shape
    pl, pr, pt, pb = (a + b for a, b in zip(pad, v.pad))
    raw = v.pos[:, None, :] if one_d else v.pos
    if v.stage == "input":
        if max(pl, pt) < 1 << PAD_BITS and phases == 1:
            # The window's pads read nothing; only the map itself crosses from DRAM.
            channels = round_up(c, walk.align)
            walk.input_index = hwc_index(raw, channels)
            walk.source.append(f"input: host writes {c}x{h}x{w} as HWC {h}x{w}x{channels}")
            return (c, h, w, channels), (pl, pt)
        hp, wp = h + pt + pb, round_up(w + pl + pr, phases)
        padded = np.full((c, hp, wp), PAD, dtype=np.int64)
        padded[:, pt:pt + h, pl:pl + w] = raw
        # Space to depth: (c, y, x * phases + r) -> (r * c + c, y, x).
        mapped = padded.reshape(c, hp, wp // phases, phases).transpose(3, 0, 1, 2).reshape(c * phases, hp, -1)
        channels = round_up(c * phases, walk.align)
        walk.input_index = hwc_index(mapped, channels)
        walk.source.append(f"input: host writes {c}x{h}x{w} as HWC {hp}x{wp // phases}x{channels}"
                           + (f" (padding {pl},{pr},{pt},{pb} included)" if any((pl, pr, pt, pb)) else "")
                           + (f" (space to depth: {phases} columns per position)" if phases > 1 else ""))
        return (c * phases, hp, wp // phases, channels), (0, 0)
    channels = round_up(c, walk.align)
    expect = hwc_positions(c, h, w, channels)
    if v.map != (c, h, w) or not np.array_equal(v.pos, expect[:, 0, :] if one_d else expect):
        raise GraphError(f"{describe(node)}: its input was reshaped or permuted after the previous layer; "
                         "the engine's windows read the previous layer's map as it is")
    return (c, h, w, channels), (pl, pt)


def _window(node: fx.Node, walk: _Walk, geometry, pads, kernel, stride) -> Window:
    c, h, w, channels = geometry
    out = _out_shape(node)
    oh, ow = (1, out[-1]) if len(out) == 2 else out[1:]
    win = Window(channels // walk.align, w, h, ow, oh, kernel[1], kernel[0], stride[1], stride[0], pads[0], pads[1])
    for name, value, bits in (("kernel", max(kernel), KERNEL_BITS), ("stride", max(stride), STRIDE_BITS),
                              ("padding", max(pads), PAD_BITS)):
        if value >= 1 << bits:
            raise GraphError(f"{describe(node)}: {name} {value} does not fit the window's {bits}-bit field "
                             f"(at most {(1 << bits) - 1})")
    return win


def _pair(v, one_d: bool, height: int = 1) -> tuple[int, int]:
    """(height, width) of a kernel, stride or padding argument; a 1-D layer's height is ``height``."""
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    return (height, v[0]) if one_d else (v[0], v[-1])


# --- handlers ---------------------------------------------------------------------------------

Handler = Callable[[_Walk, fx.Node, nn.Module | None], _Value | object]


def _conv(walk: _Walk, node: fx.Node, m: nn.Module) -> _Value:
    one_d = isinstance(m, nn.Conv1d)
    if m.groups != 1 or any(d != 1 for d in m.dilation) or m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise GraphError(f"{describe(node, m)}: only groups=1, dilation 1 and numeric zero padding run on the engine")
    v = walk.arg(node)
    walk.consume(v, node, m)
    ph, pw = _pair(m.padding, one_d, 0)
    (kh, kw), (sy, sx) = _pair(m.kernel_size, one_d), _pair(m.stride, one_d)
    weight = m.weight.detach().float().reshape(m.out_channels, -1, kh, kw)
    phases = 1
    if v.stage == "input" and kw >= 1 << KERNEL_BITS and sx > 1 and kw % sx == 0:
        # A first layer too wide for the kernel field: the host writes its input space to depth,
        # which turns kernel kw at stride sx into kernel kw / sx at stride 1 over sx times the channels.
        phases, c = sx, weight.shape[1]
        weight = weight.reshape(m.out_channels, c, kh, kw // sx, sx).permute(0, 4, 1, 2, 3)
        weight = weight.reshape(m.out_channels, sx * c, kh, kw // sx)
        kw, sx = kw // sx, 1
    geometry, pads = _map_input(walk, v, node, one_d, (pw, pw, ph, ph), phases)
    win = _window(node, walk, geometry, pads, (kh, kw), (sy, sx))
    layer = EngineConv(win, walk.lanes, m.out_channels, weights_count=m.weight.numel())
    c, channels = geometry[0], geometry[3]
    w = weight.permute(0, 2, 3, 1)
    with torch.no_grad():
        layer.weight.copy_(F.pad(w, (0, channels - c)).reshape(m.out_channels, -1))
        layer.bias.copy_(m.bias.detach() if m.bias is not None else torch.zeros(m.out_channels))
    walk.layers.append(layer)
    walk.source.append(f"{node.name}: {type(m).__name__} {m.in_channels}->{m.out_channels}, "
                       f"kernel {'x'.join(map(str, _pair(m.kernel_size, one_d)))} -> conv")
    return walk.produced(_map_value(m.out_channels, win.out_height, win.out_width, layer.out_channels_padded, one_d))


def _linear(walk: _Walk, node: fx.Node, m: nn.Module) -> _Value:
    v = walk.arg(node)
    cols = v.pos.reshape(-1)
    if v.pos.ndim != 1 or len(cols) != m.in_features:
        raise GraphError(f"{describe(node, m)}: the engine runs Linear on a flat vector, got shape {v.pos.shape}")
    if walk.head is not None and walk.head[0] is v and walk.layers[-1] is walk.head[1]:
        return _parallel_head(walk, node, m)
    walk.consume(v, node, m)
    if v.stage == "input":
        walk.input_index = cols.copy()
        walk.source.append(f"input: host writes {len(cols)} values")
        cols, size = np.arange(len(cols)), len(cols)
    else:
        size = v.size
    layer = EngineLinear(size, m.out_features, weights_count=m.weight.numel())
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, torch.from_numpy(cols)] = m.weight.detach().float()
        layer.bias.copy_(m.bias.detach() if m.bias is not None else torch.zeros(m.out_features))
    walk.layers.append(layer)
    walk.head = (v, layer)
    walk.source.append(f"{node.name}: Linear {m.in_features}->{m.out_features} -> fc")
    return walk.produced(_Value(np.arange(m.out_features), m.out_features, "engine", fresh=True))


def _parallel_head(walk: _Walk, node: fx.Node, m: nn.Module) -> _Value:
    """A Linear on the same input as the newest one, with nothing after that one: its rows join it."""
    v, old = walk.head
    layer = EngineLinear(old.in_features, old.out_features + m.out_features,
                         weights_count=old.weights_count + m.weight.numel())
    cols = torch.from_numpy(np.arange(len(v.pos)) if v.stage == "input" else v.pos.reshape(-1))
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:old.out_features] = old.weight
        layer.weight[old.out_features:, cols] = m.weight.detach().float()
        layer.bias.copy_(torch.cat([old.bias.detach(), m.bias.detach() if m.bias is not None
                                    else torch.zeros(m.out_features)]))
    walk.layers[-1] = layer
    walk.head = (v, layer)
    walk.source.append(f"{node.name}: Linear {m.in_features}->{m.out_features}, a parallel head -> rows "
                       f"{old.out_features}..{layer.out_features - 1} of the fc above")
    start = old.out_features
    return _Value(np.arange(start, layer.out_features), layer.out_features, "engine", fresh=False, gen=walk.gen)


def _maxpool(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    if m is not None:
        one_d = isinstance(m, nn.MaxPool1d)
        kernel, stride, padding, dilation = m.kernel_size, m.stride, m.padding, m.dilation
    else:
        one_d = node.target is F.max_pool1d
        kw = dict(zip(("input", "kernel_size", "stride", "padding", "dilation"), node.args), **node.kwargs)
        kernel = kw["kernel_size"]
        stride, padding, dilation = kw.get("stride") or kernel, kw.get("padding", 0), kw.get("dilation", 1)
    if any(d != 1 for d in _pair(dilation, one_d)):
        raise GraphError(f"{describe(node, m)}: only dilation 1 runs on the engine")
    return _pool(walk, node, m, EngineMaxPool, "max", one_d, _pair(kernel, one_d), _pair(stride, one_d),
                 _pair(padding, one_d, 0))


def _pool(walk: _Walk, node: fx.Node, m: nn.Module | None, module: type, what: str, one_d: bool,
          kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> _Value:
    """A pooling layer (``module``) of ``kernel``, ``stride`` and ``padding`` (each (height, width))."""
    ph, pw = padding
    v = walk.arg(node)
    if v.stage == "input":
        raise GraphError(f"{describe(node, m)}: a network must start with a convolution or a Linear layer")
    walk.consume(v, node, m)
    geometry, pads = _map_input(walk, v, node, one_d, (pw, pw, ph, ph))
    win = _window(node, walk, geometry, pads, kernel, stride)
    layer = module(win, walk.lanes)
    walk.layers.append(layer)
    walk.source.append(f"{node.name}: {what} pool {win.kernel_h}x{win.kernel_w} stride {win.stride_y},{win.stride_x}"
                       f" -> {what}pool")
    out = _map_value(geometry[0], win.out_height, win.out_width, geometry[3], one_d)
    return walk.produced(replace(out, fresh=False))


#: What the engine's average pooling is, for refusals.
AVGPOOL_SUPPORTED = ("the engine averages over the whole kernel with padding as zeros: ceil_mode=False "
                     "(or True where it changes nothing), count_include_pad=True (or no padding), "
                     "no divisor_override")


def _avgpool(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    """AvgPool1d/2d and F.avg_pool1d/2d: floor mode, padding counted as zeros, the divisor the whole kernel."""
    if m is not None:
        one_d = isinstance(m, nn.AvgPool1d)
        kw = {name: getattr(m, name, None) for name in ("kernel_size", "stride", "padding", "ceil_mode",
                                                        "count_include_pad", "divisor_override")}
    else:
        one_d = node.target is F.avg_pool1d
        kw = dict(zip(("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                       "divisor_override"), node.args), **node.kwargs)
    kernel = _pair(kw["kernel_size"], one_d)
    stride = _pair(kw.get("stride") or kw["kernel_size"], one_d)
    padding = _pair(kw.get("padding") or 0, one_d, 0)
    ceil_mode = bool(kw.get("ceil_mode"))
    include_pad = kw.get("count_include_pad", True) is not False
    divisor = kw.get("divisor_override")
    in_shape = tuple(node.args[0].meta["tensor_meta"].shape)[2:] if isinstance(node.args[0], fx.Node) else ()
    sides = ((1,) if one_d else ()) + in_shape
    floor_out = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(sides, padding, kernel, stride))
    out = _out_shape(node)
    out_sides = (1, out[-1]) if len(out) == 2 else tuple(out[1:])
    bad = [what for what, refused in (
        ("ceil_mode=True", ceil_mode and out_sides != floor_out),
        ("count_include_pad=False", not include_pad and any(padding)),
        (f"divisor_override={divisor}", divisor is not None and divisor != kernel[0] * kernel[1])) if refused]
    if bad:
        raise GraphError(f"{describe(node, m)}: {bad[0]} does not run on the engine; {AVGPOOL_SUPPORTED}")
    return _pool(walk, node, m, EngineAvgPool, "avg", one_d, kernel, stride, padding)


def _adaptive_avgpool(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    """AdaptiveAvgPool1d/2d and F.adaptive_avg_pool1d/2d whose output divides the input: an average pool of
    kernel and stride input / output (global average pooling: one window over the whole map)."""
    one_d = isinstance(m, nn.AdaptiveAvgPool1d) if m is not None else node.target is F.adaptive_avg_pool1d
    if not isinstance(node.args[0], fx.Node):
        raise GraphError(f"{describe(node, m)}: its input is not a tensor the engine holds")
    in_shape = tuple(node.args[0].meta["tensor_meta"].shape)[2:]
    sides = ((1,) if one_d else ()) + in_shape
    out = _out_shape(node)
    out_sides = (1, out[-1]) if len(out) == 2 else tuple(out[1:])
    if any(o == 0 or n % o for n, o in zip(sides, out_sides)):
        raise GraphError(f"{describe(node, m)}: output {'x'.join(map(str, out_sides))} does not divide the input "
                         f"{'x'.join(map(str, sides))}; the engine runs adaptive average pooling only as an "
                         "average pool of whole windows")
    kernel = tuple(n // o for n, o in zip(sides, out_sides))
    # A side with one output position has one window: any stride will do, and 1 fits its field.
    stride = tuple(k if o > 1 else 1 for k, o in zip(kernel, out_sides))
    return _pool(walk, node, m, EngineAvgPool, "avg", one_d, kernel, stride, (0, 0))


def _activation_period(layer: nn.Module) -> int:
    """Values per position of a weight layer's output (a map's padded channels)."""
    return layer.out_channels_padded if isinstance(layer, EngineConv) else layer.out_features


def _after_layer(walk: _Walk, node: fx.Node, m: nn.Module | None, what: str) -> _Value:
    v = walk.arg(node)
    if not v.fresh:
        raise GraphError(f"{describe(node, m)}: the engine applies {what} in a weight layer's requantizer; "
                         "this one does not follow a convolution or Linear layer directly")
    if isinstance(walk.layers[-1], EngineAdd) and what != "ReLU":
        raise GraphError(f"{describe(node, m)}: after a residual add the engine applies a ReLU only")
    return v


def _relu(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    v = _after_layer(walk, node, m, "ReLU")
    walk.layers.append(nn.ReLU())
    return replace(v, fresh=False, relued=True)


def _leaky(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    """PReLU (a slope per channel, or one for all) and LeakyReLU: the requantizer's negative slope."""
    v = _after_layer(walk, node, m, "a leaky ReLU")
    channels = walk.layers[-1].out_features
    if isinstance(m, nn.PReLU):
        slope = m.weight.detach().float().reshape(-1)
        if len(slope) not in (1, channels):
            raise GraphError(f"{describe(node, m)}: {len(slope)} slopes for {channels} channels")
    elif isinstance(m, nn.LeakyReLU):
        slope = torch.tensor([m.negative_slope])
    else:
        kw = dict(zip(("input", "negative_slope"), node.args), **node.kwargs)
        slope = torch.tensor([float(kw.get("negative_slope", 0.01))])
    walk.layers.append(EngineActivation("leaky", slope.expand(channels).clone(), _activation_period(walk.layers[-1])))
    return replace(v, fresh=False)


def _batchnorm(walk: _Walk, node: fx.Node, m: nn.Module) -> _Value:
    """Batch norm folded: into the weight layer right before it, or, after its ReLU, into that layer
    and a floor activation (``relu(z) * a + b = max(a z + b, b)`` for ``a > 0``)."""
    v = walk.arg(node)
    scale = m.weight.detach() / torch.sqrt(m.running_var + m.eps) if m.affine else 1 / torch.sqrt(m.running_var + m.eps)
    shift = (m.bias.detach() if m.affine else torch.zeros_like(scale)) - m.running_mean * scale
    if any(isinstance(layer, EngineAdd) for layer in walk.layers[-2:]):
        raise GraphError(f"{describe(node, m)}: batch norm after a residual add does not fold into a layer")
    if v.fresh:
        layer = walk.layers[-1]
    elif v.relued and bool(torch.all(scale > 0)):
        layer = walk.layers[-2]
        walk.layers[-1] = EngineActivation("floor", shift, _activation_period(layer))
    else:
        raise GraphError(f"{describe(node, m)}: batch norm folds into the layer right before it, or after its "
                         "ReLU when every channel's scale is positive; this one follows something else")
    with torch.no_grad():
        layer.weight.mul_(scale[:, None])
        layer.bias.copy_(layer.bias * scale + shift)
    walk.source.append(f"{node.name}: {type(m).__name__} folded into the layer before it"
                       + ("" if v.fresh else " (after its ReLU: a floor activation)"))
    return replace(v, relued=False)


def _pad(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    v = walk.arg(node)
    kw = dict(zip(("input", "pad", "mode", "value"), node.args), **node.kwargs)
    pad = tuple(kw["pad"])
    if kw.get("mode", "constant") != "constant" or (kw.get("value") or 0) != 0 or len(pad) not in (2, 4):
        raise GraphError(f"{describe(node, m)}: only zero padding of the last one or two dimensions runs on the engine")
    return replace(v, pad=pad + (0, 0) if len(pad) == 2 else pad)


def _identity(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    return walk.arg(node)


#: What a residual add needs, for its refusals.
RESIDUAL_RULE = ("the engine adds a vector an engine layer wrote (the skip) to the output of a chain of engine "
                 "layers that starts from it and has its shape (y = f(x) + x), blocks one after another")


def residual_add(walk: _Walk, node: fx.Node, m: nn.Module | None, a, b, alpha=1) -> _Value:
    """``a + alpha * b`` of two engine vectors: a residual connection's ``ADD`` (see the module docstring)."""
    if not (isinstance(a, _Value) and isinstance(b, _Value)):
        raise GraphError(f"{describe(node, m)}: its operands are not both tensors the engine holds; {RESIDUAL_RULE}")
    if alpha != 1:
        raise GraphError(f"{describe(node, m)}: an add with alpha={alpha}; {RESIDUAL_RULE}")
    branch, skip = (a, b) if a.gen >= b.gen else (b, a)
    if skip.stage != "engine":
        raise GraphError(f"{describe(node, m)}: a residual connection whose skip is the network's input, which no "
                         f"engine layer writes; {RESIDUAL_RULE}")
    if branch.stage != "engine" or branch.gen != walk.gen or branch.gen == skip.gen:
        raise GraphError(f"{describe(node, m)}: neither operand is the output of the newest engine layer "
                         f"(both come from branches, or the branch has no layer); {RESIDUAL_RULE}")
    if skip.gen < walk.block_gen or skip.gen not in walk.read_at:
        raise GraphError(f"{describe(node, m)}: its skip is not the vector saved most recently (residual blocks "
                         f"overlap); {RESIDUAL_RULE}")
    if skip.activation or branch.activation or branch.pad != (0, 0, 0, 0) or skip.pad != (0, 0, 0, 0) \
            or skip.pos.shape != branch.pos.shape or not np.array_equal(skip.pos, branch.pos) \
            or skip.size != branch.size:
        raise GraphError(f"{describe(node, m)}: its operands are not laid out alike (shape {tuple(skip.pos.shape)} "
                         f"and {tuple(branch.pos.shape)}); {RESIDUAL_RULE}")
    at = walk.read_at[skip.gen]
    if any(isinstance(layer, EngineSave) for layer in walk.layers[at:]):
        raise GraphError(f"{describe(node, m)}: another skip is saved inside its branch (residual blocks "
                         f"overlap); {RESIDUAL_RULE}")
    box = SkipBox()
    walk.layers.insert(at, EngineSave(box))
    walk.layers.append(EngineAdd(box, branch.size))
    walk.head = None
    walk.source.append(f"{node.name}: residual add of {branch.size} values -> add (the skip saved before layer "
                       f"{at})")
    out = walk.produced(replace(branch, fresh=True, relued=False))
    walk.block_gen = out.gen
    return out


def _residual(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
    """``operator.add``, ``torch.add``, ``Tensor.add``: a residual connection's add."""
    a, b = (walk.values.get(x) if isinstance(x, fx.Node) else x for x in node.args[:2])
    return residual_add(walk, node, m, a, b, node.kwargs.get("alpha", 1))


def _output_activation(name: str) -> Handler:
    def handler(walk: _Walk, node: fx.Node, m: nn.Module | None) -> _Value:
        v = walk.arg(node)
        return replace(v, activation=name, fresh=False)
    # The partition (model.nets.graph.partition) leaves these to the host wherever they are.
    handler.host_activation = name
    return handler


def _move(walk: _Walk, node: fx.Node, m: nn.Module | None):
    """A reshape, view, permute or flatten: replayed on the positions (batch 1), no data moves."""
    def subst(a):
        if isinstance(a, fx.Node):
            v = walk.values.get(a)
            return torch.from_numpy(np.broadcast_to(v.pos, (walk.batch, *v.pos.shape)).copy()) \
                if isinstance(v, _Value) else v
        if isinstance(a, (tuple, list)):
            return type(a)(subst(b) for b in a)
        return a
    args, kwargs = subst(node.args), {k: subst(a) for k, a in node.kwargs.items()}
    if m is not None:
        out = m(*args, **kwargs)
    elif node.op == "call_method":
        out = getattr(args[0], node.target)(*args[1:], **kwargs)
    else:
        out = node.target(*args, **kwargs)
    v = walk.values.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
    if isinstance(out, torch.Tensor) and isinstance(v, _Value):
        if out.dim() == 0 or out.shape[0] != walk.batch:
            raise GraphError(f"{describe(node, m)}: it moves data across the batch dimension")
        pos = out[0].numpy().copy()
        same = pos.shape == v.pos.shape and np.array_equal(pos, v.pos)
        return replace(v, pos=pos, map=v.map if same else None, fresh=v.fresh and same)
    return out      # a shape, a size: plain Python values


#: Handlers by module type.
MODULE_HANDLERS: dict[type, Handler] = {
    nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Linear: _linear,
    nn.MaxPool1d: _maxpool, nn.MaxPool2d: _maxpool, nn.AvgPool1d: _avgpool, nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool1d: _adaptive_avgpool, nn.AdaptiveAvgPool2d: _adaptive_avgpool,
    nn.ReLU: _relu, nn.PReLU: _leaky, nn.LeakyReLU: _leaky, nn.BatchNorm1d: _batchnorm, nn.BatchNorm2d: _batchnorm,
    nn.Flatten: _move, nn.Unflatten: _move, nn.Dropout: _identity, nn.Identity: _identity,
    nn.Sigmoid: _output_activation("sigmoid"), nn.Softmax: _output_activation("softmax"),
    nn.LogSoftmax: _output_activation("log_softmax"),
}
#: Handlers by function (``call_function``) or method name (``call_method``).
FUNCTION_HANDLERS: dict[object, Handler] = {
    F.relu: _relu, torch.relu: _relu, "relu": _relu, F.leaky_relu: _leaky,
    F.max_pool1d: _maxpool, F.max_pool2d: _maxpool, F.avg_pool1d: _avgpool, F.avg_pool2d: _avgpool,
    F.adaptive_avg_pool1d: _adaptive_avgpool, F.adaptive_avg_pool2d: _adaptive_avgpool, F.pad: _pad,
    F.dropout: _identity, "contiguous": _identity,
    torch.sigmoid: _output_activation("sigmoid"), "sigmoid": _output_activation("sigmoid"),
    torch.softmax: _output_activation("softmax"), F.softmax: _output_activation("softmax"),
    "softmax": _output_activation("softmax"), F.log_softmax: _output_activation("log_softmax"),
    torch.flatten: _move, torch.reshape: _move, torch.permute: _move, torch.transpose: _move,
    torch.unsqueeze: _move, torch.squeeze: _move, operator.getitem: _move, getattr: _move,
    "reshape": _move, "view": _move, "flatten": _move, "permute": _move, "transpose": _move,
    "unsqueeze": _move, "squeeze": _move, "size": _move,
    operator.add: _residual, torch.add: _residual, "add": _residual,
}


def supported_torch() -> str:
    """The operators :func:`lower_graph` lowers, for error messages."""
    mods = sorted({t.__name__ for t in MODULE_HANDLERS})
    return ", ".join(mods) + (", F.relu, F.max_pool1d/2d, F.avg_pool1d/2d, F.adaptive_avg_pool1d/2d, F.pad (zeros), "
                              "reshape/view/permute/flatten, a residual add (y = f(x) + x)")


def lower_graph(model: nn.Module, input_shape: tuple[int, ...], lanes: int) -> EngineNet:
    """The engine's layout of ``model`` (see the module docstring); ``model`` is not modified.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode; traceable by ``torch.fx.symbolic_trace``.
    input_shape : tuple of int
        One input without the batch dimension.
    lanes : int
        Engine lanes (maps' channels are padded to ``vector_align(lanes)``).

    Raises
    ------
    GraphError
        The first operator that cannot be lowered, with its node name.
    """
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001  tracing fails in many ways; one line names it
        raise GraphError(f"torch.fx cannot trace {type(model).__name__}: {str(e).splitlines()[0]}") from None
    # Batch 2 in the shape propagation: an operator that mixes the batch shows up as a wrong shape.
    return lower_traced(gm, input_shape, lanes, name=type(model).__name__, shape_batch=2)


def lower_traced(gm: fx.GraphModule, input_shape: tuple[int, ...], lanes: int, *, name: str,
                 handlers: dict | None = None, constants: bool = False, shape_batch: int = 1,
                 replay_batch: int = 1, supported: str | None = None, any_output: bool = False) -> EngineNet:
    """:func:`lower_graph` of a graph already traced (a ``torch.fx`` trace, an exported program's graph).

    Parameters
    ----------
    gm : torch.fx.GraphModule
    input_shape : tuple of int
        One input without the batch dimension.
    lanes : int
    name : str
        The network's name, for error messages.
    handlers : dict, optional
        Handlers by function, in place of :data:`FUNCTION_HANDLERS` (an exported graph's ATen operators).
    constants : bool
        ``get_attr`` nodes are the graph's weights (an exported graph): their tensors are values that
        handlers read, not tensor constants of the forward pass (refused otherwise).
    shape_batch, replay_batch : int
        The batch of the shape propagation, and the batch reshapes are replayed at (an exported graph's
        reshapes may name a fixed batch: both are then that batch).
    supported : str, optional
        What a refusal of an unknown operator lists as supported (default the torch operators).
    any_output : bool
        A chain of a partitioned graph (:mod:`model.nets.graph.partition`): its one output may be the newest
        vector in any layout (a map, or reshaped); the host reads it back through ``EngineNet.output_index``
        (for each element of the output tensor, its index in the engine's output vector) and
        ``EngineNet.output_shape``.
    """
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((shape_batch, *input_shape)))
    except Exception as e:  # noqa: BLE001  the network's own error, as one line
        cause = e.__cause__ or e
        raise GraphError(f"{name} does not run on inputs of shape {tuple(input_shape)}: "
                         f"{str(cause).splitlines()[0]}") from None
    walk = _Walk(lanes, batch=replay_batch)
    functions = FUNCTION_HANDLERS if handlers is None else handlers
    modules = dict(gm.named_modules())
    result = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            n = int(np.prod(input_shape))
            walk.values[node] = _Value(np.arange(n).reshape(input_shape), n, "input")
            continue
        if node.op == "output":
            result = node.args[0]
            break
        if node.op == "get_attr":
            if not constants:
                raise GraphError(f"{describe(node)}: a tensor constant in the forward pass does not run on the engine")
            walk.values[node] = _attribute(gm, node.target)
            continue
        module = modules[node.target] if node.op == "call_module" else None
        handler = (MODULE_HANDLERS.get(type(module)) if module is not None
                   else functions.get(node.target))
        if handler is None:
            raise GraphError(f"{describe(node, module)} does not run on the engine; supported: "
                             f"{supported or supported_torch()}")
        walk.values[node] = handler(walk, node, module)
    results = result if isinstance(result, (tuple, list)) else (result,)
    outs = [walk.values.get(r) if isinstance(r, fx.Node) else None for r in results]
    if not walk.layers or not outs or any(not isinstance(o, _Value) or o.stage != "engine" or o.gen != walk.gen
                                          for o in outs):
        raise GraphError(f"{name}: its outputs must be tensors computed by the last engine layer")
    last = walk.layers[-1] if not isinstance(walk.layers[-1], (nn.ReLU, EngineActivation)) else walk.layers[-2]
    size = last.out_features if isinstance(last, EngineLinear) else outs[0].size
    if any_output:
        o = outs[0]
        if len(outs) != 1 or o.activation is not None or o.pad != (0, 0, 0, 0):
            raise GraphError(f"{name}: a chain of engine layers has one output, as the last layer writes it")
        net = EngineNet([EngineInput(walk.input_index)] + walk.layers, lanes, input_shape,
                        [{"start": 0, "stop": size, "activation": None}], walk.source)
        net.output_index, net.output_shape = o.pos.reshape(-1).copy(), tuple(o.pos.shape)
        return net
    spans = []
    for o in outs:
        if o.pos.ndim != 1 or not np.array_equal(o.pos, np.arange(o.pos[0], o.pos[0] + len(o.pos))):
            raise GraphError(f"{name}: each output must be a run of the last layer's values as they are "
                             "(end with a Linear layer, or flatten a map without permuting it)")
        spans.append({"start": int(o.pos[0]), "stop": int(o.pos[0]) + len(o.pos), "activation": o.activation})
    bounds = sorted((sp["start"], sp["stop"]) for sp in spans)
    if [a for a, _ in bounds] != [0] + [b for _, b in bounds[:-1]] or bounds[-1][1] != size:
        raise GraphError(f"{name}: its outputs must together be the last layer's values, each once")
    return EngineNet([EngineInput(walk.input_index)] + walk.layers, lanes, input_shape, spans, walk.source)


def _attribute(gm: fx.GraphModule, target: str) -> torch.Tensor:
    """The tensor a ``get_attr`` node names (``"conv.weight"``), detached."""
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj.detach() if isinstance(obj, torch.Tensor) else obj
