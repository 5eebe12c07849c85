"""The ``vqe`` command line.

Every failure the user can cause ends in one line on stderr and a non-zero
exit status; set ``VQE_DEBUG=1`` to see tracebacks.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from model.contract.errors import VqeError

EXIT_USAGE = 2
EXIT_ERROR = 1
EXIT_INTERNAL = 3
#: --codebook-size of kmeans, pq, rq and lr2vq when not given.
DEFAULT_CODEBOOK_SIZE = 256


class CliError(VqeError):
    """A user-facing failure: printed as one line."""


def _refuse_overwrite(path: str | Path, force: bool) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise CliError(f"{path} exists; pass --force to overwrite it")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- compress ---------------------------------------------------------------------------------
def cmd_compress(args) -> int:
    from model.compress.pipeline import CompressOptions, compress_any
    from model.compress.registry import get_method
    out = _refuse_overwrite(args.output, args.force)
    options = CompressOptions(lanes=args.lanes, codebook_size=args.codebook_size,
                              finetune_epochs=args.finetune_epochs, calibration=args.calibration, seed=args.seed,
                              progress=not args.quiet, bits_per_weight=args.bits_per_weight, codebook=args.codebook,
                              stages=args.stages, rank=args.rank, quick=args.quick_eval)
    result = compress_any(args.network, args.method, options)
    if isinstance(result, dict):  # a model-level result
        _write_atomically(out, json.dumps(result, indent=2, default=float) + "\n")
        st = result.get("storage", result)
        print(f"wrote {out}: {args.network} / {args.method}{get_method(args.method).describe(result)} "
              f"(model level, not an engine "
              f"program), {st['bits_per_weight']:.3f} bits/weight, {st['ratio_vs_fp32']:.2f}x vs fp32, "
              f"{result['metric']} {result['quality']:.4f} (float {result['float_quality']:.4f})", file=sys.stderr)
        return 0
    program = result
    tmp = out.with_name(out.name + ".tmp")
    program.save(tmp)
    os.replace(tmp, out)  # never leave a half-written program behind
    c = program.meta["compression"]
    info = program.meta["info"]
    print(f"wrote {out}: {program.meta['network']} / {program.meta['method']}, "
          f"{c['bytes']} bytes, {c['bits_per_weight']:.3f} bits/weight, "
          f"{c['ratio_vs_fp32']:.2f}x vs fp32" +
          (f", int8 golden accuracy {info['int8_accuracy']:.4f} (float {info['float_accuracy']:.4f})"
           if "int8_accuracy" in info else ""), file=sys.stderr)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- codebook ---------------------------------------------------------------------------------
def cmd_codebook_build(args) -> int:
    from model.compress.universal.codebook import (DEFAULT_DIM, DEFAULT_K, CodebookError, build_codebook,
                                                   save_codebook)
    from model.nets.registry import network_names
    donors = [d for arg in args.donors for d in arg.split(",") if d]
    if not donors:
        raise CliError("--donors is empty: name at least one donor network")
    unknown = [d for d in donors if d not in network_names()]
    if unknown:
        raise CliError(f"unknown donor network(s) {', '.join(unknown)}; known: {', '.join(network_names())}")
    if len(set(donors)) != len(donors):
        raise CliError(f"a donor is named twice: {', '.join(donors)}")
    dim = DEFAULT_DIM if args.dim is None else args.dim
    k = DEFAULT_K if args.size is None else args.size
    if dim not in (1, 2, 4, 8, 16):
        raise CliError(f"--dim must be the engine's lanes: 1, 2, 4, 8 or 16, got {dim}")
    if k < 2 or k & (k - 1):
        raise CliError(f"--size must be a power of two >= 2 (the engine's codebook depth), got {k}")
    out = _refuse_overwrite(args.output, args.force)
    cb = build_codebook(donors, dim, k, seed=args.seed)
    tmp = out.with_name(out.name + ".tmp.npz")
    try:
        save_codebook(cb, tmp)
        os.replace(tmp, out)
    except CodebookError:
        tmp.unlink(missing_ok=True)
        raise
    print(f"wrote {out}: {cb.k} codewords x {cb.dim}, int8, donors {', '.join(cb.donors)}, "
          f"sha256 {cb.content_hash()[:16]}", file=sys.stderr)
    return 0


# --- run --------------------------------------------------------------------------------------
def load_inputs(meta: dict, n: int, offset: int, seed: int):
    """Test inputs for a program: its dataset's test split, or seeded random vectors."""
    import numpy as np

    from model.contract.fixedpoint import quantize_act
    from model.program.synthetic import random_inputs
    dataset = meta.get("dataset")
    if dataset is None:
        return random_inputs(np.random.default_rng(seed), n, meta["input_features"]), None, None
    from model.nets.data import load_fashion_mnist
    if dataset != "fashion-mnist":
        raise CliError(f"program uses dataset {dataset!r}, which this vqe cannot load")
    x, y = load_fashion_mnist("test")
    if not 0 <= offset or offset + n > len(x):
        raise CliError(f"--offset {offset} --images {n} runs past the {len(x)} test images")
    x, y = x[offset:offset + n], y[offset:offset + n]
    from model.nets.frontends import FrontendError, frontend_features
    try:  # LeNet-5: the host computes the convolutional features the engine's FC tail takes
        features = frontend_features(meta.get("frontend"), meta.get("feature_scale", 1.0), x,
                                     network=meta["network"])
    except FrontendError as e:
        raise CliError(str(e)) from None
    return quantize_act(features, meta["input_scale"]), y, x


def cmd_run(args) -> int:
    from model.program.file import Program

    from sim.run import run_program
    program = Program.load(args.program)
    if args.images < 1:
        raise CliError("--images must be at least 1")
    if args.vcd:
        _refuse_overwrite(args.vcd, args.force)
    x_int8, labels, x_float = load_inputs(program.meta, args.images, args.offset, args.seed)
    reference = None
    if x_float is not None:
        from model.nets.frontends import full_network
        from model.nets.networks import predict
        reference = predict(full_network(program.meta["network"], progress=not args.quiet), x_float)
    summary = run_program(program, x_int8, labels, args.backend, latency=args.latency, stall=args.stall,
                          seed=args.seed, vcd=args.vcd, reference_predictions=reference)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key in ("network", "method", "backend", "images", "accuracy", "reference_accuracy", "bit_exact",
                    "mismatches", "cycles", "ideal_cycles", "utilization", "sim_cycles_per_second"):
            print(f"{key:>22}: {summary[key]}")
        print(f"{'compression':>22}: {summary['compression']}")
    if summary["bit_exact"] is False:
        print("vqe: error: the RTL disagrees with the golden model"
              f" ({summary['mismatches']} images, counters {sorted(summary['counter_mismatches'])})",
              file=sys.stderr)
        return EXIT_ERROR
    return 0


# --- verilog ----------------------------------------------------------------------------------
def cmd_verilog(args) -> int:
    from model.program.file import Program

    from sim.backends.top import engine_verilog
    if not args.program:
        raise CliError("give --program FILE: the engine's codebook ROM is elaborated from a program")
    out = _refuse_overwrite(args.output, args.force)
    config = Program.load(args.program).config
    text = engine_verilog(config, addr_width=args.addr_width, name=args.name)
    out.write_text(text)
    print(f"wrote {out}: module {args.name}, {config.lanes} lanes, codebook depth {config.codebook_depth}, "
          f"{config.rom_entries} ROM entries", file=sys.stderr)
    return 0


# --- inspect ----------------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    from model.program.file import Program
    program = Program.load(args.program)
    meta = dict(program.meta)
    meta["rom"] = f"<{len(meta['rom'])} codewords>"
    meta["image_words"] = len(program.image)
    print(json.dumps(meta, indent=2))
    return 0


# --- report -----------------------------------------------------------------------------------
def cmd_report(args) -> int:
    from sim.report.build import make_report
    make_report(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from model.contract.layout import LayerMode
    p = Parser(
        prog="vqe",
        description="VQ Engine: compress a neural network with vector quantization, run it on the "
                    "engine's RTL bit-exactly against a golden model, and report its energy and area.",
        epilog="Example: vqe compress --network lenet300 --method kmeans -o f.vqz && "
               "vqe run f.vqz --backend icarus --images 2 --json")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    c = sub.add_parser("compress", help="compress a network into a program file",
                       description="Train (or load from cache) a network, compress its weights with vector "
                                   "quantization, lower it to int8 and write one program file.")
    c.add_argument("--network", required=True,
                   help="network: lenet300 or lenet5 for engine programs (LeNet-5's convolutions run on the "
                        "host, the engine runs its fully-connected tail); any zoo network for pq/rq/lr2vq, and for "
                        "universal at model level (written as JSON: e.g. minilm, crepe-tiny, onet)")
    c.add_argument("--method", required=True,
                   help="engine programs: kmeans (per-layer k-means VQ, codebooks in ROM), universal (the "
                        "shared universal codebook in ROM, differentiable assignment), pvq (pyramid VQ: "
                        "enumeration index + scale per sub-vector, no codebook), deepcomp (Deep Compression: "
                        "pruning, trained scalar quantization, Huffman-coded sparse rows; lenet300). "
                        "Model-level baselines, "
                        "written as JSON: pq (product), rq (residual), lr2vq (low-rank VQ)")
    c.add_argument("--codebook", default=None,
                   help="universal: codebook file (default the shipped model/codebooks/universal-d4-k128-v1.npz "
                        "for engine programs, the nested universal-d4-k16384-nested-v1.npz at model level)")
    c.add_argument("--bits-per-weight", type=float, default=None,
                   help="pvq: all-in bit budget per weight that sets K per layer (default 4)")
    c.add_argument("--lanes", type=int, default=4,
                   help="engine lanes = sub-vector dimension (default 4; lr2vq: its m)")
    c.add_argument("--codebook-size", type=int, default=None,
                   help=f"kmeans/pq/rq/lr2vq: codewords per codebook (default {DEFAULT_CODEBOOK_SIZE}); universal "
                        "on a network the engine does not run: the stage of the nested ROM to fit to (default the "
                        "network's recipe: 16384 for minilm)")
    c.add_argument("--stages", type=int, default=None, help="rq: residual stages (default 2)")
    c.add_argument("--rank", type=int, default=None, help="lr2vq: dimension r of the clustered subspace (default 2)")
    c.add_argument("--quick-eval", action="store_true",
                   help="pq/rq/lr2vq: the network's small evaluation set; universal (model level): also a tiny "
                        "training budget (a smoke test)")
    c.add_argument("--finetune-epochs", type=int, default=None,
                   help="epochs of codeword fine-tuning after k-means (default: the method's own)")
    c.add_argument("--calibration", type=int, default=2000, help="training images for activation calibration")
    c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    c.add_argument("-o", "--output", required=True,
                   help="file to write: a program (.vqz), or a JSON result for pq/rq/lr2vq")
    c.add_argument("--force", action="store_true", help="overwrite an existing output file")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    c.set_defaults(func=cmd_compress)

    cb = sub.add_parser("codebook", help="build a universal codebook (the engine's ROM)",
                        description="Universal codebook tools (VQ4ALL, arXiv 2412.06875).")
    cbsub = cb.add_subparsers(dest="codebook_command", metavar="ACTION", required=True, parser_class=Parser)
    cbb = cbsub.add_parser("build", help="extract a codebook from donor networks by kernel density estimation",
                           description="Sample row-normalized weight sub-vectors equally from each donor, fit a "
                                       "Gaussian KDE (bandwidth by held-out likelihood), draw from it and cluster "
                                       "the draws into the codewords; write an int8 codebook file (.npz).")
    cbb.add_argument("--donors", nargs="+", required=True,
                     help="donor networks (space or comma separated), e.g. minilm crepe-tiny onet")
    cbb.add_argument("--dim", type=int, default=None, help="codeword dimension = engine lanes (default 4)")
    cbb.add_argument("--size", type=int, default=None, help="codewords, a power of two (default 128)")
    cbb.add_argument("--seed", type=int, default=0, help="sampling and k-means seed (default 0)")
    cbb.add_argument("-o", "--output", required=True, help="codebook file to write (.npz)")
    cbb.add_argument("--force", action="store_true", help="overwrite an existing output file")
    cbb.set_defaults(func=cmd_codebook_build)

    r = sub.add_parser("run", help="run a program on a backend and compare with the golden model",
                       description="Run N test images through the program on a backend. RTL backends are "
                                   "checked against the golden model on every output and every counter.")
    r.add_argument("program", help="program file (.vqz)")
    r.add_argument("--backend", required=True, help="golden, amaranth, icarus or verilator")
    r.add_argument("--images", type=int, default=1, help="number of test images (default 1)")
    r.add_argument("--offset", type=int, default=0, help="first test image (default 0)")
    r.add_argument("--latency", type=int, default=10, help="DRAM read latency in cycles (default 10)")
    r.add_argument("--stall", type=int, default=0,
                   help="random DRAM stalls, probability in 1/256ths per handshake (default 0)")
    r.add_argument("--seed", type=int, default=1, help="stall LFSR seed / random-input seed (default 1)")
    r.add_argument("--vcd", help="write waveforms to this file (amaranth, icarus, verilator)")
    r.add_argument("--force", action="store_true", help="overwrite an existing --vcd file")
    r.add_argument("--json", action="store_true", help="print the JSON summary")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("verilog", help="write the engine's Verilog",
                       description="Elaborate the engine with a program's ROM and parameters and write Verilog.")
    v.add_argument("--program", help="program whose lanes, codebook depth and ROM contents to use")
    v.add_argument("--addr-width", type=int, default=24, help="DRAM word-address width (default 24)")
    v.add_argument("--name", default="vqe_engine", help="top module name (default vqe_engine)")
    v.add_argument("-o", "--output", required=True, help="Verilog file to write")
    v.add_argument("--force", action="store_true", help="overwrite an existing output file")
    v.set_defaults(func=cmd_verilog)

    i = sub.add_parser("inspect", help="print a program file's metadata",
                       description="Check a program file and print its metadata (network, method, engine "
                                   "parameters, layers, compression) as JSON.")
    i.add_argument("program", help="program file (.vqz)")
    i.set_defaults(func=cmd_inspect)

    rep = sub.add_parser("report", help="write the energy and area report",
                         description="Regenerate REPORT.md, energy.json, area.json and plots.")
    rep.add_argument("-o", "--output", required=True, help="report directory")
    rep.add_argument("--energy-table", help="energy table (TOML) to use instead of the default")
    rep.add_argument("--program", action="append",
                     help="program(s) to report on (repeatable; default build/lenet300.vqz)")
    rep.add_argument("--images", type=int, default=100, help="test images for the golden counters (default 100)")
    rep.add_argument("--cross-check", type=int, default=2,
                     help="images also run on the RTL backend, outputs and counters compared (default 2; 0 = none)")
    rep.add_argument("--backend", default="icarus", help="RTL backend of the cross-check (default icarus)")
    rep.add_argument("--quick", action="store_true",
                     help="synthesize only the lanes=4, depth=256 engine instead of the lanes x depth sweep")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    rep.set_defaults(func=cmd_report)
    return p


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def main(argv=None) -> int:
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("vqe: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `vqe inspect f | head`
        return 0
    except Exception as e:  # noqa: BLE001 - the one place that turns failures into one line
        if os.environ.get("VQE_DEBUG"):
            raise
        if isinstance(e, (VqeError, OSError)):
            msg = str(e.args[0]) if type(e).__str__ is KeyError.__str__ and e.args else str(e)
            print(f"vqe: error: {msg}", file=sys.stderr)
            return EXIT_ERROR
        print(f"vqe: internal error: {type(e).__name__}: {e} (set VQE_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
