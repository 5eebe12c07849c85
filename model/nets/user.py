"""Users' own networks: a model file (``.pt2``, ``.onnx``) and the user's data, as an engine task.

:func:`load_model` reads a model file through the reader registered for its
suffix (:data:`FORMATS`): a ``torch.export`` program (``torch.export.load``;
its ATen graph is lowered by :mod:`model.nets.graph.exported`) or an ONNX
model (read with ``onnx``, converted by :mod:`model.nets.graph.onnx_import`,
with onnxruntime as the float reference).  :func:`user_task` lowers it and
pairs it with the user's data (:func:`load_calibration`, :func:`load_eval`):

* the calibration inputs (``--calibration FILE.npy``) calibrate activations and
  are the distillation set of the methods that fine-tune;
* the evaluation set (``--eval FILE.npz``, arrays ``x`` and ``y``) scores the
  program: integer ``y`` are labels (``accuracy``), float ``y`` reference
  outputs (``cosine``, the mean cosine, and ``top1_agreement``); without it the
  float model's outputs on the calibration inputs are the reference.

Every bad input (an unreadable file, a dynamic shape without an input shape,
data of the wrong shape or type, an operator the engine cannot run) is a
:class:`UserModelError`: one line.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.contract.errors import NPZ_READ_ERRORS, VqeError
from model.nets.distill import DistillSet
from model.nets.graph.partition import GraphSpec, NoEngineChain, Partition, flat_outputs, partition_graph
from model.nets.graph.trace import EngineNet, GraphError
from model.nets.inputs import USER_DATASET

#: Largest difference between the converted ONNX model and onnxruntime, and between the lowered network
#: and the float model, relative to the outputs' largest magnitude (at least 1): float32 sums in another
#: order differ in the last places, a wrongly converted operator by far more.
FLOAT_TOLERANCE = 1e-3
#: Inputs per float-reference batch.
REFERENCE_BATCH = 256


class UserModelError(VqeError, ValueError):
    """A user's model or data that cannot be used: one line saying why."""


@dataclass
class UserModel:
    """A user's float network, read from its file.

    Members
    -------
    name : str
        The file's stem (the program's ``network``).
    format : str
        ``"pt2"`` or ``"onnx"``.
    path : Path
    sha256 : str
        Of the file's bytes.
    input_shape : tuple of int
        One input without the batch dimension.
    reference : callable
        ``reference(x) -> numpy.ndarray``: the float model's outputs (n, values: every output flattened and
        concatenated) on raw inputs ``x`` (n, *input_shape); onnxruntime for an ONNX model.
    lower : callable
        ``lower(lanes) -> EngineNet``.
    converted : torch.nn.Module or None
        An ONNX model's conversion to torch (what is lowered), checked against onnxruntime.
    graph : GraphSpec or None
        The float graph the engine and the host share when it does not lower whole (:meth:`plan`).
    """
    name: str
    format: str
    path: Path
    sha256: str
    input_shape: tuple[int, ...]
    reference: Callable[[np.ndarray], np.ndarray]
    lower: Callable[[int], EngineNet]
    converted: nn.Module | None = None
    graph: GraphSpec | None = None

    def source(self) -> dict:
        """What a program records of where it comes from (``source``)."""
        return {"file": self.path.name, "format": self.format, "sha256": self.sha256,
                "input_shape": list(self.input_shape)}

    def plan(self, lanes: int) -> EngineNet | Partition:
        """The whole graph lowered (one engine job) when it lowers; else its partition between the engine and
        the host (:func:`model.nets.graph.partition.partition_graph`).

        Raises
        ------
        UserModelError
            An operator neither the engine nor the host runs; or no part of the graph runs on the engine (the
            whole graph's refusal).
        """
        try:
            return self.lower(lanes)
        except UserModelError as whole:
            if self.graph is None:
                raise
            try:
                with _quiet("torch.export"):
                    return partition_graph(self.graph, lanes)
            except NoEngineChain:
                raise whole from None       # no part runs on the engine: the whole graph's refusal
            except GraphError as e:
                raise UserModelError(f"{self.name}: {e}") from None


def _batched(fn: Callable[[np.ndarray], np.ndarray], batch: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` on any number of inputs: in chunks of ``batch`` (the model's fixed batch; the last chunk
    padded with zeros), or of :data:`REFERENCE_BATCH` when the batch is free."""
    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        step = batch or REFERENCE_BATCH
        parts = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            if batch and len(chunk) < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), np.float32)])
            parts.append(fn(chunk)[:min(step, len(x) - i)])
        return np.concatenate(parts)
    return run


def parse_shape(text: str | tuple | list | None) -> tuple[int, ...] | None:
    """``"1,28,28"`` (or a tuple) as a shape of positive ints; None stays None."""
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise UserModelError(f"--input-shape takes positive integers separated by commas (e.g. 1,28,28), "
                             f"got {text!r}") from None
    if not shape or min(shape) < 1:
        raise UserModelError(f"--input-shape takes positive integers separated by commas (e.g. 1,28,28), got {text!r}")
    return shape


def _resolve_shape(path: Path, dims: list, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """The input shape (no batch) from the file's dims (ints, or names of dynamic ones) and ``--input-shape``."""
    rest = dims[1:]
    dynamic = [i + 1 for i, d in enumerate(rest) if not isinstance(d, int)]
    if input_shape is None:
        if dynamic:
            raise UserModelError(f"{path.name}: input dimension {dynamic[0]} is dynamic ({rest[dynamic[0] - 1]!r}); "
                                 "give --input-shape (the input without its batch, e.g. 1,28,28)")
        return tuple(rest)
    if len(input_shape) != len(rest) or any(isinstance(d, int) and d != s for d, s in zip(rest, input_shape)):
        raise UserModelError(f"{path.name}: --input-shape {','.join(map(str, input_shape))} does not match the "
                             f"model's input {tuple(d if isinstance(d, int) else '?' for d in rest)} (batch left out)")
    return tuple(input_shape)


def _lowering(name: str, lower: Callable[[int], EngineNet]) -> Callable[[int], EngineNet]:
    def run(lanes: int) -> EngineNet:
        try:
            with _quiet("torch.export"):
                return lower(lanes).eval()
        except GraphError as e:
            raise UserModelError(f"{name}: {e}") from None
    return run


def _load_pt2(path: Path, input_shape, sha: str) -> UserModel:
    from model.nets.graph.exported import ATEN_HANDLERS, lower_exported, supported_aten
    from model.nets.graph.partition import pt2_host_refusal
    from model.nets.graph.trace import FUNCTION_HANDLERS
    try:
        ep = torch.export.load(str(path))
        gm = ep.module()
    except Exception as e:  # noqa: BLE001  a corrupted archive fails in many ways; one line names it
        raise UserModelError(f"{path.name}: not a readable torch.export program: {_first_line(e)}") from None
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UserModelError(f"{path.name}: the program takes {len(inputs)} inputs; the engine takes one")
    val = inputs[0].meta.get("val")
    if val is None or not hasattr(val, "shape") or val.dim() < 2:
        raise UserModelError(f"{path.name}: its input is not a tensor with a batch dimension")
    dims = [int(d) if isinstance(d, int) or str(d).isdigit() else str(d) for d in val.shape]
    shape = _resolve_shape(path, dims, input_shape)
    batch = dims[0] if isinstance(dims[0], int) else None
    module = _without_guards(gm)

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return flat_outputs(module(torch.from_numpy(x)))
    spec = GraphSpec(module, path.stem, shape, batch, {**FUNCTION_HANDLERS, **ATEN_HANDLERS}, True,
                     f"ATen operators {supported_aten()}", pt2_host_refusal)
    return UserModel(path.stem, "pt2", path, sha, shape, _batched(reference, batch),
                     _lowering(path.stem, lambda lanes: lower_exported(gm, shape, batch or 1, lanes, name=path.stem)),
                     graph=spec)


@contextmanager
def _quiet(logger: str):
    """``logger``'s messages and Python's warnings silenced: the one-line error says what went wrong, and torch's
    own deprecation warnings about its archive format are not the user's concern."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _without_guards(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The exported module without its input checks, which a free (``--input-shape``) shape may fail."""
    gm = torch.fx.GraphModule(gm, gm.graph.__deepcopy__())
    for node in reversed(list(gm.graph.nodes)):
        if node.op == "call_module" and not node.users:
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


def _load_onnx(path: Path, input_shape, sha: str) -> UserModel:
    import onnx
    import onnxruntime as ort
    from model.nets.graph.onnx_import import onnx_module
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  protobuf, checker and runtime errors alike
        raise UserModelError(f"{path.name}: not a readable ONNX model: {_first_line(e)}") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserModelError(f"{path.name}: the model takes {len(inputs)} inputs; the engine takes one")
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor_type.elem_type)
        raise UserModelError(f"{path.name}: its input is of type {kind}; the engine takes float inputs")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]
    if len(dims) < 2:
        raise UserModelError(f"{path.name}: its input has no batch dimension")
    shape = _resolve_shape(path, dims, input_shape)
    batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    try:
        module = onnx_module(model, shape)
    except GraphError as e:
        raise UserModelError(f"{path.stem}: {e}") from None
    name = inputs[0].name

    def reference(x: np.ndarray) -> np.ndarray:
        return flat_outputs([o.reshape(len(x), -1) for o in session.run(None, {name: x})])

    # The converted graph is lowered as it is (not traced again: the host's operators stay one module each).
    spec = GraphSpec(module, type(module).__name__, shape)
    return UserModel(path.stem, "onnx", path, sha, shape, _batched(reference, batch),
                     _lowering(path.stem, lambda lanes: spec.lower(module, shape, lanes, name=spec.name)), module,
                     graph=spec)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


#: Model readers by file suffix.
FORMATS: dict[str, Callable[[Path, tuple | None, str], UserModel]] = {".pt2": _load_pt2, ".onnx": _load_onnx}


def load_model(path: str | Path, input_shape: tuple[int, ...] | str | None = None) -> UserModel:
    """Read a model file (``.pt2`` or ``.onnx``).

    Parameters
    ----------
    path : path
    input_shape : tuple of int or str, optional
        One input without the batch dimension; needed where the file leaves a dimension dynamic.

    Raises
    ------
    UserModelError
        An unknown suffix, a missing or unreadable file, or a dynamic shape without ``input_shape``.
    """
    path = Path(path)
    reader = FORMATS.get(path.suffix.lower())
    if reader is None:
        raise UserModelError(f"{path.name}: unknown model format {path.suffix or '(no suffix)'!r}; "
                             f"--model takes {', '.join(FORMATS)}")
    if not path.is_file():
        raise UserModelError(f"{path}: no such file")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with _quiet("torch.export"):        # it logs the whole traceback of a corrupted archive
        return reader(path, parse_shape(input_shape), sha)


# --- the user's data ---------------------------------------------------------------------------


def check_inputs(x, what: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as float32 inputs (N, *input_shape); :class:`UserModelError` naming ``what`` otherwise."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise UserModelError(f"{what}: inputs must be a float array, got {kind}")
    if x.shape[1:] != tuple(input_shape) or len(x) < 1:
        raise UserModelError(f"{what}: inputs of shape {x.shape} do not match the model's input "
                             f"(N, {', '.join(map(str, input_shape))})")
    if not np.all(np.isfinite(x)):
        raise UserModelError(f"{what}: inputs hold NaN or infinite values")
    return x.astype(np.float32)


def load_calibration(path: str | Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """Calibration inputs from a ``.npy`` file: a float array (N, *input_shape)."""
    path = Path(path)
    try:
        x = np.load(path, allow_pickle=False)
    except NPZ_READ_ERRORS as e:
        raise UserModelError(f"{path}: not a readable .npy array: {_first_line(e)}") from None
    if not isinstance(x, np.ndarray):
        raise UserModelError(f"{path}: --calibration takes one .npy array, not an .npz archive")
    return check_inputs(x, str(path), input_shape)


def load_eval(path: str | Path, input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """An evaluation set from a ``.npz`` file: ``x`` (N, *input_shape) floats and ``y`` (N,) integer labels or
    (N, values) float reference outputs."""
    path = Path(path)
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise UserModelError(f"{path}: --eval takes an .npz archive with arrays x and y, not one .npy array")
        with f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise UserModelError(f"{path}: no array {missing[0]!r}; the file needs arrays x (inputs) and y "
                                     "(integer labels or float reference outputs)")
            x, y = f["x"], f["y"]
    except UserModelError:
        raise
    except (AttributeError, *NPZ_READ_ERRORS) as e:
        raise UserModelError(f"{path}: not a readable .npz archive: {_first_line(e)}") from None
    x = check_inputs(x, str(path), input_shape)
    if y.dtype.kind not in "iuf" or len(y) != len(x) or (y.dtype.kind in "iu" and y.ndim != 1):
        raise UserModelError(f"{path}: y must be integer labels (N,) or float reference outputs (N, values) for "
                             f"the {len(x)} inputs, got {y.dtype} {y.shape}")
    return x, (y.astype(np.int64) if y.dtype.kind in "iu" else y.astype(np.float32).reshape(len(y), -1))


# --- quality -----------------------------------------------------------------------------------


def cosine_metrics(out: np.ndarray, ref: np.ndarray) -> dict:
    """Mean cosine of each output row with its reference row, and how often their arg-maxes agree."""
    num = np.sum(out * ref, axis=1)
    den = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-30), (np.abs(num) == 0).astype(np.float64))
    return {"cosine": float(np.mean(cos)),
            "top1_agreement": float(np.mean(np.argmax(out, axis=1) == np.argmax(ref, axis=1)))}


def user_metrics(out: np.ndarray, y: np.ndarray) -> dict:
    """Quality of flat outputs ``out`` against ``y``: accuracy for integer labels, else :func:`cosine_metrics`."""
    if y.dtype.kind in "iu":
        return {"accuracy": float(np.mean(np.argmax(out, axis=1) == y))}
    return cosine_metrics(out, y)


def check_eval_width(user: UserModel, y: np.ndarray, outputs: int, what: str = "--eval") -> None:
    """Refuse labels past the outputs, or reference outputs of another width."""
    if y.dtype.kind in "iu" and (y.min() < 0 or y.max() >= outputs):
        raise UserModelError(f"{what}: labels must be 0..{outputs - 1} (the model has {outputs} outputs), "
                             f"got {y.min()}..{y.max()}")
    if y.dtype.kind == "f" and y.shape[1] != outputs:
        raise UserModelError(f"{what}: reference outputs have {y.shape[1]} values; the model has {outputs}")


class _Reference(nn.Module):
    """The float reference as a module (onnxruntime for an ONNX model), for the quality functions."""

    def __init__(self, reference: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self.reference = reference

    def forward(self, x):
        return torch.from_numpy(self.reference(torch.as_tensor(x).numpy()))


@dataclass
class UserTask:
    """A user's model ready for an engine method: what :class:`model.nets.tasks.EngineTask` and
    :class:`model.nets.tasks.EngineData` hold for a zoo network, and the checks done on the way.

    Members
    -------
    task : model.nets.tasks.EngineTask
    data : model.nets.tasks.EngineData
    checks : dict
        ``lowered_max_abs_diff`` (the lowered network against the float reference on the calibration
        inputs) and, for ONNX, ``onnx_max_abs_diff`` (the converted module against onnxruntime).
    """
    task: object
    data: object
    checks: dict


def user_task(user: UserModel, lanes: int, calibration: np.ndarray,
              evaluation: tuple[np.ndarray, np.ndarray] | None = None, net: EngineNet | None = None) -> UserTask:
    """The user's model lowered for ``lanes`` lanes (or as ``net``, lowered already), with its data and quality
    metric.

    The lowered network is checked against the float reference on the calibration inputs (and an ONNX
    model's conversion against onnxruntime): a difference beyond :data:`FLOAT_TOLERANCE` of the outputs'
    magnitude is refused, naming it.
    """
    from model.nets.tasks import EngineTask, SourceOutputs
    net = user.lower(lanes) if net is None else net
    _maps_fit(user.name, net)
    ref = user.reference(calibration)
    checks = _converted_check(user, calibration, ref)
    checks["lowered_max_abs_diff"] = _agree(user, "the lowered network and the float model",
                                            _forward(SourceOutputs(net, net.outputs), calibration), ref)
    single = len(net.outputs) == 1 and net.outputs[0].get("activation") in ("softmax", "log_softmax")
    train = DistillSet(calibration, kind="logits" if single else "regression")
    return UserTask(EngineTask(user.name, _Reference(user.reference), net),
                    _user_data(user, train, calibration, ref, evaluation), checks)


def _converted_check(user: UserModel, calibration: np.ndarray, ref: np.ndarray) -> dict:
    """An ONNX model's conversion against onnxruntime on the calibration inputs (``onnx_max_abs_diff``)."""
    if user.converted is None:
        return {}
    return {"onnx_max_abs_diff": _agree(user, "the converted ONNX model and onnxruntime",
                                        _forward(user.converted, calibration), ref)}


def _user_data(user: UserModel, train: DistillSet, calibration: np.ndarray, ref: np.ndarray,
               evaluation: tuple[np.ndarray, np.ndarray] | None):
    """The user's data and quality metric: against ``evaluation``'s ``y``, else the float model's outputs ``ref``
    on the calibration inputs."""
    from model.nets.tasks import EngineData
    if evaluation is None:
        def quality(model):
            return cosine_metrics(_forward(model, calibration), ref)
        return EngineData(train, "cosine", quality, USER_DATASET)
    x, y = evaluation
    check_eval_width(user, y, ref.shape[1])
    metric = "accuracy" if y.dtype.kind in "iu" else "cosine"

    def quality(model):
        return user_metrics(_forward(model, x), y)
    return EngineData(train, metric, quality, USER_DATASET, (x, y) if metric == "accuracy" else None)


@dataclass
class PartitionTask:
    """A user's model partitioned between the engine and the host, ready for an engine method on each chain.

    Members
    -------
    name : str
        The model's name (every chain's job is a job of it).
    partition : Partition
    full : torch.nn.Module
        The float model (the reference).
    data : model.nets.tasks.EngineData
        The whole model's data and quality metric (of a module on the raw inputs: the host's graph with its
        chains' engine jobs in it).
    checks : dict
        ``partitioned_max_abs_diff`` (the host's graph with each chain lowered, in float, against the float
        model on the calibration inputs) and, for ONNX, ``onnx_max_abs_diff``.
    inputs : dict
        Chain name -> its inputs on the calibration inputs (the float graph's tensors at the chain's input).
    """
    name: str
    partition: Partition
    full: nn.Module
    data: object
    checks: dict
    inputs: dict

    def chain_task(self, chain) -> tuple[object, object]:
        """An engine method's task and data for ``chain``: its lowered network, distilled (and scored by the
        mean cosine) against that network in float on its calibration inputs."""
        from model.nets.tasks import EngineData, EngineTask
        x = self.inputs[chain.name]
        ref = _forward(chain.net, x)
        data = EngineData(DistillSet(x, kind="regression"), "cosine",
                          lambda model: cosine_metrics(_forward(model, x), ref), USER_DATASET)
        return EngineTask(self.name, chain.net, chain.net), data


def partition_task(user: UserModel, partition: Partition, calibration: np.ndarray,
                   evaluation: tuple[np.ndarray, np.ndarray] | None = None) -> PartitionTask:
    """The user's partitioned model with its data: each chain's inputs captured by running the float graph on
    the calibration inputs, the host's graph with every chain lowered checked against the float model."""
    for chain in partition.chains:
        _maps_fit(f"{user.name} ({chain.name})", chain.net)
    ref = user.reference(calibration)
    checks = _converted_check(user, calibration, ref)
    checks["partitioned_max_abs_diff"] = _agree(
        user, "the partitioned network (host and lowered chains in float) and the float model",
        _forward(partition.float_net(), calibration), ref)
    _, inputs = partition.host.run(calibration, capture=tuple(c.input for c in partition.chains))
    data = _user_data(user, DistillSet(calibration, kind="regression"), calibration, ref, evaluation)
    return PartitionTask(user.name, partition, _Reference(user.reference), data, checks,
                         {c.name: inputs[c.input] for c in partition.chains})


def _forward(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([flat_outputs(model(torch.from_numpy(x[i:i + REFERENCE_BATCH])))
                               for i in range(0, len(x), REFERENCE_BATCH)])


def _agree(user: UserModel, what: str, out: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.max(np.abs(out - ref))) if out.shape == ref.shape else float("inf")
    scale = max(1.0, float(np.max(np.abs(ref))))
    if not diff <= FLOAT_TOLERANCE * scale:
        raise UserModelError(f"{user.name}: {what} disagree on the calibration inputs (max abs diff {diff:.3g}, "
                             f"tolerance {FLOAT_TOLERANCE * scale:.3g}); the model uses an operator this version "
                             "converts wrongly")
    return diff


def _maps_fit(name: str, net: EngineNet) -> None:
    from model.nets.tasks import TaskError, check_maps_fit
    try:
        check_maps_fit(name, net)
    except TaskError as e:
        raise UserModelError(str(e)) from None
