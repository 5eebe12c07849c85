"""Lowering a ``torch.export`` program (``.pt2``) onto the engine: its ATen operators through the torch handlers.

``torch.export.load(path).module()`` is an ``fx.GraphModule`` whose nodes call
ATen operators (``aten.conv2d``, ``aten.linear``, ...) on the weights, held as
attributes (``get_attr`` nodes).  Each supported operator has a handler in
:data:`ATEN_HANDLERS` that builds the ``torch.nn`` module it computes from its
weight tensors and arguments (an ``nn.Conv2d`` from ``aten.conv2d``'s weight,
bias, stride, padding) and hands it to that module's handler in
:data:`model.nets.graph.trace.MODULE_HANDLERS`, so an exported network is
lowered by exactly the code that lowers a traced one.  Operators that only
move data (views, reshapes, permutes) and the host's final softmax or sigmoid
use the same handlers as their ``torch`` functions.

Both the training IR that ``torch.export.export`` writes (``aten.linear``,
``aten.batch_norm``) and the inference IR of ``run_decompositions()``
(``aten.addmm``, ``aten.convolution``, ``_native_batch_norm_legit_no_training``)
are read.
"""
from __future__ import annotations

import operator
from types import SimpleNamespace

import torch
from torch import fx, nn

from model.nets.graph.trace import (FUNCTION_HANDLERS, MODULE_HANDLERS, EngineNet, GraphError, _identity, _leaky,
                                    residual_add,
                                    _move, _out_shape, _output_activation, _pad, _relu, _Value, _Walk, describe,
                                    lower_traced)

aten = torch.ops.aten


def _const(walk: _Walk, node: fx.Node, i: int, default=None):
    """Argument ``i`` of ``node``: a weight tensor (a ``get_attr`` value, or one folded from them) or a plain value."""
    if i >= len(node.args):
        return default
    a = node.args[i]
    if isinstance(a, fx.Node):
        v = walk.values.get(a)
        if not isinstance(v, torch.Tensor):
            raise GraphError(f"{describe(node)}: argument {i} must be a weight tensor of the program, not computed "
                             "from its input")
        return v.float()
    return a


def _module(handler_type: type, module: nn.Module, walk: _Walk, node: fx.Node):
    """Lower ``node`` as the ``torch.nn`` module it computes, through that module's handler."""
    return MODULE_HANDLERS[handler_type](walk, node, module.eval())


def _with_params(module: nn.Module, **tensors) -> nn.Module:
    with torch.no_grad():
        for name, t in tensors.items():
            if t is None:
                setattr(module, name, None)
            else:
                getattr(module, name).copy_(torch.as_tensor(t).reshape(getattr(module, name).shape))
    return module


def _conv_module(weight, bias, stride=1, padding=0, dilation=1, groups=1) -> nn.Module:
    cls = nn.Conv1d if weight.dim() == 3 else nn.Conv2d
    m = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias is not None)
    return _with_params(m, weight=weight, bias=bias)


def _conv(walk: _Walk, node: fx.Node, m):
    """``aten.conv1d`` / ``aten.conv2d`` (input, weight, bias, stride, padding, dilation, groups)."""
    weight, bias = _const(walk, node, 1), _const(walk, node, 2)
    conv = _conv_module(weight, bias, *(_const(walk, node, i, d) for i, d in ((3, 1), (4, 0), (5, 1), (6, 1))))
    return _module(type(conv), conv, walk, node)


def _convolution(walk: _Walk, node: fx.Node, m):
    """``aten.convolution`` (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)."""
    if _const(walk, node, 6, False):
        raise GraphError(f"{describe(node)}: a transposed convolution does not run on the engine")
    weight, bias = _const(walk, node, 1), _const(walk, node, 2)
    conv = _conv_module(weight, bias, _const(walk, node, 3), _const(walk, node, 4), _const(walk, node, 5),
                        _const(walk, node, 8, 1))
    return _module(type(conv), conv, walk, node)


def _linear_module(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    return _with_params(nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None), weight=weight, bias=bias)


def _linear(walk: _Walk, node: fx.Node, m):
    """``aten.linear`` (input, weight, bias)."""
    return _module(nn.Linear, _linear_module(_const(walk, node, 1), _const(walk, node, 2)), walk, node)


def _addmm(walk: _Walk, node: fx.Node, m):
    """``aten.addmm`` (bias, input, weight transposed, beta, alpha): ``beta * bias + alpha * input @ mat2``."""
    bias, mat2 = _const(walk, node, 0), _const(walk, node, 2)
    beta, alpha = node.kwargs.get("beta", 1), node.kwargs.get("alpha", 1)
    lin = _linear_module(alpha * mat2.T, (beta * bias).expand(mat2.shape[1]))
    return MODULE_HANDLERS[nn.Linear](walk, _input_first(node, 1), lin)


def _mm(walk: _Walk, node: fx.Node, m):
    """``aten.mm`` / ``aten.matmul`` with a weight matrix: a Linear layer without bias (an ``add`` may follow)."""
    mat2 = _const(walk, node, 1)
    if mat2.dim() != 2:
        raise GraphError(f"{describe(node)}: the engine multiplies by a 2-D weight matrix only")
    return _module(nn.Linear, _linear_module(mat2.T, None), walk, node)


def _with_args(node: fx.Node, args: tuple) -> SimpleNamespace:
    """A stand-in of ``node`` with other arguments (the torch handlers read the input as argument 0)."""
    return SimpleNamespace(name=node.name, op=node.op, target=node.target, meta=node.meta, kwargs={}, args=args)


def _input_first(node: fx.Node, i: int) -> SimpleNamespace:
    """A stand-in of ``node`` whose first argument is its argument ``i``."""
    return _with_args(node, (node.args[i],) + tuple(a for j, a in enumerate(node.args) if j != i))


def _add(walk: _Walk, node: fx.Node, m):
    """``aten.add``: a weight tensor added right after a Linear or convolution joins its bias; the sum of
    two computed tensors is a residual connection's add (`model.nets.graph.trace.residual_add`)."""
    a, b = (walk.values.get(x) if isinstance(x, fx.Node) else x for x in node.args[:2])
    if isinstance(a, _Value) and isinstance(b, _Value):
        return residual_add(walk, node, None, a, b, node.kwargs.get("alpha", 1))
    v, c = (a, b) if isinstance(a, _Value) else (b, a)
    if not isinstance(v, _Value) or not v.fresh:
        raise GraphError(f"{describe(node)}: the engine adds a constant only as the bias of the Linear or "
                         "convolution right before it")
    alpha = node.kwargs.get("alpha", 1)
    layer = walk.layers[-1]
    out = _out_shape(node)
    full = torch.broadcast_to(torch.as_tensor(c, dtype=torch.float32) * alpha, out)
    per_channel = full.reshape(out[0], -1)
    if not torch.equal(per_channel, per_channel[:, :1].expand_as(per_channel)) or out[0] != layer.out_features:
        raise GraphError(f"{describe(node)}: the added constant is not one value per output channel, so it is "
                         "no bias of the layer before it")
    with torch.no_grad():
        layer.bias.add_(per_channel[:, 0])
    walk.source.append(f"{node.name}: add folded into the bias of the layer before it")
    return v


def _prelu(walk: _Walk, node: fx.Node, m):
    """``aten.prelu`` (input, weight): one slope, or one per channel."""
    slope = _const(walk, node, 1).reshape(-1)
    return _leaky(walk, node, _with_params(nn.PReLU(len(slope)), weight=slope))


def _max_pool(walk: _Walk, node: fx.Node, m):
    """``aten.max_pool1d/2d`` (input, kernel, stride, padding, dilation, ceil_mode)."""
    kernel = _const(walk, node, 1)
    one_d = node.target in (aten.max_pool1d.default,)
    cls = nn.MaxPool1d if one_d else nn.MaxPool2d
    pool = cls(kernel, _const(walk, node, 2) or kernel, _const(walk, node, 3, 0), _const(walk, node, 4, 1),
               ceil_mode=bool(_const(walk, node, 5, False)))
    return _module(cls, pool, walk, node)


def _max_pool_with_indices(walk: _Walk, node: fx.Node, m):
    """``aten.max_pool2d_with_indices``: the pool and no indices (a ``getitem`` takes the first)."""
    return _max_pool(walk, node, m), None


def _avg_pool(walk: _Walk, node: fx.Node, m):
    """``aten.avg_pool1d/2d`` (input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)."""
    kernel = _const(walk, node, 1)
    one_d = node.target is aten.avg_pool1d.default
    cls = nn.AvgPool1d if one_d else nn.AvgPool2d
    kw = {"divisor_override": _const(walk, node, 6)} if not one_d else {}
    pool = cls(kernel, _const(walk, node, 2) or kernel, _const(walk, node, 3, 0), bool(_const(walk, node, 4, False)),
               bool(_const(walk, node, 5, True)), **kw)
    return _module(cls, pool, walk, node)


def _adaptive_avg_pool(walk: _Walk, node: fx.Node, m):
    """``aten.adaptive_avg_pool1d/2d`` (input, output_size)."""
    one_d = node.target is aten.adaptive_avg_pool1d.default
    cls = nn.AdaptiveAvgPool1d if one_d else nn.AdaptiveAvgPool2d
    return _module(cls, cls(tuple(_const(walk, node, 1))), walk, node)


def _batch_norm_module(walk: _Walk, node: fx.Node, eps_index: int) -> nn.Module:
    weight, bias, mean, var = (_const(walk, node, i) for i in range(1, 5))
    cls = nn.BatchNorm2d if len(_out_shape(node.args[0])) == 3 else nn.BatchNorm1d
    bn = cls(len(mean), eps=float(_const(walk, node, eps_index)), affine=weight is not None)
    return _with_params(bn, running_mean=mean, running_var=var,
                        **({"weight": weight, "bias": bias} if weight is not None else {}))


def _batch_norm(walk: _Walk, node: fx.Node, m):
    """``aten.batch_norm`` (input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)."""
    if _const(walk, node, 5, False):
        raise GraphError(f"{describe(node)}: batch norm in training mode does not run on the engine "
                         "(export the network in eval mode)")
    bn = _batch_norm_module(walk, node, 7)
    return _module(type(bn), bn, walk, node)


def _native_batch_norm(walk: _Walk, node: fx.Node, m):
    """``aten._native_batch_norm_legit_no_training`` (input, weight, bias, mean, var, momentum, eps): a tuple whose
    first element is the output (a ``getitem`` takes it)."""
    bn = _batch_norm_module(walk, node, 6)
    return _module(type(bn), bn, walk, node), None, None


def _constant_pad(walk: _Walk, node: fx.Node, m):
    """``aten.constant_pad_nd`` (input, pad, value): the zero pad of ``F.pad``."""
    return _pad(walk, _with_args(node, (node.args[0], node.args[1], "constant", _const(walk, node, 2, 0))), m)


def _getitem(walk: _Walk, node: fx.Node, m):
    """The output of an operator that returns a tuple (batch norm, pooling with indices), or data movement."""
    v = walk.values.get(node.args[0])
    if isinstance(v, tuple):
        item = v[node.args[1]]
        if not isinstance(item, _Value):
            raise GraphError(f"{describe(node)}: it reads output {node.args[1]} of {node.args[0].name}, which the "
                             "engine does not compute (pooling indices, batch statistics)")
        return item
    return _move(walk, node, m)


_SOFTMAX = _output_activation("softmax")
_LOG_SOFTMAX = _output_activation("log_softmax")
_SIGMOID = _output_activation("sigmoid")

#: Handlers by ATen operator (``OpOverload``).
ATEN_HANDLERS: dict[object, object] = {
    aten.conv1d.default: _conv, aten.conv2d.default: _conv, aten.convolution.default: _convolution,
    aten.linear.default: _linear, aten.addmm.default: _addmm, aten.mm.default: _mm, aten.matmul.default: _mm,
    aten.add.Tensor: _add,
    aten.relu.default: _relu, aten.relu_.default: _relu, aten.leaky_relu.default: _leaky,
    aten.leaky_relu_.default: _leaky, aten.prelu.default: _prelu,
    aten.max_pool1d.default: _max_pool, aten.max_pool2d.default: _max_pool,
    aten.max_pool2d_with_indices.default: _max_pool_with_indices,
    aten.avg_pool1d.default: _avg_pool, aten.avg_pool2d.default: _avg_pool,
    aten.adaptive_avg_pool1d.default: _adaptive_avg_pool, aten.adaptive_avg_pool2d.default: _adaptive_avg_pool,
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool,
    aten.batch_norm.default: _batch_norm, aten._native_batch_norm_legit_no_training.default: _native_batch_norm,
    aten.pad.default: _pad, aten.constant_pad_nd.default: _constant_pad,
    aten.dropout.default: _identity, aten.clone.default: _identity, aten.alias.default: _identity,
    aten.detach.default: _identity, aten.contiguous.default: _identity,
    aten.softmax.int: _SOFTMAX, aten._softmax.default: _SOFTMAX, aten.log_softmax.int: _LOG_SOFTMAX,
    aten._log_softmax.default: _LOG_SOFTMAX, aten.sigmoid.default: _SIGMOID,
    aten.view.default: _move, aten.reshape.default: _move, aten._unsafe_view.default: _move,
    aten.flatten.using_ints: _move, aten.permute.default: _move, aten.t.default: _move,
    aten.transpose.int: _move, aten.unsqueeze.default: _move, aten.squeeze.dim: _move, aten.squeeze.dims: _move,
    aten.squeeze.default: _move, aten.sym_size.int: _move, operator.getitem: _getitem,
}


def supported_aten() -> str:
    """The ATen operators :func:`lower_exported` lowers, for error messages."""
    return ", ".join(sorted({str(op).removesuffix(".default") for op in ATEN_HANDLERS if op is not operator.getitem}))


def lower_exported(gm: fx.GraphModule, input_shape: tuple[int, ...], batch: int, lanes: int, *,
                   name: str) -> EngineNet:
    """The engine's layout of an exported program's graph (``ExportedProgram.module()``).

    Parameters
    ----------
    gm : torch.fx.GraphModule
        ATen operators on ``get_attr`` weights; not modified (a copy drops its guard checks).
    input_shape : tuple of int
        One input without the batch dimension.
    batch : int
        The batch the program was exported with when it is fixed (its reshapes may name it), else 1.
    lanes : int
    name : str
        For error messages.

    Raises
    ------
    GraphError
        The first operator that cannot be lowered, with its node name and what is supported.
    """
    gm = fx.GraphModule(gm, gm.graph.__deepcopy__())
    for node in reversed(list(gm.graph.nodes)):
        # The exporter's input checks (``_guards_fn``) compute nothing the outputs need.
        if node.op == "call_module" and not node.users:
            gm.graph.erase_node(node)
    gm.recompile()
    return lower_traced(gm, input_shape, lanes, name=name, handlers={**FUNCTION_HANDLERS, **ATEN_HANDLERS},
                        constants=True, shape_batch=batch, replay_batch=batch,
                        supported=f"ATen operators {supported_aten()}")
