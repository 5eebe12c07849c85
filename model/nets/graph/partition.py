"""Partitioning a user's graph between the engine and the host: engine chains, and the host's float graph.

A user's graph that does not lower whole onto the engine (a LayerNorm, GELU,
sigmoid gate or softmax between layers the engine runs) is split by
:func:`partition_graph`, walking the graph's nodes once in their order:

* a run of nodes the engine has handlers for (:data:`~.trace.MODULE_HANDLERS`,
  :data:`~.trace.FUNCTION_HANDLERS`, :data:`~.exported.ATEN_HANDLERS`) becomes an
  engine chain when it reads one tensor from outside, only its last node is read
  outside it, and it lowers (:func:`~.trace.lower_traced`, so every lowering rule,
  residual adds included, applies inside a chain); the longest such prefix of
  the run is taken, and a run none of whose prefixes lowers gives its first node
  to the host;
* every other node runs on the host: the softmax, sigmoid and log-softmax the
  whole-graph lowering leaves to the host at the end, wherever they are, and
  every operator without an engine handler.  The host runs the graph's own
  nodes in float with torch on the CPU (an exported graph's ATen operators; an
  ONNX model's converted modules, :mod:`~.onnx_import`); an operator it cannot
  run either (a higher-order operator: data-dependent control flow) is refused
  in one line naming it, its node and what the host runs.

:class:`HostGraph` runs the graph with each chain replaced by a call (the
chain's lowered float network, or its engine job): the chain's input tensor in,
the output tensor out.  A graph exported with a fixed batch runs its host nodes
one batch at a time and each chain once on every input together, so an engine
job gets all the inputs.  It is rebuilt from the node names a program records
(:func:`host_graph`), so ``vqe run`` finds the host's part in the model file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from model.nets.graph.trace import (FUNCTION_HANDLERS, MODULE_HANDLERS, EngineNet, GraphError, _attribute, describe,
                                    lower_traced)

#: Inputs per host batch when the graph's batch is free.
HOST_BATCH = 256


class NoEngineChain(GraphError):
    """No part of the graph lowers onto the engine."""


def flat_outputs(out) -> np.ndarray:
    """A network's output(s) as one (n, values) array: each output flattened, concatenated in order."""
    parts = out if isinstance(out, (tuple, list)) else (out,)
    return np.concatenate([np.asarray(torch.as_tensor(p).detach(), dtype=np.float32).reshape(len(p), -1)
                           for p in parts], axis=1)


@dataclass
class GraphSpec:
    """A user's float graph, and how its nodes lower onto the engine.

    Members
    -------
    gm : torch.fx.GraphModule
        The graph (an exported program's ATen graph without its guards, or an ONNX model's conversion).
    name : str
    input_shape : tuple of int
        One input without the batch.
    batch : int or None
        The batch an exported graph's reshapes name (its host nodes run on batches of exactly that many
        inputs); None when free.
    handlers : dict or None
        :func:`~.trace.lower_traced`'s function handlers (None: the torch ones).
    constants : bool
        ``get_attr`` nodes are weights (an exported graph).
    supported : str or None
        What the engine runs, for refusals.
    host_refusal : callable
        ``host_refusal(node) -> str or None``: why the host cannot run ``node``, or None.
    """
    gm: fx.GraphModule
    name: str
    input_shape: tuple[int, ...]
    batch: int | None = None
    handlers: dict | None = None
    constants: bool = False
    supported: str | None = None
    host_refusal: Callable[[fx.Node], str | None] = lambda node: None

    def lower(self, gm: fx.GraphModule, input_shape: tuple[int, ...], lanes: int, *, name: str,
              any_output: bool = False) -> EngineNet:
        """``gm`` (this graph, or a chain of it) lowered with this graph's handlers."""
        return lower_traced(gm, input_shape, lanes, name=name, handlers=self.handlers, constants=self.constants,
                            shape_batch=self.batch or 2, replay_batch=self.batch or 1, supported=self.supported,
                            any_output=any_output)

    def handler(self, node: fx.Node):
        """The engine's handler of ``node``, or None."""
        if node.op == "call_module":
            return MODULE_HANDLERS.get(type(self.gm.get_submodule(node.target)))
        if node.op in ("call_function", "call_method"):
            return (FUNCTION_HANDLERS if self.handlers is None else self.handlers).get(node.target)
        return None


def op_name(gm: fx.GraphModule, node: fx.Node) -> str:
    """``OPERATOR (node 'n')``: how the partition names a host operator."""
    return describe(node, gm.get_submodule(node.target) if node.op == "call_module" else None).removeprefix(
        "operator ")


@dataclass
class Chain:
    """An engine segment of a partitioned graph: a chain of its nodes, one engine job.

    Members
    -------
    name : str
        ``first..last`` node names.
    input : str
        The node whose tensor the chain reads.
    nodes : list of str
        The chain's nodes; the last one's tensor is its output.
    output_shape : tuple of int
        The output tensor's shape without the batch.
    output_index : numpy.ndarray or None
        For each element of the output tensor, its index in the engine's output vector (None: the first
        ``prod(output_shape)`` values in order).
    net : EngineNet or None
        The chain lowered (at compression; None when rebuilt from a program).
    """
    name: str
    input: str
    nodes: list[str]
    output_shape: tuple[int, ...]
    output_index: np.ndarray | None = None
    net: EngineNet | None = None

    @property
    def ops(self) -> list[str]:
        """The chain's lowered operators, one line each (its ``input:`` line is what the host writes)."""
        return list(self.net.source) if self.net is not None else []

    def record(self) -> dict:
        """What a program's engine segment records of the chain (besides its name and ops)."""
        return {"input_node": self.input, "nodes": list(self.nodes), "output_shape": list(self.output_shape),
                **({} if self.output_index is None else {"output_index": self.output_index.tolist()})}

    @classmethod
    def from_record(cls, seg: dict) -> "Chain":
        index = seg.get("output_index")
        return cls(seg["name"], seg["input_node"], list(seg["nodes"]), tuple(seg["output_shape"]),
                   None if index is None else np.asarray(index, dtype=np.int64))


@dataclass
class HostPart:
    """A host segment: nodes the host runs in float between engine chains, each named by operator and node."""
    name: str
    nodes: list[str]
    ops: list[str] = field(default_factory=list)


def read_back(y, output_index: np.ndarray | None, output_shape) -> torch.Tensor:
    """An engine chain's output vectors ``y`` (n, values) as its output tensor (n, *output_shape)."""
    y = torch.as_tensor(np.asarray(y, dtype=np.float32)) if not isinstance(y, torch.Tensor) else y.float()
    size = int(np.prod(output_shape))
    y = y[:, torch.from_numpy(output_index)] if output_index is not None else y[:, :size]
    return y.reshape(len(y), *output_shape)


def float_call(chain: Chain) -> Callable[[torch.Tensor], torch.Tensor]:
    """The chain's lowered network in float, as the host calls a chain."""
    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return read_back(chain.net(x), chain.output_index, chain.output_shape)
    return call


class HostGraph:
    """A graph run on the host in float, each engine chain a call on all the inputs at once.

    Parameters
    ----------
    spec : GraphSpec
    chains : list of Chain

    Raises
    ------
    GraphError
        A recorded node the graph does not have (the program was partitioned from another graph).
    """

    def __init__(self, spec: GraphSpec, chains: list[Chain]):
        self.spec, self.chains = spec, chains
        nodes = {n.name: n for n in spec.gm.graph.nodes}
        missing = [name for c in chains for name in [c.input, *c.nodes] if name not in nodes]
        if missing:
            raise GraphError(f"{spec.name}: the graph has no node {missing[0]!r}, which the program's partition "
                             "names: it was partitioned from another graph")
        self.output_of = {nodes[c.nodes[-1]]: (c, nodes[c.input]) for c in chains}
        self.inner = {nodes[name] for c in chains for name in c.nodes[:-1]}
        self.nodes = nodes

    def run(self, x: np.ndarray, calls: dict[str, Callable] | None = None,
            capture: tuple[str, ...] = ()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The graph's flat outputs (n, values) on inputs ``x`` (n, *input_shape).

        Parameters
        ----------
        calls : dict, optional
            Chain name -> ``call(x) -> output`` on every input together (torch tensors); None runs the float
            graph's own nodes.
        capture : tuple of str
            Node names whose tensors to return too (as (n, ...) arrays).
        """
        x = np.asarray(x, dtype=np.float32)
        n, step = len(x), self.spec.batch or HOST_BATCH
        chunks = [_padded(torch.from_numpy(x[i:i + step]), self.spec.batch) for i in range(0, n, step)]
        env: dict[fx.Node, list] = {}
        gm = self.spec.gm
        result = None
        with torch.no_grad():
            for node in gm.graph.nodes:
                if node.op == "placeholder":
                    env[node] = chunks
                elif node.op == "get_attr":
                    env[node] = [_attribute(gm, node.target)] * len(chunks)
                elif node.op == "output":
                    result = [fx.node.map_arg(node.args[0], lambda a, c=c: env[a][c]) for c in range(len(chunks))]
                elif calls is not None and node in self.inner:
                    continue        # inside an engine chain: the chain's call computes its output
                elif calls is not None and node in self.output_of:
                    chain, inp = self.output_of[node]
                    y = calls[chain.name](torch.cat(env[inp])[:n])
                    env[node] = [_padded(y[i:i + step], self.spec.batch) for i in range(0, n, step)]
                else:
                    env[node] = [_run_node(gm, node, env, c) for c in range(len(chunks))]
        captured = {name: torch.cat(env[self.nodes[name]])[:n].numpy() for name in capture}
        return np.concatenate([flat_outputs(r) for r in result])[:n], captured


def _padded(t: torch.Tensor, batch: int | None) -> torch.Tensor:
    """``t`` with zero rows up to ``batch`` (a graph of fixed batch); as it is when the batch is free."""
    if batch is None or len(t) == batch:
        return t
    return torch.cat([t, torch.zeros((batch - len(t), *t.shape[1:]), dtype=t.dtype)])


def _run_node(gm: fx.GraphModule, node: fx.Node, env: dict, c: int):
    """``node`` on batch ``c`` of its inputs."""
    args = fx.node.map_arg(node.args, lambda a: env[a][c])
    kwargs = fx.node.map_arg(node.kwargs, lambda a: env[a][c])
    if node.op == "call_module":
        return gm.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    return node.target(*args, **kwargs)


class PartitionedNet(nn.Module):
    """A partitioned graph as a module: raw inputs in, the graph's flat outputs out, each chain a call."""

    def __init__(self, host: HostGraph, calls: dict[str, Callable]):
        super().__init__()
        self.host, self.calls = host, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.host.run(torch.as_tensor(x).numpy(), self.calls)[0])


@dataclass
class Partition:
    """A graph split into engine chains and host parts, in execution order."""
    spec: GraphSpec
    segments: list
    host: HostGraph

    @property
    def chains(self) -> list[Chain]:
        return [s for s in self.segments if isinstance(s, Chain)]

    def float_net(self) -> PartitionedNet:
        """The host's graph with each chain's lowered network in float (checked against the float model)."""
        return PartitionedNet(self.host, {c.name: float_call(c) for c in self.chains})


def host_graph(spec: GraphSpec, segments: list[dict]) -> HostGraph:
    """The host's graph of a partitioned program's ``segments`` records, on the graph ``spec`` (its model file)."""
    return HostGraph(spec, [Chain.from_record(s) for s in segments if s["kind"] == "engine"])


def pt2_host_refusal(node: fx.Node) -> str | None:
    """Why the host cannot run a node of an exported graph: a higher-order operator (``torch.cond``,
    ``while_loop``, ``map``: control flow over subgraphs) is not one operator on tensors."""
    if isinstance(node.target, torch._ops.HigherOrderOperator):
        return ("data-dependent control flow runs neither on the engine nor on the host; the host runs the graph's "
                "ATen operators one after another")
    return None


def partition_graph(spec: GraphSpec, lanes: int) -> Partition:
    """Split ``spec``'s graph into engine chains and host parts (see the module docstring).

    Raises
    ------
    GraphError
        An operator the host cannot run either, named with its node and what the host runs.
    NoEngineChain
        No part of the graph lowers onto the engine.
    """
    gm = spec.gm
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "get_attr", "output")]
    for node in nodes:
        why = spec.host_refusal(node)
        if why is not None and spec.handler(node) is None:
            raise GraphError(f"{describe(node)}: {why}")
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros((spec.batch or 1, *spec.input_shape)))
    except Exception as e:  # noqa: BLE001  the network's own error, as one line
        cause = e.__cause__ or e
        raise GraphError(f"{spec.name} does not run on inputs of shape {tuple(spec.input_shape)}: "
                         f"{str(cause).splitlines()[0]}") from None
    segments, host, i = [], [], 0
    while i < len(nodes):
        chain = _longest_chain(spec, nodes, i, lanes)
        if chain is None:
            host.append(nodes[i])
            i += 1
            continue
        if host:
            segments.append(host)
            host = []
        segments.append(chain)
        i += len(chain.nodes)
    if host:
        segments.append(host)
    chains = [s for s in segments if isinstance(s, Chain)]
    if not chains:
        raise NoEngineChain(f"{spec.name}: no part of the graph runs on the engine")
    out = []
    for k, s in enumerate(segments):
        if isinstance(s, Chain):
            out.append(s)
            continue
        where = f"before {segments[k + 1].name}" if k + 1 < len(segments) else f"after {segments[k - 1].name}"
        out.append(HostPart(f"host {where}", [n.name for n in s], [op_name(gm, n) for n in s]))
    return Partition(spec, out, HostGraph(spec, chains))


def _engine_node(spec: GraphSpec, node: fx.Node) -> bool:
    """A node an engine chain may hold: one with an engine handler, other than the host's output activations."""
    handler = spec.handler(node)
    return handler is not None and getattr(handler, "host_activation", None) is None


def _longest_chain(spec: GraphSpec, nodes: list[fx.Node], i: int, lanes: int) -> Chain | None:
    """The longest chain of engine nodes from ``nodes[i]`` that reads one tensor, is read only at its end and
    lowers; None when there is none."""
    stop = i
    while stop < len(nodes) and _engine_node(spec, nodes[stop]):
        stop += 1
    for j in range(stop, i, -1):
        run = nodes[i:j]
        inp = _closed(run)
        if inp is None:
            continue
        in_shape = tuple(inp.meta["tensor_meta"].shape)[1:]
        name = f"{run[0].name}..{run[-1].name}" if len(run) > 1 else run[0].name
        try:
            net = spec.lower(_chain_module(spec.gm, run, inp), in_shape, lanes, name=name, any_output=True)
        except GraphError:
            continue
        index = net.output_index
        identity = np.array_equal(index, np.arange(len(index)))
        return Chain(name, inp.name, [n.name for n in run], tuple(net.output_shape),
                     None if identity else index, net.eval())
    return None


def _is_tensor(node: fx.Node) -> bool:
    return hasattr(node.meta.get("tensor_meta"), "shape")


def _closed(run: list[fx.Node]) -> fx.Node | None:
    """The one tensor ``run`` reads from outside, when that is all it reads and only its last node is read
    outside it (a tensor); else None."""
    inside = set(run)
    outside = {a for n in run for a in n.all_input_nodes if a not in inside and a.op != "get_attr"}
    if len(outside) != 1 or not _is_tensor(next(iter(outside))) or not _is_tensor(run[-1]):
        return None
    if any(u not in inside for n in run[:-1] for u in n.users):
        return None
    return next(iter(outside))


def _chain_module(gm: fx.GraphModule, run: list[fx.Node], inp: fx.Node) -> fx.GraphModule:
    """The chain ``run`` as a graph of its own: ``inp``'s tensor in, the last node's out."""
    g = fx.Graph()
    env = {inp: g.placeholder("x")}
    for n in run:
        for a in n.all_input_nodes:
            if a not in env and a.op == "get_attr":
                env[a] = g.node_copy(a)
        env[n] = g.node_copy(n, lambda a: env[a])
    g.output(env[run[-1]])
    return fx.GraphModule(gm, g)
