"""Benchmark: the universal codebook against per-layer baselines at equal bits per weight.

``python -m model.experiments_universal [--networks lenet300 lenet5 ...] [--quick] [--json out.json]``
prints one table: network x method x configuration -> bits per weight,
compression ratio vs fp32 (every overhead counted, see
:mod:`model.baselines`), the network's quality metric (its zoo metric: test
accuracy, embedding cosine, pitch accuracy, face agreement) and the time
taken; then, per network, the best configuration of every method within the
universal method's bit budget.  The universal ROM is reported once, apart:
it is shared by every network.

``python -m model.experiments_universal --build-codebook`` rebuilds the
shipped codebook from :data:`DONORS` (deterministic for a given seed and
donor weights).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.baselines import compress, engine_bytes, finetune_kmeans, index_bits, storage
from model.distill import DistillSet
from model.universal import DEFAULT_CODEBOOK, DEFAULT_DIM, DEFAULT_K, UniversalCodebook, build_codebook, \
    load_codebook, save_codebook
from model.universal_fit import fit_universal, lower_universal
from model.weightmat import linear_relu_chain

#: Donors of the shipped codebook: a transformer text encoder, a 1-D conv audio
#: network and a 2-D conv vision network.  LeNet-300-100, LeNet-5 and R-Net
#: are not donors: they show the codebook on networks it never saw.
DONORS = ("minilm", "crepe-tiny", "onet")
NETWORKS = ("lenet300", "lenet5", "crepe-tiny", "onet", "rnet", "minilm")


@dataclass
class Recipe:
    """Training budget of the universal fit (and of ``kmeans+ft``) for one network."""
    soft_steps: int = 1500
    hard_steps: int = 400
    batch: int = 256
    n_distill: int = 60000
    threads: int = 1
    top_n: int = 8


RECIPES = {
    "lenet300": Recipe(),
    "lenet5": Recipe(),
    "crepe-tiny": Recipe(soft_steps=1000, hard_steps=200, batch=64, n_distill=8192),
    "onet": Recipe(soft_steps=1000, hard_steps=200, batch=128, n_distill=8192),
    "rnet": Recipe(soft_steps=1000, hard_steps=200, batch=128, n_distill=8192),
    "minilm": Recipe(soft_steps=300, hard_steps=60, batch=16, n_distill=4096, threads=2, top_n=4),
}
QUICK = Recipe(soft_steps=60, hard_steps=20, batch=64, n_distill=512)

#: Per-layer baselines: (method, config).  Index bits per weight: kmeans log2(k)/d,
#: pq log2(k)/d (plus per-segment codebooks), rq stages*log2(k)/d, lr2vq log2(k)/m.
GRID = [
    ("kmeans", dict(d=4, k=64)), ("kmeans", dict(d=4, k=128)), ("kmeans", dict(d=4, k=256)),
    ("kmeans", dict(d=8, k=256)),
    ("pq", dict(d=4, k=8)), ("pq", dict(d=4, k=16)), ("pq", dict(d=4, k=32)),
    ("rq", dict(d=8, k=16, stages=2)), ("rq", dict(d=8, k=16, stages=3)), ("rq", dict(d=4, k=16, stages=2)),
    ("lr2vq", dict(m=4, k=128, r=2)), ("lr2vq", dict(m=4, k=128, r=3)), ("lr2vq", dict(m=8, k=256, r=4)),
    ("lr2vq", dict(m=8, k=1024, r=4)),
]
#: The grid for the networks after LeNet-300-100 (whose table has the full :data:`GRID`).
GRID_SMALL = [
    ("kmeans", dict(d=4, k=64)), ("kmeans", dict(d=4, k=128)), ("kmeans", dict(d=4, k=256)),
    ("kmeans", dict(d=8, k=256)), ("pq", dict(d=4, k=16)), ("rq", dict(d=8, k=16, stages=3)),
    ("rq", dict(d=4, k=16, stages=2)), ("lr2vq", dict(m=4, k=128, r=3)), ("lr2vq", dict(m=8, k=256, r=4)),
]
GRID_LARGE = [
    ("kmeans", dict(d=4, k=128)), ("kmeans", dict(d=4, k=256)), ("pq", dict(d=4, k=16)),
    ("rq", dict(d=8, k=16, stages=3)), ("lr2vq", dict(m=4, k=128, r=3)),
]
#: kmeans configuration fine-tuned with the universal method's budget (``kmeans+ft``).
FT_CONFIG = dict(d=4, k=128)


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
    from model.zoo import load_network  # noqa: PLC0415
    zn = load_network(name, progress=False)
    if name in ("lenet300", "lenet5"):
        from model.data import load_fashion_mnist  # noqa: PLC0415
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


def build_default_codebook(path=DEFAULT_CODEBOOK, donors=DONORS, dim: int = DEFAULT_DIM, k: int = DEFAULT_K,
                           seed: int = 0) -> UniversalCodebook:
    """Rebuild the shipped codebook file from ``donors``."""
    cb = build_codebook(list(donors), dim, k, seed=seed)
    save_codebook(cb, path)
    return cb


def _row(task: Task, method: str, config: dict, net, seconds: float, quality: float, float_q: float) -> dict:
    st = storage(net, task.model)
    return {"network": task.name, "method": method, "config": config, "metric": task.metric,
            "quality": quality, "float_quality": float_q, "delta": quality - float_q,
            "bits_per_weight": st["bits_per_weight"], "ratio_vs_fp32": st["ratio_vs_fp32"],
            "bits": {k: st[k] for k in ("indices", "side", "scales", "biases", "total_bits")},
            "weights": st["weights"], "other_params": st["other_params"], "seconds": seconds,
            "metrics": dict(getattr(task, "last_metrics", {}))}


def _engine_facts(task: Task, net, method: str, train_x: np.ndarray, test) -> dict:
    """int8 golden-model accuracy and engine-format bytes of a Linear/ReLU chain (LeNet-300-100)."""
    from model.lowering import evaluate_lowered, lower_vq  # noqa: PLC0415
    from model.vq import VQLayer, VQNetwork  # noqa: PLC0415
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


def run_network(name: str, codebook: UniversalCodebook, *, quick: bool = False, grid=None, finetune: bool = True,
                seed: int = 0, progress: bool = True, log=print) -> list[dict]:
    """Every method on one network; returns the table rows."""
    recipe = QUICK if quick else RECIPES.get(name, Recipe())
    task = load_task(name, n_distill=recipe.n_distill, seed=seed, quick=quick)
    grid = grid if grid is not None else {"lenet300": GRID, "minilm": GRID_LARGE}.get(name, GRID_SMALL)
    rows = []
    t0 = time.perf_counter()
    float_q = task.quality(task.model)
    log(f"{name}: float {task.metric} = {float_q:.4f} ({time.perf_counter() - t0:.1f} s)")
    chain = linear_relu_chain(task.model) is not None
    test = train_x = None
    if chain:
        from model.data import load_fashion_mnist  # noqa: PLC0415
        test = load_fashion_mnist("test")
        train_x = load_fashion_mnist("train")[0][:2000]

    old = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        t0 = time.perf_counter()
        unet = fit_universal(task.model, codebook, task.data, layer_names=task.layers, name=name,
                             soft_steps=recipe.soft_steps, hard_steps=recipe.hard_steps, batch=recipe.batch,
                             top_n=recipe.top_n,
                             seed=seed, evaluate=task.quality, progress=progress, threads=recipe.threads)
        secs = time.perf_counter() - t0
        row = _row(task, "universal", {"dim": codebook.dim, "k": codebook.k, "donor": name in codebook.donors},
                   unet, secs, unet.info["quality"], float_q)
        row["stages"] = {k: unet.info.get(k) for k in ("quality_nearest", "quality_hardened", "mean_max_prob",
                                                        "frac_not_nearest", "soft_seconds", "hard_seconds")}
        if chain:
            row.update(_engine_facts(task, unet, "universal", train_x, test))
        rows.append(row)
        nearest = dict(row, method="universal-nearest", quality=unet.info["quality_nearest"],
                       delta=unet.info["quality_nearest"] - float_q, seconds=unet.info["init_seconds"])
        for k in ("stages", "int8_quality", "engine_bytes", "engine_bits_per_weight", "engine_ratio_vs_fp32",
                  "metrics"):
            nearest.pop(k, None)
        rows.append(nearest)
        log(_fmt(row))

        for method, config in grid:
            t0 = time.perf_counter()
            net = compress(task.model, method, config, layer_names=task.layers, name=name, seed=seed)
            secs = time.perf_counter() - t0
            q = task.quality(net.apply(task.model))
            row = _row(task, method, config, net, secs, q, float_q)
            if chain and method == "kmeans":
                row.update(_engine_facts(task, net, method, train_x, test))
            rows.append(row)
            log(_fmt(row))
            if finetune and method == "kmeans" and config == FT_CONFIG:
                t0 = time.perf_counter()
                ft = finetune_kmeans(task.model, net, task.data, steps=recipe.soft_steps + recipe.hard_steps,
                                     batch=recipe.batch, seed=seed, progress=progress, threads=recipe.threads)
                secs += time.perf_counter() - t0
                row = _row(task, "kmeans+ft", config, ft, secs, task.quality(ft.apply(task.model)), float_q)
                if chain:
                    row.update(_engine_facts(task, ft, "kmeans", train_x, test))
                rows.append(row)
                log(_fmt(row))
    finally:
        torch.set_num_threads(old)
    return rows


def matched(rows: list[dict], slack: float = 0.02) -> list[dict]:
    """Per network and method, the best row within the universal method's bits per weight (+ ``slack``)."""
    out = []
    for name in dict.fromkeys(r["network"] for r in rows):
        mine = [r for r in rows if r["network"] == name]
        uni = [r for r in mine if r["method"] == "universal"]
        if not uni:
            continue
        budget = uni[0]["bits_per_weight"] + slack
        for method in dict.fromkeys(r["method"] for r in mine):
            ok = [r for r in mine if r["method"] == method and r["bits_per_weight"] <= budget]
            if ok:
                out.append(max(ok, key=lambda r: r["quality"]))
    return out


def _cfg(c: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in c.items())


#: A second metric shown for networks whose headline one saturates or is coarse.
SECONDARY = {"crepe-tiny": "pitch_acc_10c", "minilm": "probe_acc", "onet": "prob_mae", "rnet": "prob_mae"}


def _fmt(r: dict) -> str:
    s = (f"{r['network']:<11} {r['method']:<17} {_cfg(r['config']):<22} {r['bits_per_weight']:6.3f} "
         f"{r['ratio_vs_fp32']:7.2f}x  {r['metric']:<16} {r['quality']:.4f} ({r['delta']:+.4f})  {r['seconds']:7.1f} s")
    second = SECONDARY.get(r["network"])
    if second and second in r.get("metrics", {}):
        s += f"  [{second} {r['metrics'][second]:.4f}]"
    if "int8_quality" in r:
        s += (f"  | engine int8 {r['int8_quality']:.4f}, {r['engine_bits_per_weight']:.3f} bpw, "
              f"{r['engine_ratio_vs_fp32']:.2f}x")
    return s


HEADER = (f"{'network':<11} {'method':<17} {'config':<22} {'bpw':>6} {'ratio':>8}  {'metric':<16} quality (delta)"
          f"      time")


def format_table(rows: list[dict], codebook: UniversalCodebook | None = None) -> str:
    lines = [HEADER] + [_fmt(r) for r in rows]
    lines += ["", "Best of each method within the universal bit budget (+0.02 bpw):", HEADER]
    lines += [_fmt(r) for r in matched(rows)]
    if codebook is not None:
        kde = codebook.params.get("kde", {})
        lines += ["", f"Universal ROM (shared by all networks, not in the ratios): {codebook.k} x {codebook.dim} int8 "
                      f"= {codebook.rom_bytes} bytes; donors {', '.join(codebook.donors)}; KDE factor "
                      f"{kde.get('factor', float('nan')):.4f} ({kde.get('factor_over_scott', float('nan'))} x Scott), "
                      f"{codebook.params.get('samples_per_donor')} samples/donor, {kde.get('draws')} draws; "
                      f"sha256 {codebook.content_hash()[:16]}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.experiments_universal", description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="*", default=list(NETWORKS), help="networks to compress (none: only build)")
    ap.add_argument("--codebook", default=None, help="codebook file (default: the shipped one)")
    ap.add_argument("--build-codebook", action="store_true", help="rebuild the shipped codebook from the donors")
    ap.add_argument("--quick", action="store_true", help="tiny budgets and quick evaluation (smoke test)")
    ap.add_argument("--no-finetune", action="store_true", help="skip kmeans+ft")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.build_codebook:
        t0 = time.perf_counter()
        cb = build_default_codebook(seed=args.seed)
        print(f"built {DEFAULT_CODEBOOK} from {', '.join(cb.donors)} in {time.perf_counter() - t0:.1f} s")
        print(json.dumps(cb.params["kde"], indent=1))
        if not args.networks:
            return 0
    cb = load_codebook(args.codebook)
    rows = []
    for name in args.networks:
        t0 = time.perf_counter()
        rows += run_network(name, cb, quick=args.quick, finetune=not args.no_finetune, seed=args.seed,
                            progress=sys.stderr.isatty())
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1, default=float)
    print()
    print(format_table(rows, cb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
