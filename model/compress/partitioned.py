"""Networks the engine runs in part: each of their engine modules one engine job, the host the rest.

A transformer's Linear layers are the engine's fully connected layers, applied
to every token: each becomes an engine segment (:mod:`model.program.segments`)
whose images are the tokens, and the host runs the source network's other
modules (embeddings, attention, LayerNorm, GELU, pooling) in float around them.
:class:`EngineCall` stands in for an engine module on the host: it quantizes
the module's input with the segment's input scale, has the engine (any
``execute`` function: the golden model here, an RTL backend in
:mod:`sim.partitioned`) run the job, and dequantizes its int8 outputs.

:func:`compress_universal_partitioned` calibrates each segment on the inputs the
float network gives that module on the network's distillation data, smooths
them (:func:`smoothing_factors`: the host divides each input channel by a factor
the weight column takes on), and codes every engine module against a universal
ROM: the flat one (per-row scales, nearest codewords,
:func:`model.compress.universal.fit.assign_nearest`, cached) or a staged one
(:mod:`model.compress.universal.staged`, run by the engine's RVQ mode; coded
greedily, or fitted by distillation through the engine's int8 steps with
:func:`fit_staged`); each Linear is lowered with one output scale per output
feature.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.contract.errors import NPZ_READ_ERRORS
from model.contract.fixedpoint import quantize_act
from model.golden.engine import GoldenEngine
from model.program.file import Program
from model.program.segments import EngineSegment, HostSegment, join_segments

#: ``execute(segment_name, job_program, x_int8 (n, in)) -> int8 outputs (n, out)``.
Execute = Callable[[str, Program, np.ndarray], np.ndarray]
#: Calibration vectors kept per engine module (drawn evenly from every token of the calibration data).
CALIBRATION_ROWS = 4096
#: Smoothing strength alpha (SmoothQuant, Xiao et al. 2023): c_j = max|x_j|^alpha / max|w_j|^(1 - alpha).
SMOOTHING_ALPHA = 0.5
#: A job's metadata key: the host divides input channel j by this factor before quantizing it.
INPUT_CHANNEL_SCALES = "input_channel_scales"
#: Images per golden run (bounds the DRAM image).
GOLDEN_BATCH = 2048


class EngineCall(nn.Module):
    """An engine segment in the host's network: float in, the engine's int8 arithmetic, float out.

    Parameters
    ----------
    name : str
        The module it replaces.
    program : Program
        The segment's job.
    execute : Execute
        Runs the job on int8 inputs.
    """

    def __init__(self, name: str, program: Program, execute: Execute):
        super().__init__()
        self.name, self.program, self.execute = name, program, execute
        scales = np.asarray(program.meta["output_scales"], dtype=np.float32)
        # One scale per output feature, or one for all.
        self.scales = scales if len(scales) == program.meta["output_features"] else np.float32(scales[0])
        smoothing = program.meta.get(INPUT_CHANNEL_SCALES)
        self.smoothing = None if smoothing is None else np.asarray(smoothing, dtype=np.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        meta = self.program.meta
        lead = x.shape[:-1]
        v = x.detach().reshape(-1, x.shape[-1]).float().numpy()
        q = quantize_act(v / self.smoothing if self.smoothing is not None else v, meta["input_scale"])
        out = self.execute(self.name, self.program, q).astype(np.float32) * self.scales
        return torch.from_numpy(out).reshape(*lead, out.shape[-1])


def smoothing_factors(x: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    """Per input channel, the factor the host divides it by and the weight column is multiplied by:
    ``max|x_j|**alpha / max|w_j|**(1 - alpha)`` (1 where a channel or column is all zero; all 1 for alpha 0)."""
    if alpha == 0:
        return np.ones(w.shape[1])
    ax = np.max(np.abs(x), axis=0).astype(np.float64)
    aw = np.max(np.abs(w), axis=0).astype(np.float64)
    c = ax ** alpha / np.where(aw > 0, aw, 1) ** (1 - alpha)
    return np.where((ax > 0) & (aw > 0), c, 1.0)


def golden_execute(name: str, program: Program, x_int8: np.ndarray) -> np.ndarray:
    """The golden model's outputs of one engine job on ``x_int8``."""
    engine = GoldenEngine(program.config)
    parts = []
    for i in range(0, len(x_int8), GOLDEN_BATCH):
        image, _, _ = program.dram_image(x_int8[i:i + GOLDEN_BATCH])
        parts.append(engine.run(image).outputs)
    return np.concatenate(parts)


def with_engine_segments(model: nn.Module, program: Program, execute: Execute = golden_execute) -> nn.Module:
    """A copy of the host's network ``model`` whose engine modules are ``program``'s engine segments."""
    host = copy.deepcopy(model)
    for seg, job in program.engine_segments():
        parent, _, leaf = seg["name"].rpartition(".")
        setattr(host.get_submodule(parent) if parent else host, leaf, EngineCall(seg["name"], job, execute))
    return host


@torch.no_grad()
def capture_inputs(model: nn.Module, names: list[str], run: Callable[[nn.Module], object],
                   rows: int = CALIBRATION_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """The input vectors (last dimension) each named module sees while ``run(model)`` runs, ``rows`` of each
    drawn at random (seeded) from all of them."""
    seen: dict[str, list[np.ndarray]] = {n: [] for n in names}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda mod, args, out, n=n: seen[n].append(args[0].detach().reshape(-1, args[0].shape[-1]).numpy().copy()))
        for n in names]
    try:
        run(model)
    finally:
        for h in hooks:
            h.remove()
    rng = np.random.default_rng(seed)
    out = {}
    for n, parts in seen.items():
        x = np.concatenate(parts)
        out[n] = x[rng.choice(len(x), size=min(rows, len(x)), replace=False)]
    return out


def compress_universal_partitioned(network: str, model: nn.Module, names: list[str], calibrate: Callable,
                                   host_ops: Callable[[str], tuple[list[str], list[str]]], *, codebook,
                                   lanes: int, weight_sram_words: int, seed: int = 0, progress: bool = True,
                                   alpha: float | None = None, info: dict | None = None,
                                   fit: Callable | None = None) -> Program:
    """Code each of ``model``'s modules ``names`` (``nn.Linear``) against the universal ``codebook`` as one
    engine segment; the host runs the rest.

    Parameters
    ----------
    calibrate : callable
        ``calibrate(model)`` runs the float network on its calibration data (its engine modules' inputs are
        captured from it).
    host_ops : callable
        ``host_ops(name) -> (ops before, ops after)``: the host's operators before engine module ``name``
        (empty when it follows another engine segment directly), and after it (only the last module's is read).
    alpha : float, optional
        Smoothing strength (:func:`smoothing_factors`; default :data:`SMOOTHING_ALPHA`, 0 for none).
    fit : callable, optional
        A staged ROM only: ``fit(smoothing, activations) -> UniversalNetwork``, the layers fitted to the ROM's
        stage sums with the input-channel factors ``smoothing`` (name -> factors) as column scales, training
        through the engine's int8 steps ``activations`` (:func:`fit_staged`), instead of the greedy coding.
    """
    alpha = SMOOTHING_ALPHA if alpha is None else alpha
    from model.nets.weightmat import get_module, weight_matrix
    from model.program.writer import build_program, place_in_weight_sram
    t0 = time.perf_counter()
    calib = capture_inputs(model, names, calibrate, seed=seed)
    # Smoothing: each input channel j divided by c_j on the host (as it quantizes the engine's input), each
    # weight column multiplied by it before coding, so outlier channels no longer set the int8 input's step.
    smoothing = {n: smoothing_factors(calib[n], weight_matrix(get_module(model, n)), alpha) for n in names}
    smoothed = copy.deepcopy(model)
    with torch.no_grad():
        for n in names:
            get_module(smoothed, n).weight.mul_(torch.from_numpy(smoothing[n]).to(torch.float32)[None, :])
    t1 = time.perf_counter()
    fitted = None if fit is None else fit(smoothing, _engine_activations(model, names, calib, smoothing))
    codings, depth = _codings(smoothed, codebook, names, network) if fitted is None else _fitted_codings(fitted)
    assign_seconds = time.perf_counter() - t1
    segments = []
    bar = _bar(len(names), progress, f"{network}: engine segments")
    for name in names:
        before, _ = host_ops(name)
        if before:
            segments.append(HostSegment(f"before {name}", before))
        lin = get_module(smoothed, name)
        coding, weight = codings[name]
        c = smoothing[name]
        lowered = _lower_linear(name, lin, coding, weight, calib[name] / c, lanes)
        job = build_program(lowered, codebook_depth=depth, shared_rom=codebook.codewords,
                            info={"calibration_vectors": int(len(calib[name])), "smoothing_alpha": alpha,
                                  "coding": "fit" if fitted is not None else "nearest"})
        job.meta[INPUT_CHANNEL_SCALES] = [float(v) for v in c]
        # Each job is alone on the engine: its layer starts at weight-SRAM word 0 when it fits.
        job = place_in_weight_sram(job, weight_sram_words)
        segments.append(EngineSegment(name, [f"Linear {lin.in_features}->{lin.out_features}"], job))
        bar.update(1)
    bar.close()
    _, after = host_ops(names[-1])
    if after:
        segments.append(HostSegment(f"after {names[-1]}", after))
    return join_segments(network, "universal", segments, host={"network": network},
                         info=dict(info or {}, assign_seconds=assign_seconds, codebook_size=codebook.k,
                                   codebook_sha256=codebook.content_hash(),
                                   compress_seconds=time.perf_counter() - t0,
                                   **({} if fitted is None else {"fit": _fit_facts(fitted.info)})))


def _codings(model: nn.Module, codebook, names: list[str], network: str) -> tuple[dict, int]:
    """Each module's coding against the flat or the staged universal ROM (with the module's bias) and its float
    coded weight, and the engine's codebook depth (the flat ROM's size; a staged ROM's section)."""
    from model.compress.lowering import LayerCoding, codebook_depth_for
    from model.compress.universal.staged import code_staged, is_staged, stage_shape
    from model.nets.weightmat import get_module, weight_matrix
    s_cb = float(codebook.scale)
    if is_staged(codebook):
        _, section = stage_shape(codebook)
        out = {}
        for n in names:
            w = weight_matrix(get_module(model, n))
            idx, row_scale, rec = code_staged(w, codebook)
            out[n] = (LayerCoding(codebook.codewords, idx, s_cb * row_scale.astype(np.float64),
                                  _bias(get_module(model, n)), mode="rvq", section_size=section), rec)
        return out, codebook_depth_for(section)
    coded = _cached_assignment(model, codebook, names, network)
    values = codebook.values()
    return ({layer.name: (LayerCoding(codebook.codewords, layer.indices, s_cb * layer.row_scale.astype(np.float64),
                                      _bias(get_module(model, layer.name)), mode="vq"), layer.weight(values))
             for layer in coded.layers}, codebook_depth_for(codebook.k))


def _engine_activations(model: nn.Module, names: list[str], calib: dict, smoothing: dict) -> dict:
    """Each module's int8 steps on the engine, estimated from the float network's calibration inputs: the
    input's as the lowering sets it (after smoothing), and each output feature's maximum over the float
    layer's outputs (the lowering measures the coded layer's)."""
    from model.compress.lowering import input_scale_for
    from model.compress.universal.fit import EngineActivations
    from model.contract.fixedpoint import ACT_MAX
    from model.nets.weightmat import get_module
    out = {}
    for n in names:
        lin = get_module(model, n)
        x = np.asarray(calib[n], np.float64)
        y = x @ lin.weight.detach().numpy().astype(np.float64).T + _bias(lin)
        peak = np.abs(y).max(axis=0)
        out[n] = EngineActivations(input_scale_for(x / smoothing[n]), np.asarray(smoothing[n], np.float32),
                                   (np.where(peak > 0, peak, 1.0) / ACT_MAX).astype(np.float32))
    return out


def _bias(lin: nn.Linear) -> np.ndarray:
    return lin.bias.detach().numpy().astype(np.float64) if lin.bias is not None else np.zeros(lin.out_features)


def _fitted_codings(net) -> tuple[dict, int]:
    """Each fitted layer's coding against the staged ROM (its fitted bias kept) and its float coded weight
    (the smoothed columns), and the engine's codebook depth (a section)."""
    from model.compress.lowering import LayerCoding, codebook_depth_for
    sums = net.codebook
    s_cb, values = float(sums.rom.scale), sums.values()
    out = {}
    for layer in net.layers:
        bias = np.zeros(layer.out_features) if layer.bias is None else layer.bias.astype(np.float64)
        out[layer.name] = (LayerCoding(sums.rom.codewords, sums.split(layer.indices),
                                       s_cb * layer.row_scale.astype(np.float64), bias, mode="rvq",
                                       section_size=sums.section), layer.coded_weight(values))
    return out, codebook_depth_for(sums.section)


def _fit_facts(info: dict) -> dict:
    """What a program records of its fit: the model-level (float) quality at each stage, budget and times."""
    keys = ("quality_float", "quality_nearest", "quality_hardened", "quality", "soft_steps", "hard_steps", "batch",
            "top_n", "t_start", "init_seconds", "teacher_seconds", "soft_seconds", "hard_seconds", "frac_not_nearest",
            "n_distill", "quick_eval", "beam_seconds", "fit_seconds", "engine_int8_modules")
    return {k: info[k] for k in keys if k in info}


def _lower_linear(name: str, lin: nn.Linear, coding, weight: np.ndarray, calib_x: np.ndarray, lanes: int):
    """One Linear, coded, lowered to the engine's integers with one output scale per output feature (each
    row has its own requantizer: a transformer's few outlier features would otherwise set every feature's
    step); its rows compact where they can be.  The bias is the coding's (the Linear's, or the fit's)."""
    from model.codecs.layers.vq import make_compact
    from model.compress.lowering import LoweredNetwork, lower_sequence
    bias = np.asarray(coding.bias, np.float64)
    template = nn.Sequential(nn.Linear(lin.in_features, lin.out_features))
    coded = copy.deepcopy(template)
    with torch.no_grad():
        coded[0].weight.copy_(torch.from_numpy(np.asarray(weight, np.float32)))
        coded[0].bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    outputs = [{"start": r, "stop": r + 1} for r in range(lin.out_features)]
    layers, scales, out_scales = lower_sequence(template, coded, [coding], calib_x, lanes, outputs)
    for layer in layers:
        make_compact(layer)
    return LoweredNetwork(name=name, method="universal", lanes=lanes, input_scale=scales[0],
                          output_scale=out_scales[0], layers=layers, output_scales=out_scales,
                          info={"calibration_images": int(len(calib_x)), "activation_scales": scales + out_scales})


def _cached_assignment(model: nn.Module, codebook, names: list[str], network: str):
    """:func:`model.compress.universal.fit.assign_nearest` of the modules ``names``, cached by the weights' and
    the codebook's hashes (MiniLM's 2.65M sub-vectors against 16,384 codewords take minutes)."""
    import hashlib
    from model.compress.universal.fit import assign_nearest
    from model.nets.networks import resolve_cache_dir
    from model.nets.weightmat import get_module, weight_matrix
    h = hashlib.sha256(codebook.content_hash().encode())
    for n in names:
        h.update(n.encode())
        h.update(weight_matrix(get_module(model, n)).tobytes())
    path = resolve_cache_dir() / f"{network}-universal-nearest-{h.hexdigest()[:16]}.npz"
    if (coded := _load_network(path, names, codebook, network)) is not None:
        return coded
    coded = assign_nearest(model, codebook, names, name=network)
    _save_network(path, coded)
    return coded


def _save_network(path, net) -> None:
    """A coded network's layers (and its facts) into the cache file ``path``, atomically."""
    import json
    arrays = {"info": np.asarray(json.dumps(net.info, default=float))}
    for i, layer in enumerate(net.layers):
        arrays.update({f"{i}.shape": np.asarray(layer.weight_shape), f"{i}.indices": layer.indices,
                       f"{i}.scale": layer.row_scale})
        for key, value in (("bias", layer.bias), ("cols", layer.col_scale)):
            if value is not None:
                arrays[f"{i}.{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_network(path, names: list[str], codebook, network: str):
    """What :func:`_save_network` wrote: the layers ``names`` against ``codebook``; None when the file is
    missing, damaged or of other layers (the caller recomputes and overwrites it)."""
    import json
    from model.compress.universal.fit import UniversalLayer, UniversalNetwork
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            get = lambda key: z[key] if key in z.files else None
            layers = [UniversalLayer(n, tuple(int(v) for v in z[f"{i}.shape"]), z[f"{i}.indices"],
                                     z[f"{i}.scale"], get(f"{i}.bias"), False, get(f"{i}.cols"))
                      for i, n in enumerate(names)]
            info = json.loads(str(z["info"])) if "info" in z.files else {"method": "universal-nearest"}
    except NPZ_READ_ERRORS:
        return None
    return UniversalNetwork(network, codebook, layers, info)


def _bar(total: int, progress: bool, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="layer", disable=not progress, leave=False)


#: Zoo networks the engine runs in part, and the nested universal codebook stage each is coded against
#: (MiniLM: the 16,384-entry ROM; its 128-entry prefix, 1.75 bits per weight, is too coarse for it).
PARTITIONED_NETWORKS = {"minilm": 16384}
#: Calibration sentences (or inputs) of a partitioned network.
CALIBRATION_INPUTS = 256
#: The engine fit's budget over the network's recipe (:func:`fit_staged`): training through the engine's
#: int8 steps, MiniLM on the staged 2 x 128 ROM scored 0.9482 (int8 golden, 320 sentences) with the recipe's
#: 300 + 60 steps and 4 candidates; this budget was chosen after that run, on the same sentences.
ENGINE_FIT_BUDGET = {"soft_steps": 600, "hard_steps": 240, "top_n": 8}


def fit_staged(task, codebook, names: list[str], smoothing: dict, activations: dict | None = None, *,
               seed: int = 0, progress: bool = True, quick: bool = False, budget: dict | None = None):
    """``task``'s modules ``names`` fitted to the staged ROM ``codebook`` by distillation, each coding its
    weight columns times ``smoothing[name]`` and, with ``activations``, training through the engine's int8
    steps (:class:`model.compress.universal.fit.EngineActivations`): the beam-searched start
    (:func:`model.compress.universal.staged.assign_staged`), then the soft-to-hard fit
    (:func:`model.compress.universal.fit.fit_universal`) over each sub-vector's best stage sums, with the
    network's recipe (:data:`model.compress.universal.recipes.RECIPES`).  Cached by the weights', the ROM's,
    the factors' and the recipe's hashes (MiniLM: about 25 minutes on one core).  ``budget`` overrides recipe
    fields; ``quick`` says the task scores on its quick evaluation set (recorded, and part of the cache key)."""
    import hashlib
    import json
    from dataclasses import asdict
    from model.compress.universal.fit import fit_universal
    from model.compress.universal.recipes import recipe_for
    from model.compress.universal.staged import StagedSums, assign_staged
    from model.nets.networks import resolve_cache_dir
    from model.nets.training import TorchThreads
    from model.nets.weightmat import get_module, weight_matrix
    sums = StagedSums(codebook)
    recipe = recipe_for(task.name, budget=budget)
    h = hashlib.sha256(f"{codebook.content_hash()} {json.dumps(asdict(recipe), sort_keys=True)} {seed} {quick}"
                       .encode())
    for n in names:
        h.update(n.encode())
        h.update(weight_matrix(get_module(task.model, n)).tobytes())
        h.update(np.asarray(smoothing[n], np.float64).tobytes())
        if activations is not None:
            a = activations[n]
            h.update(np.asarray([a.input_scale, *a.output_scales], np.float64).tobytes())
    path = resolve_cache_dir() / f"{task.name}-staged-fit-{h.hexdigest()[:16]}.npz"
    if (cached := _load_network(path, names, sums, task.name)) is not None:
        return cached
    t0 = time.perf_counter()
    start = assign_staged(task.model, sums, names, name=task.name, top_n=recipe.top_n, col_scales=smoothing)
    beam_seconds = time.perf_counter() - t0
    with TorchThreads(recipe.threads), torch.enable_grad():    # a caller's no_grad would stop the training
        net = fit_universal(task.model, sums, task.data, layer_names=names, name=task.name, top_n=recipe.top_n,
                            soft_steps=recipe.soft_steps, hard_steps=recipe.hard_steps, batch=recipe.batch,
                            seed=seed, evaluate=task.quality, progress=progress, threads=recipe.threads,
                            t_start=recipe.t_start, start=start, activations=activations)
    net.info.update(beam_seconds=beam_seconds, n_distill=recipe.n_distill, quick_eval=quick,
                    fit_seconds=time.perf_counter() - t0)
    _save_network(path, net)
    return net


def compress_partitioned(network: str, *, lanes: int, weight_sram_words: int, seed: int = 0,
                         progress: bool = True, quick: bool = False, codebook=None, fit: bool = False,
                         fit_budget: dict | None = None) -> Program:
    """``vqe compress --network minilm --method universal --partition [--codebook FILE [--fit]]``: the network's
    Linear layers on the engine (one job each, universal ROM: the nested ROM's flat 16,384 entries, or the
    staged ROM of ``codebook``, :mod:`model.compress.universal.staged`, coded greedily or, with ``fit``, fitted
    by distillation, :func:`fit_staged`, with :data:`ENGINE_FIT_BUDGET` or ``fit_budget``), the host the rest;
    its quality measured with the golden model."""
    from model.compress.registry import CompressError
    from model.compress.universal.codebook import DEFAULT_NESTED, CodebookError, load_codebook
    from model.compress.universal.staged import is_staged
    from model.nets.zoo import load_network, minilm
    if network not in PARTITIONED_NETWORKS:
        raise CompressError(f"--partition runs {', '.join(PARTITIONED_NETWORKS)} on the engine and the host; "
                            f"{network!r} is not one of them")
    try:
        codebook = (load_codebook(DEFAULT_NESTED, k=PARTITIONED_NETWORKS[network]) if codebook is None
                    else load_codebook(codebook))
    except CodebookError as e:
        raise CompressError(str(e)) from None
    if codebook.dim != lanes:
        raise CompressError(f"the universal codebook has dimension {codebook.dim}: --lanes must be {codebook.dim}")
    if fit and not is_staged(codebook):
        raise CompressError("--fit fits the layers to a staged ROM: give one with --codebook "
                            "(e.g. model/codebooks/universal-d4-k128x2-staged-v1.npz)")
    budget = ENGINE_FIT_BUDGET if fit_budget is None else fit_budget
    task = None
    if fit:
        from model.compress.universal.recipes import load_task, recipe_for
        from model.compress.universal.staged import MAX_SUMS, stage_shape
        stages, section = stage_shape(codebook)
        if section ** stages > MAX_SUMS:
            raise CompressError(f"--fit: the staged ROM's {stages} sections of {section} make {section ** stages:,} "
                                f"stage sums, more than the fit tabulates ({MAX_SUMS:,}); use fewer or smaller "
                                "sections, or leave out --fit")
        task = load_task(network, n_distill=recipe_for(network, budget=budget).n_distill, seed=seed, quick=quick)
        zn = task.info["zoo"]
    else:
        zn = load_network(network, progress=progress)
    names = list(zn.weight_layers)
    program = compress_universal_partitioned(
        network, zn.model, names, minilm.calibration_run(CALIBRATION_INPUTS, seed), minilm.host_ops,
        codebook=codebook, lanes=lanes, weight_sram_words=weight_sram_words, seed=seed, progress=progress,
        info={"calibration_inputs": CALIBRATION_INPUTS, "metric": zn.metric_name, "float_quality": 1.0},
        fit=None if task is None else
        (lambda smoothing, acts: fit_staged(task, codebook, names, smoothing, acts, seed=seed, progress=progress,
                                            quick=quick, budget=budget)))
    metrics = zn.evaluate(with_engine_segments(zn.model, program), quick=quick)
    program.meta["info"].update(int8_quality=metrics[zn.metric_name], int8_metrics=metrics, quick_eval=quick)
    return program
