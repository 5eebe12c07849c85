"""``vqe compress``: network -> compression method -> int8 lowering -> program file (or a model-level result).

Methods are looked up in the registry (:mod:`model.compress.registry`); this
module prepares what every engine method needs (the network split into host
lowered onto the engine's layers, the data, the calibration images), runs the
method, and measures the program it returns on the golden model.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

import model.compress.catalog  # noqa: F401  registers every method
from model.compress.registry import (CompressError, CompressOptions, EngineJob, check_network, check_options,
                                     get_method, method_names)
from model.contract.config import LANES, WEIGHT_SRAM_WORDS_MAX, WORDS_PER_KIB
from model.contract.errors import ProgramError
from model.contract.layout import PES
from model.nets.graph.partition import Partition
from model.nets.registry import engine_networks
from model.nets.tasks import TaskError, engine_data, engine_task
from model.program.file import Program
from model.program.writer import SPARSE_FORMATS, lay_out_for_pes, place_in_weight_sram

MAX_CODEBOOK = 1 << 16

__all__ = ["CompressError", "CompressOptions", "compress", "compress_any", "compress_model", "golden_accuracy"]


def golden_accuracy(program: Program, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the golden model (the engine's exact arithmetic) on raw float inputs ``x``."""
    from model.compress.program_net import program_outputs
    from model.program.host import predicted_classes
    return float(np.mean(predicted_classes(program.meta, program_outputs(program, x)) == y))


def result_kind(method: str, network: str, options: CompressOptions | None = None) -> str:
    """``"engine"`` when ``method`` writes an engine program for ``network``, else ``"model"``.

    A network the engine runs gets a model-level result when ``options`` ask for something only the
    model-level fit takes (``--method universal --codebook-size 1024``: the engine's ROM is the 128 prefix).
    """
    m = get_method(method)
    if "engine" in m.fns and (network in engine_networks() or "model" not in m.fns):
        if options is not None and "model" in m.fns:
            default = CompressOptions()
            asked = {f.name for f in fields(CompressOptions) if getattr(options, f.name) != getattr(default, f.name)}
            if any(not m.takes("engine", o) and m.takes("model", o) for o in asked):
                return "model"
        return "engine"
    return "model"


def _checked(network: str, method: str, kind: str, o: CompressOptions):
    """The method's ``kind`` function, once the options and the network passed every check (before any
    data is loaded): the common ones, then the method's."""
    m = get_method(method)
    _check_common(network, kind, o)
    check_options(m, kind, o)
    check_network(m, kind, network)
    return m.fns[kind]


def _check_common(network: str | None, kind: str, o: CompressOptions) -> None:
    """The options every method takes; ``network`` None for a user's model (no zoo name to check)."""
    if o.lanes not in LANES:
        raise CompressError(f"--lanes must be one of {', '.join(map(str, LANES))}, got {o.lanes}")
    if o.codebook_size is not None and not 1 <= o.codebook_size <= MAX_CODEBOOK:
        raise CompressError(f"--codebook-size must be 1..{MAX_CODEBOOK}, got {o.codebook_size}")
    if not 0 <= o.weight_sram_kib <= WEIGHT_SRAM_WORDS_MAX // WORDS_PER_KIB:
        raise CompressError(f"--weight-sram must be 0..{WEIGHT_SRAM_WORDS_MAX // WORDS_PER_KIB} KiB, "
                            f"got {o.weight_sram_kib}")
    if o.pes not in PES:
        raise CompressError(f"--pes must be one of {', '.join(map(str, PES))}, got {o.pes}")
    if o.calibration < 1:
        raise CompressError("--calibration must be at least 1 image")
    if o.sparse_format not in SPARSE_FORMATS:
        raise CompressError(f"--sparse-format must be one of {', '.join(SPARSE_FORMATS)}, got {o.sparse_format!r}")
    if o.sparse_format == "columns" and o.pes != 1:
        raise CompressError(f"--sparse-format columns runs on one processing element (the column unit's slots are "
                            f"the lanes): leave out --pes {o.pes}")
    if kind == "engine" and network is not None and network not in engine_networks():
        raise CompressError(f"unknown network {network!r}; the engine runs {', '.join(engine_networks())}"
                            f" (pq/rq/lr2vq take any zoo network)")


def compress_any(network: str, method: str, options: CompressOptions = CompressOptions()) -> Program | dict:
    """Run a registered method: an engine :class:`Program`, or a model-level result (a dict)."""
    kind = result_kind(method, network, options)
    fn = _checked(network, method, kind, options)
    return fn(network, options) if kind == "model" else _engine_program(network, fn, options)


def compress(network: str, method: str, **options) -> Program:
    """Compress an engine network into a :class:`Program`, with its accuracies measured.

    Parameters
    ----------
    network : str
        A name in :func:`model.nets.registry.engine_networks`.
    method : str
        A registered method that writes engine programs (:func:`model.compress.registry.method_names`).
    **options
        Fields of :class:`~model.compress.registry.CompressOptions`: ``lanes``,
        ``codebook_size``, ``finetune_epochs``, ``calibration``, ``seed``,
        ``progress``, ``bits_per_weight``, ``codebook``.
    """
    try:
        opts = CompressOptions(**options)
    except TypeError as e:
        raise CompressError(str(e)) from None
    if "engine" not in get_method(method).fns:
        raise CompressError(f"--method {method} writes a model-level result, not an engine program")
    return _engine_program(network, _checked(network, method, "engine", opts), opts)


def _engine_program(network: str, method_fn, o: CompressOptions) -> Program:
    try:
        task = engine_task(network, o.lanes, seed=o.seed, progress=o.progress)
    except TaskError as e:
        raise CompressError(str(e)) from None
    data = engine_data(network, o.seed)
    return _program(network, method_fn, o, task, data)


def _program(network: str, method_fn, o: CompressOptions, task, data, info: dict | None = None) -> Program:
    """Run the engine method on a lowered network and its data; measure the program on the golden model."""
    pool = np.asarray(data.train.inputs)
    rng = np.random.default_rng(o.seed)
    calib = pool[rng.choice(len(pool), size=min(o.calibration, len(pool)), replace=False)]
    float_quality = data.quality(task.full)
    info = {"metric": data.metric, "float_quality": float_quality[data.metric], "seed": o.seed,
            "calibration_images": len(calib), **(info or {})}
    if data.test is not None:
        info.update(float_accuracy=float_quality[data.metric], test_images=len(data.test[0]))
    program = _job(network, method_fn, o, task, data, calib, info)
    program.meta["dataset"] = data.dataset
    if data.test is not None:       # a classifier: the host's class of the int8 outputs, on the whole test set
        program.meta["info"]["int8_accuracy"] = golden_accuracy(program, *data.test)
        program.meta["info"]["int8_quality"] = program.meta["info"]["int8_accuracy"]
    else:
        from model.compress.program_net import ProgramNet
        metrics = data.quality(ProgramNet(program))
        program.meta["info"].update(int8_quality=metrics[data.metric], int8_metrics=metrics)
    return program


def _job(network: str, method_fn, o: CompressOptions, task, data, calib: np.ndarray, info: dict) -> Program:
    """The engine method's program of a lowered network (one job), with the host's input and output records, laid
    out for ``o.pes`` processing elements and placed in the weight SRAM from word 0."""
    program = method_fn(EngineJob(network, o, task, data, calib, info))
    # A method that replaces the network (LVQ) records its own input and outputs.
    program.meta.update({k: v for k, v in task.meta().items() if k not in program.meta})
    try:
        program = lay_out_for_pes(program, o.pes)
    except ProgramError as e:
        raise CompressError(f"--pes {o.pes}: {e}") from None
    return place_in_weight_sram(program, o.weight_sram_kib * WORDS_PER_KIB)


def compress_model(model, method: str, calibration, *, evaluation=None, input_shape=None,
                   options: CompressOptions = CompressOptions()) -> Program:
    """Compress a user's model file (``.pt2``, ``.onnx``) into a :class:`Program`, with its quality measured.

    Parameters
    ----------
    model : path or model.nets.user.UserModel
        The model file, or one read by :func:`model.nets.user.load_model`.
    method : str
        A registered method that writes engine programs.
    calibration : path or numpy.ndarray
        Inputs (N, *input shape), float: activation calibration, and the distillation set of the methods
        that fine-tune.
    evaluation : path or (x, y), optional
        The evaluation set (``y`` integer labels, or float reference outputs); default the float model's
        outputs on the calibration inputs.
    input_shape : tuple of int or str, optional
        One input without its batch, where the file leaves it dynamic.
    options : CompressOptions

    Returns
    -------
    Program
        ``dataset`` is ``"user"``; ``source`` names the file (its name, format, SHA-256 and input shape).

    Raises
    ------
    CompressError, model.nets.user.UserModelError
        Options the method does not take; an unreadable file or data of the wrong shape or type; an operator
        the engine cannot run.
    """
    from model.nets.user import UserModel, check_inputs, load_calibration, load_eval, load_model, user_task
    m = get_method(method)
    if "engine" not in m.fns:
        raise CompressError(f"--method {method} writes a model-level result; a model file takes the methods that "
                            f"write engine programs: {', '.join(method_names('engine'))}")
    _check_common(None, "engine", options)
    check_options(m, "engine", options)
    name = model.name if isinstance(model, UserModel) else Path(model).stem
    check_network(m, "engine", name)
    user = model if isinstance(model, UserModel) else load_model(model, input_shape)
    x = (check_inputs(calibration, "calibration", user.input_shape) if isinstance(calibration, np.ndarray)
         else load_calibration(calibration, user.input_shape))
    if evaluation is not None and not isinstance(evaluation, tuple):
        evaluation = load_eval(evaluation, user.input_shape)
    plan = user.plan(options.lanes)
    info = {"eval_images": None if evaluation is None else len(evaluation[0])}
    if isinstance(plan, Partition):
        program = _partitioned_program(user, plan, m.fns["engine"], options, x, evaluation, info)
    else:
        ut = user_task(user, options.lanes, x, evaluation, net=plan)
        program = _program(user.name, m.fns["engine"], options, ut.task, ut.data, {"source_checks": ut.checks, **info})
    program.meta["source"] = user.source()
    return program


def _partitioned_program(user, plan, method_fn, o: CompressOptions, x: np.ndarray, evaluation, info: dict) -> Program:
    """A user's graph partitioned between the engine and the host: each chain one job of ``method_fn``, calibrated
    and distilled on the inputs the float graph gives it; quality end to end (the host in float, each job on the
    golden model)."""
    from model.compress.partitioned import golden_execute
    from model.nets.graph.partition import HostPart, PartitionedNet
    from model.nets.user import partition_task
    from model.program.segments import EngineSegment, HostSegment, join_segments, share_rom
    pt = partition_task(user, plan, x, evaluation)
    pick = np.random.default_rng(o.seed).choice(len(x), size=min(o.calibration, len(x)), replace=False)
    segments = []
    for seg in plan.segments:
        if isinstance(seg, HostPart):
            segments.append(HostSegment(seg.name, seg.ops, {"nodes": seg.nodes}))
            continue
        task, data = pt.chain_task(seg)
        job = _job(user.name, method_fn, o, task, data, pt.inputs[seg.name][pick],
                   {"metric": data.metric, "float_quality": 1.0, "seed": o.seed, "calibration_images": len(pick)})
        segments.append(EngineSegment(seg.name, seg.ops, job, seg.record()))
    source = user.source()
    float_quality = pt.data.quality(pt.full)
    program = join_segments(user.name, job.meta["method"], share_rom(segments),
                            host={"kind": "user-graph", "network": user.name, "source": source},
                            info=dict(info, metric=pt.data.metric, float_quality=float_quality[pt.data.metric],
                                      float_metrics=float_quality, seed=o.seed, calibration_images=len(pick),
                                      source_checks=pt.checks))
    program.meta.update(dataset=pt.data.dataset, input_shape=list(user.input_shape))
    metrics = pt.data.quality(PartitionedNet(plan.host, engine_calls(program, golden_execute)))
    program.meta["info"].update(int8_quality=metrics[pt.data.metric], int8_metrics=metrics)
    return program


def engine_calls(program: Program, execute) -> dict:
    """Each engine segment of a partitioned user's graph as the host calls it: the chain's input tensor (float) in,
    written as the job's int8 input, run by ``execute(name, job, x_int8)``, dequantized and read back as the
    chain's output tensor."""
    return {seg["name"]: _engine_call(seg, job, execute) for seg, job in program.engine_segments()}


def _engine_call(seg: dict, job: Program, execute):
    import torch

    from model.compress.program_net import dequantize
    from model.contract.fixedpoint import quantize_act
    from model.nets.graph.partition import Chain, read_back
    from model.nets.tasks import engine_input
    chain = Chain.from_record(seg)

    def call(x):
        flat = x.detach().reshape(len(x), -1).float().numpy()
        q = engine_input(job.meta, quantize_act(flat, job.meta["input_scale"]))
        real = dequantize(job, np.asarray(execute(seg["name"], job, q)))
        return read_back(torch.from_numpy(real.astype(np.float32)), chain.output_index, chain.output_shape)
    return call


