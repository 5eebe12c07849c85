"""``vqe compress``: network -> compression method -> int8 lowering -> program file."""
from __future__ import annotations

import time

import numpy as np

from .data import load_fashion_mnist
from .fixedpoint import quantize_act
from .frontends import ENGINE_NETWORKS, FrontendError, engine_task
from .golden import GoldenEngine
from .program import Program, build_program

#: Compression methods ``vqe compress --method`` accepts: each writes an engine program.
METHODS = ("kmeans", "pvq", "universal", "deepcomp")
DATASET = "fashion-mnist"
MAX_CODEBOOK = 1 << 16


class CompressError(Exception):
    """Compression options that cannot work."""


def codebook_depth_for(size: int) -> int:
    """Smallest power of two (>= 2) that holds ``size`` codewords: the engine's index width."""
    return max(2, 1 << (size - 1).bit_length())


def golden_accuracy(program: Program, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the golden model (the engine's exact arithmetic) on float inputs ``x``."""
    image, _, _ = program.dram_image(quantize_act(x, program.meta["input_scale"]))
    outputs = GoldenEngine(program.config).run(image).outputs
    return float(np.mean(np.argmax(outputs, axis=1) == y))


def compress(network: str, method: str, *, lanes: int = 4, codebook_size: int = 256,
             finetune_epochs: int | None = None, calibration: int = 2000, seed: int = 0,
             progress: bool = True, bits_per_weight: float | None = None, codebook=None) -> Program:
    """Compress a registered network into a :class:`Program`, with its accuracies measured.

    Parameters
    ----------
    network : str
        A name in :data:`model.frontends.ENGINE_NETWORKS` (LeNet-5: the engine runs its FC tail).
    method : str
        One of :data:`METHODS` (model-level baselines: :func:`compress_baseline`).
    lanes : int
        Engine lanes, which is the VQ sub-vector dimension.
    codebook_size : int
        Codewords per layer.
    finetune_epochs : int, optional
        Codeword fine-tuning epochs after k-means; the method's default if None.
    calibration : int
        Training images used to calibrate activation scales.
    seed : int
        Seed for training, k-means and calibration sampling.
    progress : bool
        Show progress bars.
    bits_per_weight : float, optional
        PVQ's all-in bit budget (its default if None).
    codebook : path or UniversalCodebook, optional
        ``universal`` only: the ROM codebook (default the shipped one).
    """
    from .lowering import lower_vq
    from .networks import evaluate
    from .vq import vq_compress, to_torch

    if method not in METHODS:
        raise CompressError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if lanes not in (1, 2, 4, 8):
        raise CompressError(f"--lanes must be 1, 2, 4 or 8, got {lanes}")
    if not 1 <= codebook_size <= MAX_CODEBOOK:
        raise CompressError(f"--codebook-size must be 1..{MAX_CODEBOOK}, got {codebook_size}")
    if calibration < 1:
        raise CompressError("--calibration must be at least 1 image")
    if network not in ENGINE_NETWORKS:
        raise CompressError(f"unknown network {network!r}; the engine runs {', '.join(ENGINE_NETWORKS)}"
                            f" (pq/rq/lr2vq take any zoo network)")
    if codebook is not None and method != "universal":
        raise CompressError("--codebook applies to --method universal only")
    if method == "universal":
        codebook = _universal_codebook(codebook, lanes)
    if method == "deepcomp" and network != "lenet300":
        raise CompressError(f"--method deepcomp has a pruning recipe for lenet300 only, not {network!r}")

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    try:
        task = engine_task(network, x_train, seed=seed, progress=progress)
    except FrontendError as e:
        raise CompressError(str(e)) from None
    f_train, f_test = task.features(x_train), task.features(x_test)
    rng = np.random.default_rng(seed)
    calib = f_train[rng.choice(len(f_train), size=min(calibration, len(f_train)), replace=False)]
    common = {"float_accuracy": evaluate(task.full, x_test, y_test), "seed": seed,
              "calibration_images": len(calib), "test_images": len(x_test)}
    if task.frontend is not None:
        common["tail_float_accuracy"] = evaluate(task.tail, f_test, y_test)
    if method == "pvq":
        program = _compress_pvq(network, task.tail, lanes, bits_per_weight, finetune_epochs, seed, progress,
                                (f_train, y_train), (f_test, y_test), calib, common)
    elif method == "deepcomp":
        program = _compress_deepcomp(network, lanes, seed, progress, common)
    elif method == "universal":
        program = _compress_universal(network, task.tail, lanes, codebook, seed, progress,
                                      (f_train, y_train), (f_test, y_test), calib, common)
    else:
        t0 = time.perf_counter()
        kwargs = {} if finetune_epochs is None else {"finetune_epochs": finetune_epochs}
        vq = vq_compress(task.tail, dim=lanes, k=codebook_size, seed=seed, name=network,
                         train_data=(f_train, y_train), progress=progress, **kwargs)
        compress_seconds = time.perf_counter() - t0
        lowered = lower_vq(vq, calib, lanes)
        lowered.name, lowered.method = network, method
        program = build_program(lowered, codebook_depth=codebook_depth_for(codebook_size), info=dict(
            common, vq_float_accuracy=evaluate(to_torch(vq), f_test, y_test), compress_seconds=compress_seconds,
            codebook_size=codebook_size))
    program.meta["dataset"] = DATASET
    program.meta.update(task.meta())
    program.meta["info"]["int8_accuracy"] = golden_accuracy(program, f_test, y_test)
    return program


def _compress_pvq(network, model, lanes, bits_per_weight, finetune_epochs, seed, progress,
                  train, test, calib, common) -> Program:
    """PVQ-code every layer (model/pvq_compress.py); the engine gets a PVQ unit sized to the largest K."""
    from .networks import evaluate
    from .pvq_compress import DEFAULT_BITS_PER_WEIGHT, FINETUNE_EPOCHS, pvq_compress, pvq_to_torch
    t0 = time.perf_counter()
    net, lowered = pvq_compress(model, lanes=lanes,
                                bits_per_weight=bits_per_weight or DEFAULT_BITS_PER_WEIGHT,
                                finetune_epochs=FINETUNE_EPOCHS if finetune_epochs is None else finetune_epochs,
                                seed=seed, progress=progress, name=network, train_data=train, calib_x=calib)
    seconds = time.perf_counter() - t0
    lowered.name, lowered.method = network, "pvq"
    ks = [int(layer.pvq_k) for layer in lowered.layers]
    return build_program(lowered, pvq_k_max=max(ks), info=dict(
        common, pvq_float_accuracy=evaluate(pvq_to_torch(net), *test), compress_seconds=seconds, pvq_k=ks,
        bits_per_weight_budget=bits_per_weight or DEFAULT_BITS_PER_WEIGHT))


def _compress_deepcomp(network, lanes, seed, progress, common) -> Program:
    """Deep Compression (model/deepcomp.py): pruning, trained scalar quantization, sparse Huffman-coded rows."""
    from .deepcomp import lower_network_deepcomp
    lowered = lower_network_deepcomp(network, seed=seed, progress=progress, lanes=lanes)
    info = {k: v for k, v in lowered.info.items() if k != "int8_accuracy"}  # re-measured on the program below
    return build_program(lowered, info=dict(common, **info))


def _universal_codebook(codebook, lanes: int):
    """The codebook ``--method universal`` fits to: a file, a :class:`UniversalCodebook` or the shipped one."""
    from .universal import CodebookError, UniversalCodebook, load_codebook
    if not isinstance(codebook, UniversalCodebook):
        try:
            codebook = load_codebook(codebook)
        except CodebookError as e:
            raise CompressError(str(e)) from None
    if codebook.dim != lanes:
        raise CompressError(f"the codebook has dimension {codebook.dim} but the engine has {lanes} lanes "
                            f"(--lanes must equal the codebook's dimension)")
    return codebook


def _compress_universal(network, model, lanes, codebook, seed, progress, train, test, calib, common) -> Program:
    """Fit every layer to the universal codebook (model/universal_fit.py); the ROM is that codebook, shared."""
    from .distill import DistillSet
    from .networks import evaluate
    from .universal_fit import fit_universal, lower_universal
    t0 = time.perf_counter()
    net = fit_universal(model, codebook, DistillSet(*train), name=network, seed=seed, progress=progress)
    seconds = time.perf_counter() - t0
    lowered = lower_universal(net, calib, lanes)
    lowered.name = network
    return build_program(lowered, codebook_depth=codebook_depth_for(codebook.k), shared_rom=codebook.codewords,
                         info=dict(common, universal_float_accuracy=evaluate(net.apply(model), *test),
                                   compress_seconds=seconds, codebook_size=codebook.k,
                                   codebook_sha256=codebook.content_hash(),
                                   codebook_donors=list(codebook.donors)))


#: Per-layer baselines (model/baselines.py) ``vqe compress`` runs at model level: the engine has no
#: datapath for several codebooks per layer (pq), sums of codewords (rq) or a projection (lr2vq).
BASELINE_METHODS = ("pq", "rq", "lr2vq")


def compress_baseline(network: str, method: str, *, dim: int = 4, codebook_size: int = 256, stages: int = 2,
                      rank: int = 2, seed: int = 0, quick: bool = False, progress: bool = True) -> dict:
    """Code every weight layer of a zoo network with a per-layer baseline and measure it.

    Parameters
    ----------
    network : str
        A zoo network (:func:`model.zoo.network_names`).
    method : str
        One of :data:`BASELINE_METHODS`.
    dim : int
        Sub-vector dimension (``d``; LR²VQ's ``m``).
    codebook_size : int
        Codewords per codebook (``k``).
    stages : int
        ``rq``: residual stages.
    rank : int
        ``lr2vq``: dimension of the clustered subspace (``r < m``).
    seed : int
        k-means seed.
    quick : bool
        The network's quick evaluation set.
    progress : bool
        Progress bars while a network is trained.

    Returns
    -------
    dict
        ``network``, ``method``, ``config``, the metric of the float and the
        coded network, and every stored bit (:func:`model.baselines.storage`).
    """
    from .baselines import compress as code, storage
    from .zoo import load_network, network_names
    if method not in BASELINE_METHODS:
        raise CompressError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINE_METHODS)}")
    if network not in network_names():
        raise CompressError(f"unknown network {network!r}; choose one of {', '.join(network_names())}")
    if dim < 1 or codebook_size < 2 or stages < 1 or not 1 <= rank <= dim:
        raise CompressError(f"bad {method} parameters: dim {dim}, codebook size {codebook_size}, "
                            f"stages {stages}, rank {rank} (need dim >= 1, size >= 2, stages >= 1, 1 <= rank <= dim)")
    config = {"pq": dict(d=dim, k=codebook_size), "rq": dict(d=dim, k=codebook_size, stages=stages),
              "lr2vq": dict(m=dim, k=codebook_size, r=rank)}[method]
    zn = load_network(network, progress=progress)
    t0 = time.perf_counter()
    net = code(zn.model, method, config, layer_names=list(zn.weight_layers), name=network, seed=seed)
    seconds = time.perf_counter() - t0
    quality = zn.evaluate(net.apply(zn.model), quick=quick)
    return {"network": network, "method": method, "config": config, "metric": zn.metric_name,
            "float_quality": zn.evaluate(zn.model, quick=quick)[zn.metric_name],
            "quality": quality[zn.metric_name], "metrics": quality, "compress_seconds": seconds,
            "quick_eval": quick, "storage": storage(net, zn.model),
            "note": "model-level result: the engine runs kmeans, universal and pvq programs"}


def compress_universal_model(network: str, *, codebook=None, k: int | None = None, seed: int = 0,
                             quick: bool = False, progress: bool = True) -> dict:
    """Fit a zoo network the engine does not run (MiniLM, CREPE, MTCNN) to the universal ROM, at model level.

    The network's :data:`model.experiments_universal.RECIPES` entry sets the
    budget (for MiniLM: 300 soft steps from temperature 0.25 and 60 hard
    steps on 4096 distillation sentences); ``k`` picks the stage of the nested ROM
    (default the recipe's largest).

    Returns
    -------
    dict
        ``network``, ``method``, ``config``, ``metric``, ``float_quality``,
        ``quality``, ``bits_per_weight``, ``ratio_vs_fp32`` and ``rows``: the
        fit's table rows (:mod:`model.experiments_universal`), its untrained
        start(s) included.
    """
    from .experiments_universal import QUICK, RECIPES, Recipe, run_network
    from .universal import DEFAULT_DIM, DEFAULT_NESTED, CodebookError, load_codebook
    from .zoo import network_names
    if network not in network_names():
        raise CompressError(f"unknown network {network!r}; choose one of {', '.join(network_names())}")
    try:
        cb = load_codebook(DEFAULT_NESTED if codebook is None else codebook, dim=DEFAULT_DIM)
    except CodebookError as e:
        raise CompressError(str(e)) from None
    recipe = QUICK if quick else RECIPES.get(network, Recipe())
    k = max(recipe.prefixes) if k is None else int(k)
    if k not in cb.stages:
        raise CompressError(f"--codebook-size {k}: the codebook's usable sizes are "
                            f"{', '.join(map(str, cb.stages))}")
    rows = run_network(network, cb, quick=quick, grid=[], finetune=False, seed=seed, progress=progress,
                       log=lambda _m: None, prefixes=[k])
    fit = rows[0]
    return {"network": network, "method": "universal", "config": fit["config"], "metric": fit["metric"],
            "float_quality": fit["float_quality"], "quality": fit["quality"],
            "bits_per_weight": fit["bits_per_weight"], "ratio_vs_fp32": fit["ratio_vs_fp32"],
            "quick": quick, "rows": rows,
            "note": "model-level result: the engine runs kmeans, universal and pvq programs of lenet300/lenet5"}
