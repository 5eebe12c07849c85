"""``vqe inspect``: a program file checked, and its metadata printed as JSON."""
from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    """Add the ``inspect`` subcommand to the subparsers ``sub``."""
    i = sub.add_parser("inspect", help="print a program file's metadata",
                       description="Check a program file and print its metadata (network, method, engine "
                                   "parameters, layers, compression) as JSON.")
    i.add_argument("program", help="program file (.vqz)")
    i.set_defaults(func=cmd_inspect)


def cmd_inspect(args) -> int:
    """Load ``args.program`` (which checks it) and print its metadata, the ROM and the input index summarised."""
    from model.program.file import Program
    program = Program.load(args.program)
    if program.segmented:
        return _inspect_partitioned(program)
    meta = dict(program.meta)
    meta["rom"] = f"<{len(meta['rom'])} codewords>"
    if "input_index" in meta:
        pads = sum(1 for i in meta["input_index"] if i < 0)
        meta["input_index"] = f"<{len(meta['input_index'])} input values, {pads} of them padding the host writes>"
    meta["image_words"] = len(program.image)
    print(json.dumps(meta, indent=2))
    print(placement_summary(program.meta), file=sys.stderr)
    return 0


def _inspect_partitioned(program) -> int:
    """A partitioned program: its metadata without the segments' layers, then the partition, one line per
    segment, and each engine segment's placement."""
    from model.program.segments import partition_lines
    meta = {k: v for k, v in program.meta.items() if k != "segments"}
    meta["rom"] = f"<{len(meta['rom'])} codewords>"
    meta["image_words"] = len(program.image)
    meta["segments"] = f"<{len(program.meta['segments'])} segments: below>"
    print(json.dumps(meta, indent=2))
    print("\n".join(partition_lines(program)))
    for seg, job in program.engine_segments():
        print(f"{seg['name']}: {placement_summary(job.meta)}", file=sys.stderr)
    return 0


def placement_summary(meta: dict) -> str:
    """Where each layer's stream lives, in words: one line per layer, after the weight SRAM's size."""
    words = meta["engine"].get("weight_sram_words", 0)
    lines = [f"weight SRAM: {words * 4 / 1024:g} KiB ({words} words)"]
    for i, layer in enumerate(meta["layers"]):
        p = layer["placement"]
        where = f"weight SRAM words {p['wsram_addr']}..{p['wsram_addr'] + p['words'] - 1}" if p["resident"] \
            else "DRAM (streamed for every image)"
        lines.append(f"  layer {i} ({layer['mode']}, {layer['in_features']}->{layer['out_features']}): "
                     f"{p['words']} words in {where}")
    return "\n".join(lines)
