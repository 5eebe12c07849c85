"""The Python API: compress a network (a zoo name, a model file or a ``torch.nn.Module``), run a program, write
a report.  What ``vqe compress``, ``vqe run --json`` and ``vqe report`` do, as functions (``import vqe``
re-exports them).

Example
-------
>>> import vqe
>>> program = vqe.compress("net.onnx", method="kmeans", calibration="calib.npy", evaluation="e.npz")
>>> result = vqe.run(program, backend="verilator", inputs="e.npz")
>>> result["bit_exact"], result["quality"]["value"], result["cycles_per_image"]
>>> vqe.report([program], "report-dir", quick=True)

Errors a user can fix are :class:`model.contract.errors.VqeError` (one line each), as on the command line.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from model.contract.errors import VqeError
from model.nets.inputs import USER_DATASET
from model.program.file import Program


class ApiError(VqeError, ValueError):
    """An API call that cannot work as asked."""


def compress(model_or_path, method: str = "kmeans", calibration=None, *, evaluation=None, input_shape=None,
             **options) -> Program:
    """Compress a network into an engine :class:`~model.program.file.Program`, its quality measured.

    Parameters
    ----------
    model_or_path : str, path or torch.nn.Module
        A zoo network's name (``"lenet5"``), a model file (``.pt2``, ``.onnx``), or a module (exported with
        ``torch.export`` on an input of ``input_shape``, which it then needs).
    method : str
        A method that writes engine programs: ``kmeans``, ``universal``, ``pvq`` (fully-connected networks),
        ``deepcomp`` (lenet300).
    calibration : path, numpy.ndarray or int, optional
        A model's calibration inputs (N, *input shape), float: required for a file or module.  For a zoo
        network, the number of its training images (default 2000).
    evaluation : path or (x, y), optional
        A model's evaluation set: ``y`` integer labels (accuracy) or float reference outputs (mean cosine,
        top-1 agreement); default the float model's outputs on the calibration inputs.
    input_shape : tuple of int or str, optional
        One input without its batch, where the file leaves it dynamic (and for a module).
    **options
        :class:`model.compress.registry.CompressOptions` fields: ``lanes``, ``codebook_size``,
        ``finetune_epochs``, ``seed``, ``progress``, ``bits_per_weight``, ``codebook``, ``weight_sram_kib``.

    Returns
    -------
    Program
        Save it with ``program.save(path)``; ``program.meta["info"]`` holds the float and int8 qualities.
    """
    from model.compress.pipeline import compress as compress_network, compress_model
    from model.compress.registry import CompressError, CompressOptions
    from model.nets.registry import engine_networks
    options.setdefault("progress", False)
    if isinstance(model_or_path, str) and model_or_path in engine_networks():
        if evaluation is not None or input_shape is not None or isinstance(calibration, (str, os.PathLike,
                                                                                         np.ndarray)):
            raise ApiError(f"{model_or_path} is a zoo network: it brings its own data (calibration is a count)")
        return compress_network(model_or_path, method, **options,
                                **({} if calibration is None else {"calibration": int(calibration)}))
    if calibration is None:
        raise ApiError("compressing a model needs calibration inputs (calibration=FILE.npy or an array)")
    try:
        opts = CompressOptions(**options)
    except TypeError as e:
        raise CompressError(str(e)) from None
    import torch
    if isinstance(model_or_path, torch.nn.Module):
        with tempfile.TemporaryDirectory() as tmp:
            return compress_model(_export(model_or_path, input_shape, Path(tmp)), method, calibration,
                                  evaluation=evaluation, options=opts)
    return compress_model(model_or_path, method, calibration, evaluation=evaluation, input_shape=input_shape,
                          options=opts)


def _export(module, input_shape, folder: Path) -> Path:
    """``module`` saved as a ``torch.export`` program named after its class, for :func:`compress`."""
    import torch
    from model.nets.user import parse_shape
    shape = parse_shape(input_shape)
    if shape is None:
        raise ApiError("compressing a torch module needs its input_shape (one input without its batch)")
    path = folder / f"{type(module).__name__}.pt2"
    try:
        program = torch.export.export(module.eval(), (torch.zeros((1, *shape)),))
    except Exception as e:  # noqa: BLE001  torch.export's own reasons, as one line
        raise ApiError(f"torch.export cannot export {type(module).__name__}: {str(e).splitlines()[0]}") from None
    torch.export.save(program, str(path))
    return path


def run_inputs(program: Program, inputs, images: int | None, offset: int, seed: int):
    """A run's inputs: the user's (``inputs``: a ``.npz`` path, an array ``x`` or ``(x, y)``) or the program's
    default (its test set; random int8 vectors for a synthetic or user's program).

    Returns
    -------
    (x_int8, labels, x_float, y)
        The engine's inputs, integer labels (or None), the float inputs (or None) and the user's ``y`` (or None).
    """
    from model.nets.inputs import load_inputs, load_user_inputs
    if inputs is None:
        x_int8, labels, x_float = load_inputs(program.meta, images or 1, offset, seed)
        return x_int8, labels, x_float, None
    if isinstance(inputs, np.ndarray):
        inputs = {"x": inputs}
    elif isinstance(inputs, tuple):
        inputs = {"x": inputs[0], "y": inputs[1]}
    x_int8, y, x_float = load_user_inputs(program.meta, inputs, images, offset)
    return x_int8, (y if y is not None and y.dtype.kind in "iu" else None), x_float, y


def run_summary(program: Program, backend: str, x_int8, labels, x_float, y=None, *, program_path=None,
                progress: bool = False, **run_options) -> dict:
    """:func:`sim.run.run_program` with the float reference's accuracy and, given the user's ``y``, ``quality``.

    The reference is the zoo network, or a user's model file when it is found (``source.file`` next to
    ``program_path`` or in the working directory) with the recorded hash.
    """
    from sim.run import run_program
    float_outputs = None
    if program.meta.get("dataset") == USER_DATASET:
        float_outputs = _user_reference(program.meta, program_path, x_float)
        reference = None if float_outputs is None or labels is None else np.argmax(float_outputs, axis=1)
    else:
        reference = _reference_predictions(program.meta, x_float, labels, progress)
    summary = run_program(program, x_int8, labels, backend, reference_predictions=reference, progress=progress,
                          **run_options)
    if y is not None:
        summary["quality"] = _quality(program, summary, x_float, y, float_outputs)
    return summary


def run(program, backend: str = "golden", inputs=None, *, images: int | None = None, offset: int = 0,
        latency: int = 10, stall: int = 0, seed: int = 1, progress: bool = False, model=None,
        **run_options) -> dict:
    """Run a program on a backend, checked against the golden model: the dict ``vqe run --json`` prints.

    Parameters
    ----------
    program : Program or path
    backend : str
        ``golden``, ``amaranth``, ``icarus``, ``verilator`` or ``verilator-cocotb``.
    inputs : path, numpy.ndarray or (x, y), optional
        The user's inputs (``x`` (N, *input shape) float; ``y`` integer labels or float reference outputs,
        scored in ``quality``); default the program's test set.
    images, offset : int
        How many inputs from which (default: one test image, or every input given).
    latency, stall, seed : int
        DRAM timing and the stall LFSR's seed, as ``vqe run``.
    model : path, optional
        A partitioned program of a user's graph: its model file (default: the recorded file next to the program,
        or in the working directory), whose graph the host runs.
    **run_options
        ``shard_images``, ``scheduler``, ``workers``, ``vcd`` (not for a partitioned program).
    """
    program_path = None
    if not isinstance(program, Program):
        program_path = program
        program = Program.load(program)
    if program.segmented:
        from sim.partitioned import run_partitioned
        if run_options:
            raise ApiError(f"a partitioned program runs one job per engine segment in this process: leave out "
                           f"{', '.join(sorted(run_options))}")
        return run_partitioned(program, backend, inputs=inputs, images=images, offset=offset,
                               program_path=program_path, model=model, latency=latency, stall=stall, seed=seed,
                               progress=progress)
    x_int8, labels, x_float, y = run_inputs(program, inputs, images, offset, seed)
    return run_summary(program, backend, x_int8, labels, x_float, y, program_path=program_path, progress=progress,
                       latency=latency, stall=stall, seed=seed, **run_options)


def report(programs, output, *, images: int = 100, cross_check: int = 2, backend: str = "icarus",
           quick: bool = True, energy_table=None, progress: bool = False) -> Path:
    """Write the energy and area report (``vqe report``) on ``programs`` into ``output``.

    Parameters
    ----------
    programs : sequence of Program or path
        Programs given as objects are saved into ``output/programs/`` first.
    output : path
        The report directory (``REPORT.md``, ``energy.json``, ``area.json``, plots).
    images, cross_check, backend, energy_table
        As ``vqe report`` (a user's program runs on seeded random int8 inputs: its counters do not depend on
        the values).
    quick : bool
        Synthesize only the headline engine (default; the full sweep takes about an hour).

    Returns
    -------
    Path
        ``output``.
    """
    from sim.report.build import make_report
    output = Path(output)
    paths = []
    for p in programs:
        if isinstance(p, Program):
            folder = output / "programs"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{p.meta['network']}-{p.meta['method']}.vqz"
            p.save(path)
            p = path
        paths.append(Path(p))
    make_report(output, paths, images=images, cross_check=cross_check, backend=backend, quick=quick,
                energy_table=energy_table, progress=progress)
    return output


# --- references and quality --------------------------------------------------------------------


def _reference_predictions(meta: dict, x_float, labels, progress: bool):
    """A zoo network's float predictions on the images (None without labels): the accuracy to compare with."""
    if x_float is None or labels is None:
        return None
    from model.nets.networks import predict
    from model.nets.tasks import full_network
    return predict(full_network(meta["network"], progress=progress), x_float)


def _user_reference(meta: dict, program_path, x_float):
    """The float outputs of a user's model on ``x_float``, when its file (``source.file``, next to the program
    or in the working directory) is there with the recorded hash; else None."""
    from model.nets.user import load_model
    from sim.partitioned import find_model_file
    path = None if x_float is None else find_model_file(meta, program_path, strict=False)
    return None if path is None else load_model(path, tuple(meta["input_shape"])).reference(x_float)


def _quality(program: Program, summary: dict, x_float, y, float_outputs) -> dict:
    """The program's quality on the user's ``y`` (labels: accuracy; reference outputs: mean cosine and top-1
    agreement), and the float model's when its file is at hand."""
    import torch

    from model.compress.program_net import ProgramNet
    from model.nets.user import flat_outputs, user_metrics
    labels = y.dtype.kind in "iu"
    if labels:
        metrics = {"accuracy": summary["accuracy"]}
    else:
        with torch.no_grad():
            metrics = user_metrics(flat_outputs(ProgramNet(program)(torch.from_numpy(x_float))), y)
    metric = next(iter(metrics))
    return {"metric": metric, "value": metrics[metric], "metrics": metrics,
            # Labels score the backend's own outputs; reference outputs the golden model's, which a bit-exact
            # run has produced on the RTL as well.
            "measured_on": summary["backend"] if labels or summary["bit_exact"] else "golden",
            "float": None if float_outputs is None else user_metrics(float_outputs, y)}
