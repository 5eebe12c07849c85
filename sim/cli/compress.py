"""``vqe compress``: a network compressed into an engine program, or a model-level result as JSON."""
from __future__ import annotations

import json
import sys

from model.contract.config import DEFAULT_WEIGHT_SRAM_KIB
from sim.cli.options import add_output_arguments, add_quiet_argument, refuse_overwrite, write_atomically
from sim.errors import CliError

#: --codebook-size of kmeans, pq, rq and lr2vq when not given.
DEFAULT_CODEBOOK_SIZE = 256


def add_parser(sub) -> None:
    """Add the ``compress`` subcommand to the subparsers ``sub``."""
    c = sub.add_parser("compress", help="compress a network into a program file",
                       description="Train (or load from cache) a zoo network, or read your own model file "
                                   "(--model: .pt2 or .onnx), compress its weights with vector quantization, lower it "
                                   "to int8 and write one program file.",
                       epilog="Example: vqe compress --model net.onnx --calibration calib.npy --eval e.npz "
                              "--method kmeans -o net.vqz && vqe run net.vqz --backend verilator --inputs e.npz")
    source = c.add_mutually_exclusive_group(required=True)
    source.add_argument("--network",
                        help="a zoo network: lenet300, lenet5, crepe-tiny, onet or rnet for engine programs; any zoo "
                             "network for pq/rq/lr2vq, and for universal at model level (written as JSON: e.g. "
                             "minilm)")
    source.add_argument("--model", metavar="FILE",
                        help="your own network: a torch.export program (.pt2, torch.export.save) or an ONNX model "
                             "(.onnx), lowered onto the engine's layers (the supported operators are listed in the "
                             "README); needs --calibration FILE.npy")
    c.add_argument("--method", required=True,
                   help="engine programs: kmeans (per-layer k-means VQ, codebooks in ROM), universal (the "
                        "shared universal codebook in ROM, differentiable assignment), pvq (pyramid VQ: "
                        "enumeration index + scale per sub-vector, no codebook), deepcomp (Deep Compression: "
                        "pruning, trained scalar quantization, Huffman-coded sparse rows; lenet300), lvq1, glvq, "
                        "gmlvq (an LVQ classifier, 3 prototypes per class on the PCA-64 pixels, that replaces the "
                        "network: --network lenet300 names its input; run as prototype FC layers). "
                        "Model-level baselines, "
                        "written as JSON: pq (product), rq (residual), lr2vq (low-rank VQ)")
    c.add_argument("--codebook", default=None,
                   help="universal: codebook file (default the shipped model/codebooks/universal-d4-k128-v1.npz "
                        "for engine programs, the nested universal-d4-k16384-nested-v1.npz at model level)")
    c.add_argument("--bits-per-weight", type=float, default=None,
                   help="pvq: all-in bit budget per weight that sets K per layer (default 4)")
    c.add_argument("--lanes", type=int, default=4,
                   help="engine lanes = sub-vector dimension (default 4; lr2vq: its m)")
    c.add_argument("--pes", type=int, default=1, metavar="P",
                   help="processing elements of the engine: 1, 2, 4 or 8 (default 1). Output rows (channels) are "
                        "interleaved over them, activations broadcast, and each dense layer's stream is laid out by "
                        "row group for them; deepcomp's sparse layers are written for them (each PE its own "
                        "sub-stream, with a copy of the Huffman table); PVQ and LVQ programs run on one PE")
    c.add_argument("--sparse-format", choices=("huffman", "columns"), default="huffman",
                   help="deepcomp: how the sparse layers are stored. huffman (default): Huffman-coded rows, one "
                        "weight a cycle; columns: column by column for the engine's column unit (EIE's dataflow: "
                        "non-zero activations broadcast, each lane a slot with its own rows, one kept weight a "
                        "cycle per lane, zero activations skipped), resident on chip from the first image; one PE")
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
    c.add_argument("--weight-sram", type=int, default=DEFAULT_WEIGHT_SRAM_KIB, metavar="KIB",
                   help="engine programs: on-chip weight SRAM in KiB (default %(default)s; 0 for none). Layers "
                        "whose compressed streams fit, first fit in layer order, are read from DRAM once per job "
                        "and from this SRAM for every later image; `vqe inspect` shows the placement")
    c.add_argument("--calibration", default=None, metavar="N|FILE.npy",
                   help="--network: training images for activation calibration (default 2000); --model: a .npy "
                        "float array (N, *input shape) of inputs, for activation calibration and for the "
                        "fine-tuning by distillation from the float model (kmeans, universal)")
    c.add_argument("--input-shape", metavar="C,H,W",
                   help="--model: one input without its batch (e.g. 1,28,28), where the file leaves it dynamic")
    c.add_argument("--eval", metavar="FILE.npz",
                   help="--model: the evaluation set, arrays x (inputs) and y: integer labels (quality is accuracy) "
                        "or float reference outputs (quality is the mean cosine and top-1 agreement). Default: the "
                        "float model's outputs on the calibration inputs")
    c.add_argument("--partition", action="store_true",
                   help="--network minilm --method universal: a partitioned engine program instead of the model-level "
                        "fit: the 36 encoder Linear layers on the engine (one job each, the 16,384-entry universal ROM, "
                        "nearest codewords with per-row scales), the host the rest (embeddings, attention, LayerNorm, "
                        "GELU, pooling); with --codebook model/codebooks/universal-d4-k256x2-staged-v1.npz the staged "
                        "2 x 256 ROM (the engine's RVQ mode); `vqe inspect` prints the partition, `vqe run` runs the "
                        "evaluation sentences")
    c.add_argument("--fit", action="store_true",
                   help="--partition with a staged --codebook: fit the layers to the ROM's stage sums by "
                        "distillation (a beam-searched start, then soft-to-hard assignment trained through the "
                        "engine's int8 steps, 600 + 240 steps: about 25 minutes for MiniLM on one core, cached) "
                        "instead of greedy coding")
    c.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_output_arguments(c, "file to write: a program (.vqz), or a JSON result for pq/rq/lr2vq")
    add_quiet_argument(c)
    c.set_defaults(func=cmd_compress)


def _calibration_count(args) -> int:
    """``--calibration`` of a zoo network: a count of training images (default 2000); a file with ``--model``."""
    from model.compress.registry import CompressOptions
    if args.model is not None or args.calibration is None:
        return CompressOptions().calibration
    try:
        return int(args.calibration)
    except ValueError:
        raise CliError(f"--calibration with --network is a number of training images, got {args.calibration!r} "
                       "(a file of inputs goes with --model)") from None


def cmd_compress(args) -> int:
    """Compress ``args.network`` (or the user's ``args.model``) with ``args.method`` and write the program (or JSON
    result) to ``args.output``."""
    from model.compress.pipeline import CompressOptions, compress_any
    from model.compress.registry import get_method
    out = refuse_overwrite(args.output, args.force)
    options = CompressOptions(lanes=args.lanes, codebook_size=args.codebook_size,
                              finetune_epochs=args.finetune_epochs, calibration=_calibration_count(args),
                              seed=args.seed, progress=not args.quiet, bits_per_weight=args.bits_per_weight,
                              codebook=args.codebook, stages=args.stages, rank=args.rank, quick=args.quick_eval,
                              weight_sram_kib=args.weight_sram, pes=args.pes, sparse_format=args.sparse_format)
    if args.partition:
        from model.compress.partitioned import compress_partitioned
        from model.contract.config import WORDS_PER_KIB
        if args.model is not None or args.method != "universal":
            raise CliError("--partition takes --network minilm --method universal")
        if args.pes != 1:
            raise CliError("--partition writes jobs for one processing element: leave out --pes")
        result = compress_partitioned(args.network, lanes=args.lanes, weight_sram_words=args.weight_sram * WORDS_PER_KIB,
                                      seed=args.seed, progress=not args.quiet, quick=args.quick_eval,
                                      codebook=args.codebook, fit=args.fit)
    elif args.fit:
        raise CliError("--fit goes with --partition and a staged --codebook")
    elif args.model is not None:
        from model.compress.pipeline import compress_model
        if args.calibration is None:
            raise CliError("--model needs --calibration FILE.npy: the inputs that calibrate the activations")
        result = compress_model(args.model, args.method, args.calibration, evaluation=args.eval,
                                input_shape=args.input_shape, options=options)
    else:
        for flag, value in (("--input-shape", args.input_shape), ("--eval", args.eval)):
            if value is not None:
                raise CliError(f"{flag} applies to --model only (a zoo network brings its own data)")
        result = compress_any(args.network, args.method, options)
    if isinstance(result, dict):  # a model-level result
        text = json.dumps(result, indent=2, default=float) + "\n"
        write_atomically(out, lambda tmp: tmp.write_text(text))
        st = result.get("storage", result)
        print(f"wrote {out}: {args.network} / {args.method}{get_method(args.method).describe(result)} "
              f"(model level, not an engine "
              f"program), {st['bits_per_weight']:.3f} bits/weight, {st['ratio_vs_fp32']:.2f}x vs fp32, "
              f"{result['metric']} {result['quality']:.4f} (float {result['float_quality']:.4f})", file=sys.stderr)
        return 0
    program = result
    write_atomically(out, program.save)  # never leave a half-written program behind
    c = program.meta["compression"]
    info = program.meta["info"]
    checks = info.get("source_checks", {})
    if checks:
        print(f"{args.model}: float model checked on the calibration inputs, max abs diff "
              + ", ".join(f"{k.removesuffix('_max_abs_diff')} {v:.3g}" for k, v in checks.items()), file=sys.stderr)
    print(f"wrote {out}: {program.meta['network']} / {program.meta['method']}, "
          f"{c['bytes']} bytes, {c['bits_per_weight']:.3f} bits/weight, "
          f"{c['ratio_vs_fp32']:.2f}x vs fp32" +
          (f", int8 golden {info['metric']} {info['int8_quality']:.4f} (float {info['float_quality']:.4f})"
           if "int8_quality" in info else ""), file=sys.stderr)
    return 0
