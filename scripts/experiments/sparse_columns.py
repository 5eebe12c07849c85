"""What an EIE-style column-wise sparse mode could reach on Deep Compression (issue 16, item 2): a cycle model.

Usage::

    python -m scripts.experiments.sparse_columns [--network lenet300] [--images 100] [--slots 4 8 16]
        [--queues 16 64] [--scan-rates 1 4] [--empty-cost 0] [--control-cycles N]
        [--json reports/sparse_columns.json] [--markdown reports/sparse_columns.md]
        [--plot reports/sparse_columns.png] [--report reports/REPORT.md]
        [--rtl-slots 1 2 4] [--rtl-images 10] [--rtl-queue 64]

Issue 16 asks for useful MACs / (cycles x lanes x PEs) >= 0.8 on LeNet-300-100 with Deep Compression.  The
engine's row format cannot get there (at most one weight a cycle per PE, and it visits the weights of zero
activations), so the engine has a column-wise mode (EIE, Han et al. 2016; ``vqe compress --sparse-format
columns``, measured in the engine by `scripts/experiments/columns_engine.py`).  This script measures what such
architectures can reach at all, on the real network and the real test images: a
cycle-level model of the slots (``lanes x PEs`` multipliers), fed with the golden model's per-layer activations
of the first ``--images`` Fashion-MNIST test images and the non-zero weights of the program's decoded layers.
The model runs no RTL; its figures bound the RTL's from above under the assumptions listed.

Designs (`DESIGNS`):

``interleaved``
    EIE's own: row ``r`` in slot ``r mod S``; every non-zero activation is broadcast to every slot's queue; a slot
    spends a cycle per entry of that column it holds.
``balanced``
    As ``interleaved``, but rows are dealt to slots by the program writer so that their stored non-zero weights
    balance (largest row first, to the least loaded slot with room; :func:`model.codecs.sparse_columns.deal_rows`):
    a static balance, as `model.program.balance` does for PEs.
``dispatch``
    Column dispatch: each non-zero activation goes to the first free slot, which walks the whole column and
    accumulates into its own partial sums of every row (each slot needs every column's entries, and the output
    phase adds ``S`` partial sums per row).

Assumptions of the model (no figure of the RTL's is assumed, and none of these is measured here):

- the scanner reads one input lane-word a cycle, when it has forwarded the last one's non-zero activations, and
  forwards up to ``--scan-rates`` of them a cycle (one, as EIE's; or a lane-word's);
- a slot's column-pointer stage runs ahead of its entry stage, so a column with no entry in the slot costs it no
  cycle (``--empty-cost 1`` charges one); pipeline latencies are not counted;
- per layer, an output phase of one row a cycle (``rows``), one lane-word a cycle (``lane-words``), or none but
  the last layer's lane-words, because each layer's requantized lane-words feed the next layer's scanner as they
  are produced (``overlapped``);
- ``dispatch``'s output phase adds a row's ``S`` partial sums in the same cycles (an adder tree per lane), at
  the other designs' rate.

The balanced design is the RTL block :class:`hw.sparse_columns.SparseColumns` (in the engine's column unit):
``--rtl-slots`` runs it alone in the Amaranth simulator on the first ``--rtl-images`` images, every layer's output
checked against its golden twin and the dense product, and measures its own cycles (scan, slots, pipeline, one
output lane-word a cycle; no engine control around it).

Each point also gives the control and I/O cycles per inference that `UTILIZATION_AIM` leaves room for
(``control_budget_*``), and the utilization with today's engine's measured control and I/O cycles added
(``--control-cycles``, default read from ``reports/pes_table.json``: LeNet-300-100 k-means at P = 1, its steady-state
cycles per inference minus one cycle per beat, measured on Verilator: the input load, the descriptors, the output
store).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: Row-to-slot assignments of the model (see the module docstring).
DESIGNS = ("interleaved", "balanced", "dispatch")
#: Output phases of the model (see the module docstring).
OUTPUTS = ("rows", "lane-words", "overlapped")
#: The trained networks whose layers are all fully connected, which the model takes.
FC_NETWORKS = ("lenet300",)
#: Issue 16's aim: useful MACs / (cycles x lanes x PEs) of Deep Compression layers.
UTILIZATION_AIM = 0.8


@dataclass(frozen=True)
class Point:
    """One design point: ``slots`` multipliers (lanes x PEs), a queue of ``queue`` activations per slot, a scanner
    forwarding up to ``scan_rate`` non-zero activations a cycle."""
    design: str
    slots: int
    queue: int
    empty_cost: int = 0
    scan_rate: int = 1


def slot_of_rows(nonzero: np.ndarray, slots: int, design: str) -> np.ndarray:
    """The slot of each row of a layer's ``(out, in)`` non-zero mask (``dispatch``: none, every slot takes any
    column; returns zeros)."""
    out = nonzero.shape[0]
    if design == "interleaved":
        return np.arange(out) % slots
    if design == "dispatch":
        return np.zeros(out, dtype=np.int64)
    # The writer's dealing, as the RTL block takes it (rows capped at ceil(rows / slots) a slot).
    from model.codecs.sparse_columns import deal_rows
    return deal_rows(nonzero, slots)


def column_work(nonzero: np.ndarray, point: Point) -> np.ndarray:
    """Entries of each column a slot walks, ``(slots, in)``, of a layer's ``(out, in)`` non-zero weights; one row,
    the whole column, for ``dispatch`` (whichever slot takes it).  The same for every image."""
    if point.design == "dispatch":
        return nonzero.sum(axis=0)[None, :]
    slot = slot_of_rows(nonzero, point.slots, point.design)
    return np.stack([nonzero[slot == s].sum(axis=0) for s in range(point.slots)])


def layer_cycles(work: np.ndarray, x: np.ndarray, point: Point, lanes: int) -> int:
    """Cycles of one layer on one image, from its first lane-word scanned to its last entry multiplied.

    ``work``: the layer's `column_work`; ``x``: the image's input activations (``in``).
    """
    n_in = work.shape[1]
    dispatch = point.design == "dispatch"
    active = np.flatnonzero(np.asarray(x)[:n_in] != 0)
    words = -(-n_in // lanes)
    n_queues = 1 if dispatch else point.slots
    queues = [deque() for _ in range(n_queues)]
    left = [0] * point.slots        # cycles left on each slot's current column
    scanned, pending = 0, deque()   # lane-words read; their non-zero activations not yet forwarded
    cycles = 0
    while True:
        if not pending and scanned < words:
            lo, hi = scanned * lanes, min(n_in, (scanned + 1) * lanes)
            pending.extend(int(j) for j in active[(active >= lo) & (active < hi)])
            scanned += 1
        for _ in range(point.scan_rate):
            if not (pending and all(len(q) < point.queue for q in queues)):
                break
            j = pending.popleft()
            for q in queues:
                q.append(j)
        for s in range(point.slots):
            q = queues[0] if dispatch else queues[s]
            while left[s] == 0 and q:   # a column with no entry here costs `empty_cost` cycles (0: none)
                j = q.popleft()
                left[s] = int(work[0 if dispatch else s, j]) or point.empty_cost
            if left[s]:
                left[s] -= 1
        cycles += 1
        if not any(left) and not pending and scanned >= words and not any(queues):
            return cycles


def output_cycles(out_features: int, lanes: int, output: str, last: bool) -> int:
    """Cycles of a layer's output phase (see `OUTPUTS`)."""
    lane_words = -(-out_features // lanes)
    if output == "rows":
        return out_features
    return lane_words if output == "lane-words" or last else 0


def measure(masks: list[np.ndarray], activations: list[np.ndarray], point: Point, lanes: int,
            control_cycles: int) -> dict:
    """Useful MACs, cycles and utilization of ``point`` over the images of ``activations`` (per layer, ``(n, in)``).

    Useful MACs are the non-zero weights that meet a non-zero activation: the golden model's ``macs`` of a sparse
    layer (:mod:`model.contract.counters`).
    """
    works = [column_work(mask, point) for mask in masks]
    n = len(activations[0])
    compute = np.zeros((n, len(masks)), dtype=np.int64)
    macs = 0
    for i in range(n):
        for l, mask in enumerate(masks):
            x = activations[l][i]
            compute[i, l] = layer_cycles(works[l], x, point, lanes)
            macs += int(mask[:, np.asarray(x)[:mask.shape[1]] != 0].sum())
    row = {"design": point.design, "slots": point.slots, "queue": point.queue, "empty_cost": point.empty_cost,
           "scan_rate": point.scan_rate,
           "images": n, "macs_per_image": macs / n,
           "compute_cycles_per_layer": compute.mean(axis=0).round(1).tolist(),
           "ideal_cycles_per_image": macs / n / point.slots}
    for output in OUTPUTS:
        extra = sum(output_cycles(mask.shape[0], lanes, output, l == len(masks) - 1) for l, mask in enumerate(masks))
        cycles = compute.sum() / n + extra
        row[f"utilization_{output}"] = round(macs / n / (cycles * point.slots), 4)
        row[f"utilization_{output}_with_control"] = round(macs / n / ((cycles + control_cycles) * point.slots), 4)
        # The control and I/O cycles per inference the aim leaves room for (negative: the aim is out of reach).
        row[f"control_budget_{output}"] = round(macs / n / (UTILIZATION_AIM * point.slots) - cycles, 1)
    return row


def measured_control_cycles(pes_table: Path) -> int | None:
    """Today's engine's cycles per inference that are not beats: LeNet-300-100 k-means at P = 1 (Verilator), its
    steady-state cycles minus its beats (one lane-word per row per cycle); None without the table."""
    if not pes_table.exists():
        return None
    rows = json.loads(pes_table.read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    for r in rows:
        if (r["network"], r["method"], r["pes"]) == ("lenet300", "kmeans", 1) and r.get("cycles_per_inference"):
            from model.nets.networks import get_network
            beats = sum(lin.out_features * -(-lin.in_features // r["lanes"])
                        for lin in get_network("lenet300", progress=False).linears())
            return int(r["cycles_per_inference"]) - beats
    return None


def network_layers(network: str, images: int, lanes: int, seed: int = 0, weights: bool = False):
    """The Deep Compression program's decoded layers' non-zero masks (or, with ``weights``, their integer weights)
    and each layer's input activations (golden model) for the first ``images`` test images."""
    from model.compress.deepcomp.recipe import lower_network_deepcomp
    from model.contract.fixedpoint import quantize_act
    from model.golden.engine import GoldenEngine
    from model.golden.windows import forward
    from model.nets.data import load_fashion_mnist
    from model.program.writer import build_program

    lowered = lower_network_deepcomp(network, seed=seed, progress=False, lanes=lanes)
    x, _ = load_fashion_mnist("test")
    xq = quantize_act(x.reshape(len(x), -1), lowered.input_scale)[:images].astype(np.int64)
    program = build_program(lowered)
    image, _, _ = program.dram_image(xq)
    _, layers = GoldenEngine(program.config).decode(image)
    acts = [xq]
    for layer in layers[:-1]:
        acts.append(forward(layer, acts[-1], lanes))
    dense = [layer.weights()[:, :layer.desc.in_features] for layer in layers]
    return (dense if weights else [w != 0 for w in dense]), acts


def rtl_block(weights: list[np.ndarray], activations: list[np.ndarray], slots: int, lanes: int, queue: int,
              images: int) -> dict:
    """The RTL block, :class:`hw.sparse_columns.SparseColumns`, on the network's layers: every image's layers in
    turn (all resident), each output checked against the golden twin and against the dense product.

    Each layer's weights become centroid indices into the layer's distinct values (the same products as its
    codebook's).  Cycles are the block's own, from ``start`` to the last output lane-word: its scan, its
    slots' work, its pipeline and its output phase (one lane-word a cycle); no engine control around it.
    """
    from hw.sparse_columns import SparseColumns
    from model.codecs.sparse_columns import place_columns
    from model.golden.sparse_columns import column_sums
    from sim.sparse_columns import run_layers

    values = np.unique(np.concatenate([w[w != 0] for w in weights]))
    centroids = np.concatenate([[0], values])
    index_bits = max(1, (len(centroids) - 1).bit_length())
    layers = [place_columns((np.searchsorted(values, w) + 1) * (w != 0), slots) for w in weights]
    align = lambda n: -(-n // lanes) * lanes
    jobs = []
    for i in range(images):
        for number, w in enumerate(weights):
            x = np.zeros(align(w.shape[1]), dtype=np.int64)
            x[:w.shape[1]] = activations[number][i][:w.shape[1]]
            jobs.append((number, x))
    dut = SparseColumns(lanes, slots, columns=sum(align(w.shape[1]) for w in weights),
                        entries=max(sum(len(p.entry_rows) for p in (layer.slots[s] for layer in layers))
                                    for s in range(slots)),
                        rows=max(layer.local_rows for layer in layers), index_bits=index_bits, queue_depth=queue)
    from tqdm import tqdm
    with tqdm(total=len(jobs), desc=f"RTL block, {slots} slots", unit="layer", leave=False) as bar:
        got = run_layers(dut, layers, centroids, jobs, progress=bar.update)
    cycles = np.zeros((images, len(weights)), dtype=np.int64)
    macs = 0
    for (number, x), result, k in zip(jobs, got, range(len(jobs))):
        sums, events = column_sums(layers[number], centroids, x)
        if not np.array_equal(result["sums"], sums) or result["macs"] != events["macs"] \
                or result["zero_skips"] != events["zero_skips"]:
            raise AssertionError(f"image {k // len(weights)} layer {number}: the RTL block differs from its twin")
        order = layers[number].output_order()
        dense = x[:weights[number].shape[1]] @ weights[number].T
        if not np.array_equal(sums.reshape(-1)[order >= 0], dense[order[order >= 0]]):
            raise AssertionError(f"layer {number}: the column-wise layout's sums differ from the dense product")
        cycles[k // len(weights), number] = result["cycles"]
        macs += result["macs"]
    per_image = cycles.sum(axis=1).mean()
    return {"slots": slots, "queue": queue, "images": images, "macs_per_image": macs / images,
            "cycles_per_layer": cycles.mean(axis=0).round(1).tolist(), "cycles_per_image": float(per_image),
            "utilization": round(float(macs / images / (per_image * slots)), 4)}


def markdown(rows: list[dict], network: str, control: int | None) -> str:
    lines = [f"# Column-wise sparse mode on {network} (Deep Compression): a cycle model", "",
             "Useful MACs / (cycles x slots); slots = lanes x PEs. A cycle model of column-wise designs "
             "(`scripts/experiments/sparse_columns.py`, its assumptions in its docstring).", "",
             "| design | slots | queue | scan rate | MACs/image | compute cycles/layer | rows | lane-words | overlapped | "
             f"overlapped + {control} control |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['design']} | {r['slots']} | {r['queue']} | {r['scan_rate']} | {r['macs_per_image']:.0f} | "
                     f"{' / '.join(f'{c:.0f}' for c in r['compute_cycles_per_layer'])} | "
                     f"{r['utilization_rows']:.3f} | {r['utilization_lane-words']:.3f} | "
                     f"{r['utilization_overlapped']:.3f} | {r['utilization_overlapped_with_control']:.3f} |")
    return "\n".join(lines) + "\n"


def rtl_markdown(rtl: list[dict]) -> str:
    if not rtl:
        return ""
    lines = ["", "## The RTL block (balanced design), measured", "",
             "`hw.sparse_columns.SparseColumns` in the Amaranth simulator, bit-exact with its golden twin; its own "
             "cycles (scan, slots, pipeline, one output lane-word a cycle), no engine control around it.", "",
             "| slots | queue | images | MACs/image | cycles/layer | cycles/image | useful MACs / (cycles x slots) |",
             "|---|---|---|---|---|---|---|"]
    for r in rtl:
        lines.append(f"| {r['slots']} | {r['queue']} | {r['images']} | {r['macs_per_image']:.0f} | "
                     f"{' / '.join(f'{c:.0f}' for c in r['cycles_per_layer'])} | {r['cycles_per_image']:.0f} | "
                     f"{r['utilization']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    queue, rate = max(r["queue"] for r in rows), max(r["scan_rate"] for r in rows)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for design, color in zip(DESIGNS, ("C0", "C1", "C2")):
        for key, style in (("utilization_overlapped", "-"), ("utilization_overlapped_with_control", ":")):
            pts = sorted((r["slots"], r[key]) for r in rows
                         if r["design"] == design and r["queue"] == queue and r["scan_rate"] == rate)
            if pts:
                ax.plot(*zip(*pts), style, color=color, marker="o",
                        label=design + ("" if style == "-" else " + today's control cycles"))
    ax.axhline(0.8, color="grey", linestyle="--", linewidth=1, label="issue 16 target")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["slots"] for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("slots (lanes x PEs)")
    ax.set_ylabel("useful MACs / (cycles x slots)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Column-wise sparse mode, model (queue {queue}, scan {rate}/cycle, overlapped output)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Assumptions and designs: see the module docstring.")
    # The model takes matrix-vector layers: the zoo's fully connected network (LeNet-5's convolutions are not).
    parser.add_argument("--network", default="lenet300", choices=FC_NETWORKS,
                        help="the network whose Deep Compression program is modelled (fully connected only)")
    parser.add_argument("--images", type=int, default=100, help="Fashion-MNIST test images (default 100)")
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--slots", type=int, nargs="+", default=[4, 8, 16], help="lanes x PEs (default 4 8 16)")
    parser.add_argument("--queues", type=int, nargs="+", default=[16, 64], help="activations queued per slot")
    parser.add_argument("--scan-rates", type=int, nargs="+", default=[1, 4],
                        help="non-zero activations the scanner forwards a cycle (default 1 4)")
    parser.add_argument("--empty-cost", type=int, default=0, help="cycles a slot spends on a column it holds "
                        "no entry of (default 0: its pointer stage runs ahead)")
    parser.add_argument("--control-cycles", type=int, default=None,
                        help="control and I/O cycles per inference (default: measured, reports/pes_table.json)")
    parser.add_argument("--rtl-slots", type=int, nargs="*", default=[1, 2, 4],
                        help="slot counts to run the RTL block with (default 1 2 4; none: skip the RTL)")
    parser.add_argument("--rtl-images", type=int, default=10, help="images the RTL block runs (default 10)")
    parser.add_argument("--rtl-queue", type=int, default=64, help="the RTL block's queue depth (default 64)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None,
                        help="put the report's section (sim.report.sections.experiments) in this REPORT.md")
    args = parser.parse_args(argv)
    if args.images < 1 or min(args.slots + args.queues + args.scan_rates) < 1 or args.empty_cost < 0:
        parser.error("--images, --slots, --queues and --scan-rates must be positive, --empty-cost not negative")
    if args.report and not args.report.exists():
        parser.error(f"--report {args.report}: no such report (vqe report writes it)")
    if args.rtl_slots and (min(args.rtl_slots) < 1 or not 1 <= args.rtl_images <= args.images or args.rtl_queue < 1):
        parser.error("--rtl-slots and --rtl-queue must be positive, --rtl-images between 1 and --images")

    from tqdm import tqdm

    control = args.control_cycles
    if control is None:
        control = measured_control_cycles(ROOT / "reports" / "pes_table.json")
        if control is None:
            parser.error("reports/pes_table.json has no LeNet-300-100 k-means row at P = 1: pass --control-cycles")
    weights, acts = network_layers(args.network, args.images, args.lanes, weights=True)
    masks = [w != 0 for w in weights]
    points = [Point(d, s, q, args.empty_cost, r) for s in args.slots for d in DESIGNS for q in args.queues
              for r in args.scan_rates]
    rows = [measure(masks, acts, p, args.lanes, control) for p in tqdm(points, desc="design points", unit="point")]
    rtl = [rtl_block(weights, acts, slots, args.lanes, args.rtl_queue, args.rtl_images) for slots in args.rtl_slots]
    result = {"network": args.network, "lanes": args.lanes, "images": args.images, "aim": UTILIZATION_AIM,
              "control_cycles": control,
              "rows": rows, "rtl": rtl}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(rows, args.network, control) + rtl_markdown(rtl)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.plot:
        plot(rows, args.plot)
    if args.report:
        from sim.report.sections.experiments import sparse_columns_lines
        from sim.report.sections.pes import PES_JSON, replace_section
        pes_table = json.loads(PES_JSON.read_text()) if PES_JSON.exists() else None
        replace_section(args.report, sparse_columns_lines(result, pes_table))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
