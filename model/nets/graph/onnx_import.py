"""An ONNX model as a ``torch.fx`` graph of ``torch.nn`` modules, which :func:`~.trace.lower_graph` lowers.

:func:`onnx_module` walks the ONNX graph once, in its (topological) order.
Each operator has a converter in :data:`ONNX_OPS` that turns it into the
``torch.nn`` module it computes (``Conv`` into ``nn.Conv2d``, ``Gemm`` into
``nn.Linear``, ...) or into the ``torch`` call that moves data (``Reshape``,
``Transpose``, a zero ``Pad``), so the lowering is the one of a traced torch
network.  Every tensor keeps an example value (batch 1), computed as the graph
is built, so shape computations (``Shape``, ``Gather``, ``Concat`` ... on
constants, as ``torch.onnx.export`` writes ``x.view(x.size(0), -1)``) fold to
constants, and a ``Reshape`` keeps the batch dimension whatever the batch.  A
constant added right after a ``MatMul``, ``Gemm`` or ``Conv`` joins its bias.

Anything else is refused with one line naming the operator, its ONNX node and
the operators supported.  The converter is checked against onnxruntime, the
float reference, by :mod:`model.nets.user`.
"""
from __future__ import annotations

import operator

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from model.nets.graph.trace import GraphError

#: ONNX attributes' defaults that differ from torch's.
ONNX_LEAKY_ALPHA = 0.01
ONNX_BN_EPSILON = 1e-5


@dataclass
class _Tensor:
    """A tensor of the ONNX graph computed from the input: its fx node, an example (batch 1), and the module
    that produced it when a bias may still join it."""
    node: fx.Node
    example: torch.Tensor
    layer: nn.Module | None = None


@dataclass
class _Build:
    """The state of one conversion."""
    graph: fx.Graph = field(default_factory=fx.Graph)
    root: nn.Module = field(default_factory=nn.Module)
    values: dict = field(default_factory=dict)       # ONNX value name -> _Tensor or numpy constant
    uses: dict = field(default_factory=dict)         # ONNX value name -> consumers (nodes and graph outputs)

    def module(self, onnx_node, module: nn.Module, x: _Tensor, layer: bool = False) -> _Tensor:
        """``module`` applied to ``x``, as a submodule named after the ONNX node."""
        name = _identifier(onnx_node.name or onnx_node.op_type, self.root)
        self.root.add_module(name, module.eval())
        with torch.no_grad():
            example = module(x.example)
        return _Tensor(self.graph.call_module(name, (x.node,)), example, module if layer else None)

    def call(self, kind: str, target, args: tuple, x: _Tensor, fn: Callable) -> _Tensor:
        """A ``call_function`` / ``call_method`` node whose example is ``fn(x.example)``."""
        node = self.graph.create_node(kind, target, args)
        return _Tensor(node, fn(x.example))


def _identifier(name: str, root: nn.Module) -> str:
    base = re.sub(r"\W", "_", name).strip("_") or "node"
    base = "n_" + base if base[0].isdigit() else base
    name, i = base, 1
    while hasattr(root, name):
        name, i = f"{base}_{i}", i + 1
    return name


def describe_onnx(onnx_node) -> str:
    """``operator OP (ONNX node 'name')`` for error messages."""
    return f"operator {onnx_node.op_type} (ONNX node {onnx_node.name!r})"


def _attrs(onnx_node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in onnx_node.attribute}


def _tensor(b: _Build, onnx_node, i: int = 0) -> _Tensor:
    v = b.values.get(onnx_node.input[i]) if i < len(onnx_node.input) else None
    if not isinstance(v, _Tensor):
        raise GraphError(f"{describe_onnx(onnx_node)}: input {i} must be computed from the model's input")
    return v


def _const(b: _Build, onnx_node, i: int, default=None):
    if i >= len(onnx_node.input) or onnx_node.input[i] == "":
        return default
    v = b.values.get(onnx_node.input[i])
    if v is None or isinstance(v, _Tensor):
        raise GraphError(f"{describe_onnx(onnx_node)}: input {i} must be a weight (an initializer or constant), "
                         "not computed from the model's input")
    return v


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))     # a copy: initializers are read-only


def _set(module: nn.Module, **tensors) -> nn.Module:
    with torch.no_grad():
        for name, t in tensors.items():
            getattr(module, name).copy_(_t(t).reshape(getattr(module, name).shape))
    return module


def _spatial_pads(onnx_node, pads, rank: int) -> tuple[list[int], list[int]]:
    """ONNX ``pads`` (begins, then ends) of a ``rank``-D window as (begins, ends)."""
    pads = list(pads or [0] * 2 * rank)
    return pads[:rank], pads[rank:]


def _check_auto_pad(onnx_node, attrs):
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise GraphError(f"{describe_onnx(onnx_node)}: auto_pad {attrs['auto_pad']!r} is not supported "
                         "(export with explicit pads)")


# --- converters ---------------------------------------------------------------------------------


def _conv(b: _Build, n):
    x, w, bias = _tensor(b, n), _const(b, n, 1), _const(b, n, 2)
    a = _attrs(n)
    _check_auto_pad(n, a)
    rank = w.ndim - 2
    begins, ends = _spatial_pads(n, a.get("pads"), rank)
    if begins != ends:
        # Asymmetric zero padding: an F.pad before the convolution, which the lowering joins to it.
        pad = [p for bgn, end in zip(reversed(begins), reversed(ends)) for p in (bgn, end)]
        x = b.call("call_function", F.pad, (x.node, tuple(pad)), x, lambda e: F.pad(e, pad))
        begins = [0] * rank
    cls = nn.Conv1d if rank == 1 else nn.Conv2d
    group = int(a.get("group", 1))
    conv = cls(w.shape[1] * group, w.shape[0], tuple(w.shape[2:]), stride=tuple(a.get("strides", [1] * rank)),
               padding=tuple(begins), dilation=tuple(a.get("dilations", [1] * rank)), groups=group,
               bias=True)
    _set(conv, weight=w, bias=np.zeros(w.shape[0]) if bias is None else bias)
    return b.module(n, conv, x, layer=True)


def _linear(b: _Build, n, weight: np.ndarray, bias: np.ndarray | None):
    x = _tensor(b, n)
    if x.example.dim() != 2:
        raise GraphError(f"{describe_onnx(n)}: the engine runs a matrix product on a flat vector per input, "
                         f"got shape {tuple(x.example.shape[1:])}")
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    _set(lin, weight=weight,
         bias=np.zeros(weight.shape[0]) if bias is None else np.broadcast_to(bias, weight.shape[:1]))
    return b.module(n, lin, x, layer=True)


def _gemm(b: _Build, n):
    a = _attrs(n)
    if a.get("transA", 0):
        raise GraphError(f"{describe_onnx(n)}: transA=1 does not run on the engine")
    w = _const(b, n, 1)
    w = (w if a.get("transB", 0) else w.T) * a.get("alpha", 1.0)
    c = _const(b, n, 2)
    return _linear(b, n, w, None if c is None else np.reshape(c, -1) * a.get("beta", 1.0))


def _matmul(b: _Build, n):
    if isinstance(b.values.get(n.input[1]), _Tensor) or np.ndim(b.values.get(n.input[1])) != 2:
        return _host_op(b, n)        # a product of two computed tensors (attention), or by a batch of matrices
    w = _const(b, n, 1)
    if w.ndim != 2:
        raise GraphError(f"{describe_onnx(n)}: the engine multiplies by a 2-D weight matrix only")
    return _linear(b, n, w.T, None)


def _add(b: _Build, n):
    a, c = (b.values.get(name) for name in n.input[:2])
    if isinstance(a, _Tensor) and isinstance(c, _Tensor):
        # Two computed tensors: a residual connection's add, lowered (or refused) as torch's.
        node = b.graph.call_function(operator.add, (a.node, c.node))
        return _Tensor(node, a.example + c.example)
    if not isinstance(a, _Tensor) and not isinstance(c, _Tensor):
        return _fold(np.add)(b, n)
    x, const = (a, c) if isinstance(a, _Tensor) else (c, a)
    name = n.input[0] if isinstance(a, _Tensor) else n.input[1]
    out = tuple(x.example.shape[1:])
    per_channel = np.broadcast_to(np.asarray(const, dtype=np.float32), (1, *out))[0].reshape(out[0], -1) \
        if np.broadcast_shapes(np.shape(const), (1, *out)) == (1, *out) else None
    if x.layer is None or b.uses.get(name, 0) != 1 or per_channel is None \
            or not np.all(per_channel == per_channel[:, :1]):
        # No bias of the layer before it: an add the host computes (the engine refuses it as a layer).
        return _host_op(b, n)
    with torch.no_grad():
        x.layer.bias.add_(_t(per_channel[:, 0]))
        example = x.example + _t(per_channel[:, 0]).reshape((1, -1) + (1,) * (len(out) - 1))
    return _Tensor(x.node, example, x.layer)


def _simple(make: Callable[[dict], nn.Module]):
    def convert(b: _Build, n):
        return b.module(n, make(_attrs(n)), _tensor(b, n))
    return convert


def _prelu(b: _Build, n):
    slope = np.reshape(_const(b, n, 1), -1)
    return b.module(n, _set(nn.PReLU(len(slope)), weight=slope), _tensor(b, n))


def _pool_window(n, x: _Tensor, a: dict):
    _check_auto_pad(n, a)
    kernel = list(a["kernel_shape"])
    rank = len(kernel)
    begins, ends = _spatial_pads(n, a.get("pads"), rank)
    if begins != ends:
        raise GraphError(f"{describe_onnx(n)}: asymmetric pooling pads {begins + ends} do not run on the engine")
    return rank, tuple(kernel), tuple(a.get("strides", [1] * rank)), tuple(begins)


def _maxpool(b: _Build, n):
    if len(n.output) > 1 and n.output[1]:
        raise GraphError(f"{describe_onnx(n)}: max pooling indices are not computed by the engine")
    x, a = _tensor(b, n), _attrs(n)
    rank, kernel, stride, pads = _pool_window(n, x, a)
    cls = nn.MaxPool1d if rank == 1 else nn.MaxPool2d
    return b.module(n, cls(kernel, stride, pads, tuple(a.get("dilations", [1] * rank)),
                           ceil_mode=bool(a.get("ceil_mode", 0))), x)


def _avgpool(b: _Build, n):
    x, a = _tensor(b, n), _attrs(n)
    rank, kernel, stride, pads = _pool_window(n, x, a)
    cls = nn.AvgPool1d if rank == 1 else nn.AvgPool2d
    # ONNX counts padding out of the average by default, torch in.
    return b.module(n, cls(kernel, stride, pads, bool(a.get("ceil_mode", 0)), bool(a.get("count_include_pad", 0))),
                    x)


def _global_avgpool(b: _Build, n):
    x = _tensor(b, n)
    cls = nn.AdaptiveAvgPool1d if x.example.dim() == 3 else nn.AdaptiveAvgPool2d
    return b.module(n, cls(1), x)


def _batchnorm(b: _Build, n):
    x = _tensor(b, n)
    scale, bias, mean, var = (_const(b, n, i) for i in range(1, 5))
    cls = nn.BatchNorm2d if x.example.dim() == 4 else nn.BatchNorm1d
    bn = cls(len(mean), eps=float(_attrs(n).get("epsilon", ONNX_BN_EPSILON)))
    return b.module(n, _set(bn, weight=scale, bias=bias, running_mean=mean, running_var=var), x)


def _flatten(b: _Build, n):
    axis = _attrs(n).get("axis", 1)
    x = _tensor(b, n)
    if axis not in (1, 1 - x.example.dim()):
        raise GraphError(f"{describe_onnx(n)}: Flatten with axis {axis} moves the batch dimension; only axis 1 runs")
    return b.module(n, nn.Flatten(), x)


def _reshape(b: _Build, n):
    shape = [int(s) for s in _const(b, n, 1)]
    if not isinstance(b.values.get(n.input[0]), _Tensor):       # a shape computation on constants
        data = np.asarray(_const(b, n, 0))
        return data.reshape([data.shape[i] if s == 0 else s for i, s in enumerate(shape)])
    x = _tensor(b, n)
    if shape[0] not in (0, -1, x.example.shape[0]):
        raise GraphError(f"{describe_onnx(n)}: Reshape to {shape} moves the batch dimension")
    # 0 copies the input's dimension (ONNX, allowzero=0); the batch stays whatever it is.
    rest = tuple(x.example.shape[i] if s == 0 and i < x.example.dim() else s for i, s in enumerate(shape) if i > 0)
    size = b.graph.call_method("size", (x.node, 0))
    return b.call("call_method", "reshape", (x.node, size, *rest), x, lambda e: e.reshape(e.shape[0], *rest))


def _transpose(b: _Build, n):
    if not isinstance(b.values.get(n.input[0]), _Tensor):
        data = np.asarray(_const(b, n, 0))
        return np.transpose(data, _attrs(n).get("perm"))
    x = _tensor(b, n)
    perm = list(_attrs(n).get("perm", reversed(range(x.example.dim()))))
    if perm[0] != 0:
        raise GraphError(f"{describe_onnx(n)}: Transpose {perm} moves the batch dimension")
    return b.call("call_method", "permute", (x.node, *perm), x, lambda e: e.permute(*perm))


def _axes(b: _Build, n) -> list[int] | None:
    axes = _attrs(n).get("axes")
    if axes is None and len(n.input) > 1:
        axes = _const(b, n, 1)
    return None if axes is None else [int(a) for a in np.reshape(axes, -1)]


def _squeeze(unsqueeze: bool):
    def convert(b: _Build, n):
        v = b.values.get(n.input[0])
        axes = _axes(b, n)
        if not isinstance(v, _Tensor):        # a shape computation on constants
            return np.expand_dims(v, axes) if unsqueeze else np.squeeze(v, tuple(axes) if axes else None)
        if not axes or 0 in axes or any(a < 0 for a in axes):
            raise GraphError(f"{describe_onnx(n)}: give the axes as positive dimensions after the batch")
        out = v
        for a in (sorted(axes) if unsqueeze else sorted(axes, reverse=True)):
            method = "unsqueeze" if unsqueeze else "squeeze"
            out = b.call("call_method", method, (out.node, a), out, lambda e, a=a, m=method: getattr(e, m)(a))
        return out
    return convert


def _pad(b: _Build, n):
    x, a = _tensor(b, n), _attrs(n)
    pads = a.get("pads")
    pads = [int(p) for p in (pads if pads is not None else _const(b, n, 1))]
    value = a.get("value", _const(b, n, 2, 0.0))
    mode = a.get("mode", b"constant")
    rank = x.example.dim()
    begins, ends = pads[:rank], pads[rank:]
    if mode not in (b"constant", "constant") or float(np.reshape(value, -1)[0] if np.size(value) else 0) != 0 \
            or any(begins[:-2]) or any(ends[:-2]) or rank < 3:
        raise GraphError(f"{describe_onnx(n)}: only zero padding of a map's last one or two dimensions runs on "
                         "the engine")
    pad = tuple(p for bgn, end in zip(reversed(begins[2:]), reversed(ends[2:])) for p in (bgn, end))
    return b.call("call_function", F.pad, (x.node, pad), x, lambda e: F.pad(e, pad))


def _softmax(cls: type):
    def convert(b: _Build, n):
        x = _tensor(b, n)
        axis = _attrs(n).get("axis", -1)
        if axis not in (1, -1) or (axis == -1 and x.example.dim() != 2):
            # Not over a flat vector: the host computes it (never the final activation of an engine chain).
            return _host_op(b, n)
        return b.module(n, cls(dim=1), x)
    return convert


class HostOp(nn.Module):
    """An ONNX operator the engine has no unit for, computed by the host in torch (a partitioned program's host
    segments, :mod:`model.nets.graph.partition`).  Its class is named after the ONNX operator (one subclass per
    operator type, :func:`host_op_class`), so refusals and the partition name it as ONNX does.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs, **attrs)`` in torch: the inputs in the ONNX node's order.
    constants : dict
        Input position -> the constant (an initializer) at that position; the others are the module's arguments.
    attrs : dict
        The node's attributes, as :data:`HOST_OPS` reads them.
    """

    def __init__(self, fn: Callable, constants: dict, attrs: dict):
        super().__init__()
        self.fn, self.attrs = fn, attrs
        self.positions = sorted(constants)
        for i, c in constants.items():
            self.register_buffer(f"const{i}", torch.as_tensor(np.array(c)), persistent=False)

    def forward(self, *xs):
        xs, args = list(xs), []
        for i in range(len(xs) + len(self.positions)):
            args.append(getattr(self, f"const{i}") if i in self.positions else xs.pop(0))
        return self.fn(*args, **self.attrs)


_HOST_CLASSES: dict[str, type] = {}


def host_op_class(op_type: str) -> type:
    """The :class:`HostOp` subclass named ``op_type``."""
    if op_type not in _HOST_CLASSES:
        _HOST_CLASSES[op_type] = type(op_type, (HostOp,), {"__module__": __name__})
    return _HOST_CLASSES[op_type]


def _layer_norm(x, scale=None, bias=None, *, axis=-1, epsilon=1e-5):
    dims = tuple(range(axis % x.dim(), x.dim()))
    mean = x.mean(dims, keepdim=True)
    y = (x - mean) / torch.sqrt(((x - mean) ** 2).mean(dims, keepdim=True) + epsilon)
    return y * (1 if scale is None else scale) + (0 if bias is None else bias)


def _reduce_mean(x, axes=None, *, keepdims=1, noop_with_empty_axes=0):
    if axes is None or len(axes) == 0:
        return x if noop_with_empty_axes else x.mean(keepdim=bool(keepdims))
    return x.mean(tuple(int(a) for a in torch.as_tensor(axes).reshape(-1)), keepdim=bool(keepdims))


def _slice_tensor(x, starts, ends, axes=None, steps=None):
    index = [slice(None)] * x.dim()
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for a, start, end, step in zip(axes, starts, ends, steps):
        a, size = int(a), x.shape[int(a)]
        if a % x.dim() == 0:
            raise ValueError("Slice of the batch dimension")
        start, end = max(-size, min(int(start), size)), max(-size - 1, min(int(end), size))
        index[a] = slice(start, end, int(step))
    return x[tuple(index)]


#: Operators the host computes in torch where they take a tensor computed from the input (the engine runs none
#: of them: a partitioned program's host segments): ONNX type -> (torch function, attributes it reads and their
#: defaults).
HOST_OPS: dict[str, tuple[Callable, dict]] = {
    "Mul": (torch.mul, {}), "Div": (torch.div, {}), "Sub": (torch.sub, {}), "Add": (torch.add, {}),
    "Pow": (torch.pow, {}), "MatMul": (torch.matmul, {}),
    "Sqrt": (torch.sqrt, {}), "Exp": (torch.exp, {}), "Erf": (torch.erf, {}), "Tanh": (torch.tanh, {}),
    "Neg": (torch.neg, {}), "Abs": (torch.abs, {}), "Reciprocal": (torch.reciprocal, {}),
    "Gelu": (lambda x, approximate="none": F.gelu(x, approximate=approximate), {"approximate": "none"}),
    "Softmax": (lambda x, axis=-1: torch.softmax(x, axis), {"axis": -1}),
    "LogSoftmax": (lambda x, axis=-1: torch.log_softmax(x, axis), {"axis": -1}),
    "LayerNormalization": (_layer_norm, {"axis": -1, "epsilon": 1e-5}),
    "ReduceMean": (_reduce_mean, {"keepdims": 1, "noop_with_empty_axes": 0}),
    "Slice": (_slice_tensor, {}),
}


def _host_op(b: _Build, n):
    """``n`` as a :class:`HostOp`: its tensor inputs are the module's arguments, its constants buffers."""
    fn, defaults = HOST_OPS[n.op_type]
    a = _attrs(n)
    attrs = {k: (a[k].decode() if isinstance(a.get(k), bytes) else a.get(k, d)) for k, d in defaults.items()}
    if n.op_type == "ReduceMean" and "axes" in a:
        attrs["axes"] = list(a["axes"])
    tensors, constants = [], {}
    for i, name in enumerate(n.input):
        v = b.values.get(name) if name else None
        if isinstance(v, _Tensor):
            tensors.append(v)
        elif name:
            constants[i] = _const(b, n, i)
    if not tensors:     # constants only: computed now (a shape computation)
        return fn(*(torch.as_tensor(np.array(constants[i])) for i in sorted(constants)), **attrs).numpy()
    module = host_op_class(n.op_type)(fn, constants, attrs)
    name = _identifier(n.name or n.op_type, b.root)
    b.root.add_module(name, module.eval())
    with torch.no_grad():
        example = module(*(t.example for t in tensors))
    return _Tensor(b.graph.call_module(name, tuple(t.node for t in tensors)), example)


def _host_or(fold: Callable):
    """``fold`` (a shape computation) on constants only; the host's :class:`HostOp` on a computed tensor."""
    def convert(b: _Build, n):
        if any(isinstance(b.values.get(name), _Tensor) for name in n.input):
            return _host_op(b, n)
        return fold(b, n)
    return convert


def _identity(b: _Build, n):
    return b.values[n.input[0]]


def _constant(b: _Build, n):
    from onnx import numpy_helper
    a = n.attribute[0]
    if a.name == "value":
        return numpy_helper.to_array(a.t)
    from onnx import helper
    return np.asarray(helper.get_attribute_value(a))


def _shape(b: _Build, n):
    v = b.values.get(n.input[0])
    shape = np.asarray(v.example.shape if isinstance(v, _Tensor) else np.shape(v), dtype=np.int64)
    a = _attrs(n)
    return shape[a.get("start", 0):a.get("end", len(shape))]


def _fold(fn: Callable):
    """An operator on constants only (a shape computation), computed now."""
    def convert(b: _Build, n):
        if any(isinstance(b.values.get(name), _Tensor) for name in n.input):
            raise GraphError(f"{describe_onnx(n)} on a tensor computed from the input does not run on the engine "
                             f"(only on constants, to compute shapes); supported ONNX operators: {supported_onnx()}")
        args = [_const(b, n, i) for i in range(len(n.input))]
        return fn(*args, **_fold_kwargs(n))
    return convert


def _fold_kwargs(n) -> dict:
    a = _attrs(n)
    if n.op_type == "Gather":
        return {"axis": a.get("axis", 0)}
    if n.op_type == "Concat":
        return {"axis": a["axis"]}
    return {}


def _constant_of_shape(b: _Build, n):
    from onnx import numpy_helper
    value = _attrs(n).get("value")
    fill = numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    return np.full([int(d) for d in _const(b, n, 0)], fill[0], dtype=fill.dtype)


def _slice(b: _Build, n):
    """``Slice`` on a constant (ONNX opset 10+: starts, ends, axes and steps as inputs)."""
    if isinstance(b.values.get(n.input[0]), _Tensor):
        raise GraphError(f"{describe_onnx(n)} on a tensor computed from the input does not run on the engine "
                         f"(only on constants, to compute shapes); supported ONNX operators: {supported_onnx()}")
    data = np.asarray(_const(b, n, 0))
    starts, ends = (np.reshape(_const(b, n, i), -1) for i in (1, 2))
    axes = np.reshape(_const(b, n, 3, np.arange(len(starts))), -1)
    steps = np.reshape(_const(b, n, 4, np.ones(len(starts), np.int64)), -1)
    index = [slice(None)] * data.ndim
    for a, start, end, step in zip(axes, starts, ends, steps):
        index[int(a)] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _cast(b: _Build, n):
    from onnx import helper
    v = _const(b, n, 0)
    return v.astype(helper.tensor_dtype_to_np_dtype(_attrs(n)["to"]))


#: Converters by ONNX operator type: each returns a :class:`_Tensor` (or a constant, when it folds).
ONNX_OPS: dict[str, Callable] = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add,
    "Relu": _simple(lambda a: nn.ReLU()),
    "LeakyRelu": _simple(lambda a: nn.LeakyReLU(a.get("alpha", ONNX_LEAKY_ALPHA))),
    "PRelu": _prelu, "MaxPool": _maxpool, "AveragePool": _avgpool, "GlobalAveragePool": _global_avgpool,
    "BatchNormalization": _batchnorm, "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose,
    "Squeeze": _squeeze(False), "Unsqueeze": _squeeze(True), "Pad": _pad,
    "Softmax": _softmax(nn.Softmax), "LogSoftmax": _softmax(nn.LogSoftmax),
    "Sigmoid": _simple(lambda a: nn.Sigmoid()),
    "Dropout": _identity, "Identity": _identity,
    # Shape computations on constants (what torch.onnx.export writes for x.view(x.size(0), -1)).
    "Constant": _constant, "Shape": _shape, "Cast": _cast, "ConstantOfShape": _constant_of_shape,
    "Gather": _fold(lambda d, i, axis: np.take(d, i, axis=axis)),
    "Concat": _fold(lambda *a, axis: np.concatenate([np.atleast_1d(x) for x in a], axis=axis)),
    "Mul": _host_or(_fold(np.multiply)),
    "Div": _host_or(_fold(lambda x, y: x // y if np.issubdtype(np.asarray(x).dtype, np.integer) else x / y)),
    "Sub": _host_or(_fold(np.subtract)), "Slice": _host_or(_slice),
    # Computed by the host only (no engine unit): a partitioned program's host segments.
    **{op: _host_op for op in ("Pow", "Sqrt", "Exp", "Erf", "Tanh", "Neg", "Abs", "Reciprocal", "Gelu",
                               "LayerNormalization", "ReduceMean")},
}


def supported_onnx() -> str:
    """The ONNX operators :func:`onnx_module` converts, for error messages."""
    return ", ".join(ONNX_OPS)


def onnx_module(model, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """The ONNX ``model`` (a ``ModelProto``) as a ``torch.fx.GraphModule`` of ``torch.nn`` modules.

    Parameters
    ----------
    model : onnx.ModelProto
        One float input (batch first), any number of outputs.
    input_shape : tuple of int
        One input without the batch dimension.

    Raises
    ------
    GraphError
        The first operator that cannot be converted, with its ONNX node name and what is supported.
    """
    from onnx import numpy_helper
    b = _Build()
    g = model.graph
    for init in g.initializer:
        b.values[init.name] = numpy_helper.to_array(init)
    inputs = [i for i in g.input if i.name not in b.values]
    if len(inputs) != 1:
        raise GraphError(f"the model has {len(inputs)} inputs; the engine takes one")
    for node in g.node:
        for name in node.input:
            b.uses[name] = b.uses.get(name, 0) + 1
    for out in g.output:
        b.uses[out.name] = b.uses.get(out.name, 0) + 1
    x = b.graph.placeholder("x")
    b.values[inputs[0].name] = _Tensor(x, torch.zeros((1, *input_shape)))
    for node in g.node:
        convert = ONNX_OPS.get(node.op_type)
        if convert is None:
            raise GraphError(f"{describe_onnx(node)} runs neither on the engine nor on the host (this version does "
                             f"not read it); supported ONNX operators: {supported_onnx()}")
        try:
            out = convert(b, node)
        except GraphError:
            raise
        except Exception as e:  # noqa: BLE001  a malformed node (missing attribute, bad shapes), as one line
            raise GraphError(f"{describe_onnx(node)}: cannot convert it: {str(e).splitlines()[0]}") from None
        b.values[node.output[0]] = out
    outs = [b.values.get(o.name) for o in g.output]
    bad = [o.name for o, v in zip(g.output, outs) if not isinstance(v, _Tensor)]
    if bad:
        raise GraphError(f"output {bad[0]!r} is not computed from the model's input")
    b.graph.output(outs[0].node if len(outs) == 1 else tuple(v.node for v in outs))
    return fx.GraphModule(b.root, b.graph, class_name="OnnxModel")
