"""Benchmark: the universal codebook against per-layer baselines at equal bits per weight.

``python -m scripts.experiments.universal [--networks lenet300 lenet5 ...] [--quick] [--json out.json]
[--markdown out.md]`` prints one table: network x method x configuration ->
bits per weight, compression ratio vs fp32 (every overhead counted, see
:mod:`model.compress.baselines`), the network's quality metric (its zoo metric: test
accuracy, embedding cosine, pitch accuracy, face agreement) and the time
taken; then, per universal fit, the best configuration of every method within
its bit budget.  The universal ROM is reported once, apart: it is shared by
every network.

The ROM is the shipped nested codebook (:data:`model.compress.universal.codebook.DEFAULT_NESTED`):
each network is fitted to the stages of it its :class:`Recipe` names
(:attr:`Recipe.prefixes`): the 128-entry prefix, which is exactly the shipped
engine codebook, for the small networks; the larger prefixes (up to 16384) for
MiniLM.  ``--json`` writes ``{"codebook": ROM facts with the KDE and nested
parameters, "networks": {name: total and training seconds}, "rows": [...]}``
and keeps the rows of networks it did not run, so networks can be run in
separate processes; ``--merge A.json B.json`` adds such files' rows to the
``--json`` file and ``--markdown`` renders it (:mod:`scripts.experiments.universal_table`).

``--build-codebook`` rebuilds the shipped codebook from :data:`DONORS`, and
``--build-nested`` the nested one from it (both deterministic for given donor
weights).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable

import torch

from model.compress.baselines import compress, finetune_kmeans
from model.compress.universal.codebook import (DEFAULT_CODEBOOK, DEFAULT_DIM, DEFAULT_K, DEFAULT_NESTED, CodebookError,
                                               UniversalCodebook, load_codebook, save_codebook)
from model.compress.universal.extract import build_codebook
from model.compress.universal.nested import NESTED_STAGES, build_nested_codebook
from model.compress.universal.recipes import (QUICK, RECIPES, Recipe, chain_data, engine_facts, fit_zoo_network,
                                              table_row)

#: Donors of the shipped codebook: a transformer text encoder, a 1-D conv audio
#: network and a 2-D conv vision network.  LeNet-300-100, LeNet-5 and R-Net
#: are not donors: they show the codebook on networks it never saw.
DONORS = ("minilm", "crepe-tiny", "onet")
NETWORKS = ("lenet300", "lenet5", "crepe-tiny", "onet", "rnet", "minilm")


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
#: MiniLM (10.6M coded weights): per-layer k-means at 2, 3 and 4 index bits per weight (the last is
#: 4-bit scalar k-means), the rates around its universal fits.
GRID_LARGE = [
    ("kmeans", dict(d=4, k=256)), ("kmeans", dict(d=2, k=64)), ("kmeans", dict(d=1, k=16)),
]
#: kmeans configuration fine-tuned with the universal method's budget (``kmeans+ft``).
FT_CONFIG = dict(d=4, k=128)


def build_default_nested(path=DEFAULT_NESTED, stages=NESTED_STAGES, progress=None) -> UniversalCodebook:
    """Rebuild the shipped nested codebook from the shipped codebook and its donors."""
    cb = build_nested_codebook(load_codebook(), stages, progress=progress)
    save_codebook(cb, path)
    return cb


def build_default_codebook(path=DEFAULT_CODEBOOK, donors=DONORS, dim: int = DEFAULT_DIM, k: int = DEFAULT_K,
                           seed: int = 0) -> UniversalCodebook:
    """Rebuild the shipped codebook file from ``donors``."""
    cb = build_codebook(list(donors), dim, k, seed=seed)
    save_codebook(cb, path)
    return cb


def run_network(name: str, codebook: UniversalCodebook, *, quick: bool = False, grid=None, finetune: bool = True,
                seed: int = 0, progress: bool = True, log=print, prefixes=None, budget: dict | None = None,
                on_rows: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Every method on one network; returns the table rows.

    ``codebook`` is the (nested) universal ROM; the network is fitted to each
    of ``prefixes`` (default its recipe's :attr:`Recipe.prefixes`), with the
    recipe's fields in ``budget`` (e.g. ``soft_steps``) overridden
    (:func:`model.compress.universal.recipes.fit_zoo_network`).  ``grid``
    (default by network) lists the baselines; ``on_rows(rows so far)`` is
    called after every row, so a long run keeps what it measured.
    """
    rows: list[dict] = []

    def keep(row=None):
        if row is not None:
            log(_fmt(row))
        if on_rows is not None:
            on_rows(rows)

    task, recipe, float_q, fitted = fit_zoo_network(name, codebook, quick=quick, seed=seed, progress=progress,
                                                    prefixes=prefixes, budget=budget, log=log, on_row=log_row(log))
    rows += fitted
    keep()
    grid = grid if grid is not None else {"lenet300": GRID, "minilm": GRID_LARGE}.get(name, GRID_SMALL)
    train_x, test = chain_data(task)
    chain = train_x is not None
    old = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        for method, config in grid:
            t0 = time.perf_counter()
            net = compress(task.model, method, config, layer_names=task.layers, name=name, seed=seed)
            secs = time.perf_counter() - t0
            q = task.quality(net.apply(task.model))
            row = table_row(task, method, config, net, secs, q, float_q)
            if chain and method == "kmeans":
                row.update(engine_facts(task, net, method, train_x, test))
            rows.append(row)
            keep(row)
            if finetune and recipe.finetune and method == "kmeans" and config == FT_CONFIG:
                t0 = time.perf_counter()
                ft = finetune_kmeans(task.model, net, task.data, steps=recipe.soft_steps + recipe.hard_steps,
                                     batch=recipe.batch, seed=seed, progress=progress, threads=recipe.threads)
                secs += time.perf_counter() - t0
                row = table_row(task, "kmeans+ft", config, ft, secs, task.quality(ft.apply(task.model)), float_q)
                if chain:
                    row.update(engine_facts(task, ft, "kmeans", train_x, test))
                rows.append(row)
                keep(row)
    finally:
        torch.set_num_threads(old)
    return rows


def log_row(log):
    """A row logger for :func:`fit_zoo_network` that prints through ``log``."""
    return lambda row: log(_fmt(row))


def matched(rows: list[dict], slack: float = 0.02) -> list[dict]:
    """For each universal row, the best row of every other method of its network within its bits per
    weight (+ ``slack``); the universal row itself leads its group."""
    out = []
    for uni in [r for r in rows if r["method"] == "universal"]:
        mine = [r for r in rows if r["network"] == uni["network"] and r["method"] != "universal"]
        budget = uni["bits_per_weight"] + slack
        out.append(uni)
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


def codebook_summary(cb: UniversalCodebook) -> dict:
    """The ROM's facts for the JSON output: sizes, donors, KDE and nested-extension parameters."""
    nested = dict(cb.params.get("nested", {}))
    nested.pop("base_params", None)  # the base's own parameters are the top-level ones
    return {"k": cb.k, "dim": cb.dim, "stages": list(cb.stages), "rom_bytes": cb.rom_bytes,
            "stage_rom_bytes": {str(k): k * cb.dim for k in cb.stages}, "int8_scale": cb.scale,
            "donors": list(cb.donors), "sha256": cb.content_hash(),
            "base_sha256": cb.prefix(cb.stages[0]).content_hash(),
            "samples_per_donor": cb.params.get("samples_per_donor"),
            "donor_subvectors": cb.params.get("donor_subvectors"), "seed": cb.params.get("seed"),
            "normalization": cb.params.get("normalization"), "kde": cb.params.get("kde"), "nested": nested}


def _row_key(r: dict) -> tuple:
    return r["network"], r["method"], json.dumps(r["config"], sort_keys=True)


def write_json(path, rows: list[dict], cb: UniversalCodebook, network_seconds: dict) -> None:
    """The table's JSON: the codebook (KDE and nested parameters), per-network times and the rows.

    Rows already in ``path`` (same codebook) stay unless a new row has the same
    network, method and configuration, so the table can be built in several
    processes (one network, or some of a network's fits, each).  A network's
    ``universal_training_seconds`` are merged and its ``seconds_total`` is the
    sum over the runs that wrote it.  The file's ``notes`` (network or
    ``"codebook"`` -> a paragraph, written by hand) are kept.
    """
    kept, seconds, notes = [], {k: dict(v) for k, v in network_seconds.items()}, {}
    try:
        with open(path) as f:
            old = json.load(f)
        if isinstance(old, dict) and old.get("codebook", {}).get("sha256") == cb.content_hash():
            new_keys = {_row_key(r) for r in rows}
            kept = [r for r in old.get("rows", []) if _row_key(r) not in new_keys]
            notes = old.get("notes") or {}
            for name, v in old.get("networks", {}).items():
                if name not in seconds:
                    seconds[name] = v
                elif v.get("run_id") != seconds[name].get("run_id"):
                    seconds[name]["universal_training_seconds"] = {**v.get("universal_training_seconds", {}),
                                                                   **seconds[name]["universal_training_seconds"]}
                    seconds[name]["seconds_total"] += v.get("seconds_total", 0.0)
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    out = {"codebook": codebook_summary(cb), "networks": seconds, "rows": kept + rows}
    if notes:  # written by hand: kept as they are
        out["notes"] = notes
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=float)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.experiments.universal", description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="*", default=list(NETWORKS), help="networks to compress (none: only build)")
    ap.add_argument("--codebook", default=None,
                    help="nested codebook file (default: the shipped nested one, whose first 128 entries are the "
                         "shipped codebook)")
    ap.add_argument("--build-codebook", action="store_true", help="rebuild the shipped codebook from the donors")
    ap.add_argument("--build-nested", action="store_true",
                    help="rebuild the shipped nested codebook from the shipped codebook and its donors")
    ap.add_argument("--quick", action="store_true", help="tiny budgets and quick evaluation (smoke test)")
    ap.add_argument("--no-finetune", action="store_true", help="skip kmeans+ft")
    ap.add_argument("--no-grid", action="store_true", help="only the universal fits, no per-layer baselines")
    ap.add_argument("--soft-steps", type=int, default=None, help="override the recipes' soft-phase steps")
    ap.add_argument("--hard-steps", type=int, default=None, help="override the recipes' hard-phase steps")
    ap.add_argument("--top-n", type=int, default=None, help="override the recipes' candidates per sub-vector")
    ap.add_argument("--t-start", type=float, default=None, help="override the recipes' soft-phase starting "
                                                                  "temperature")
    ap.add_argument("--error-feedback", choices=("on", "off"), default=None,
                    help="override the recipes' error-feedback start (see model.compress.universal.error_feedback)")
    ap.add_argument("--prefixes", nargs="*", type=int, default=None, metavar="K",
                    help="nested-ROM stages to fit every network to (default: each network's recipe; "
                         "none: only the baselines)")
    ap.add_argument("--json", default=None,
                    help="also write the table as JSON (rows of other networks already in the file are kept)")
    ap.add_argument("--merge", nargs="*", default=[], metavar="JSON",
                    help="add the rows of these table files (same codebook) to the --json file")
    ap.add_argument("--markdown", default=None, help="write the Markdown table of the JSON file given by --json")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        if args.build_codebook:
            t0 = time.perf_counter()
            cb = build_default_codebook(seed=args.seed)
            print(f"built {DEFAULT_CODEBOOK} from {', '.join(cb.donors)} in {time.perf_counter() - t0:.1f} s")
            print(json.dumps(cb.params["kde"], indent=1))
        if args.build_nested:
            t0 = time.perf_counter()
            cb = build_default_nested(progress=print)
            print(f"built {DEFAULT_NESTED} ({cb.k} codewords, stages {list(cb.stages)}) in "
                  f"{time.perf_counter() - t0:.1f} s")
        cb = load_codebook(args.codebook if args.codebook is not None else DEFAULT_NESTED)
        for name in args.networks:
            recipe = QUICK if args.quick else RECIPES.get(name, Recipe())
            for k in recipe.prefixes if args.prefixes is None else args.prefixes:
                cb.prefix(k)  # refuse a codebook without the stages a recipe needs before any work
    except CodebookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows, seconds = [], {}

    run_id = f"{os.getpid()}@{time.time():.0f}"

    def save(name: str, mine: list[dict], t0: float) -> None:
        seconds[name] = {"run_id": run_id, "seconds_total": time.perf_counter() - t0,
                         "universal_training_seconds": {str(r["config"]["k"]): r["training_seconds"]
                                                        for r in mine if r["method"] == "universal"}}
        if args.json:
            write_json(args.json, rows + mine, cb, seconds)

    for name in args.networks:
        t0 = time.perf_counter()
        mine = run_network(name, cb, quick=args.quick, finetune=not args.no_finetune, seed=args.seed,
                           progress=sys.stderr.isatty(), prefixes=args.prefixes,
                           budget={k: v for k, v in (("soft_steps", args.soft_steps), ("hard_steps", args.hard_steps),
                                                     ("top_n", args.top_n), ("t_start", args.t_start),
                                                     ("error_feedback", None if args.error_feedback is None
                                                      else args.error_feedback == "on")) if v is not None},
                           grid=[] if args.no_grid else None, on_rows=lambda r, n=name, t=t0: save(n, r, t))
        save(name, mine, t0)
        rows += mine
        print(f"{name}: {seconds[name]['seconds_total']:.0f} s", flush=True)
    for path in args.merge:
        if not args.json:
            print("error: --merge adds rows to the --json file; give --json too", file=sys.stderr)
            return 1
        try:
            with open(path) as f:
                part = json.load(f)
            if part["codebook"]["sha256"] != cb.content_hash():
                raise ValueError("it was made with another codebook")
            nets = {k: dict(v, run_id=v.get("run_id") or f"{path}:{k}") for k, v in part["networks"].items()}
            write_json(args.json, part["rows"], cb, nets)
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"error: {path}: cannot merge ({e})", file=sys.stderr)
            return 1
    if rows:
        print()
        print(format_table(rows, cb))
    if args.markdown:
        if not args.json:
            print("error: --markdown renders the --json file; give --json too", file=sys.stderr)
            return 1
        from scripts.experiments.universal_table import render_markdown
        with open(args.json) as f:
            table = json.load(f)
        with open(args.markdown, "w") as f:
            f.write(render_markdown(table))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
