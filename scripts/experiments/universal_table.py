"""Markdown rendering of the universal-codebook benchmark table (``reports/universal_table.json``).

The JSON is written by :mod:`scripts.experiments.universal`: ``codebook`` (the
nested ROM, its KDE and extension parameters), ``networks`` (time per
network) and ``rows`` (network x method x configuration).  The rendering
shows, per network, every row, then checks the issue's criteria on the
measured rows: nothing here is typed in by hand.
"""
from __future__ import annotations

#: Quality drop allowed against the float network (LeNets) and against per-layer k-means (non-donor).
MAX_DROP = 0.01
MIN_RATIO_LENET = 16.0
MIN_RATIO_MINILM = 8.0
MIN_COSINE_MINILM = 0.95
#: Metrics on a 0..1 scale shown as percentages.
PERCENT_METRICS = ("accuracy", "pitch_acc_50c", "fidelity_1px")


def _q(metric: str, v: float) -> str:
    return f"{100 * v:.2f}%" if metric in PERCENT_METRICS else f"{v:.4f}"


def _d(metric: str, v: float) -> str:
    return f"{100 * v:+.2f} pt" if metric in PERCENT_METRICS else f"{v:+.4f}"


def _cfg(r: dict) -> str:
    c = r["config"]
    if r["method"].startswith("universal"):
        extra = "".join(f", {k}={v}" for k, v in c.items() if k not in ("dim", "k", "donor"))
        return f"ROM prefix k={c['k']}{extra}" + (" (donor)" if c.get("donor") else "")
    return " ".join(f"{k}={v}" for k, v in c.items())


def network_table(rows: list[dict]) -> list[str]:
    """One Markdown table of a network's rows."""
    r0 = rows[0]
    out = [f"### {r0['network']} ({r0['metric']}; float {_q(r0['metric'], r0['float_quality'])}; "
           f"{r0['weights']:,} coded weights)", "",
           "| method | configuration | bits/weight | ratio vs fp32 | quality | vs float | time (s) |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        extra = ""
        probe = (r.get("metrics") or {}).get("probe_acc")
        if probe is not None:
            # MiniLM's paraphrase-retrieval probe: the task metric next to the embedding cosine.
            extra = f" (probe {100 * probe:.1f}%, fp32 {100 * r['metrics']['probe_acc_fp32']:.1f}%)"
        if "int8_quality" in r:
            extra = f" (engine int8 {_q(r['metric'], r['int8_quality'])}, {r['engine_ratio_vs_fp32']:.1f}x)"
        out.append(f"| {r['method']} | {_cfg(r)} | {r['bits_per_weight']:.3f} | {r['ratio_vs_fp32']:.2f}x | "
                   f"{_q(r['metric'], r['quality'])}{extra} | {_d(r['metric'], r['delta'])} | {r['seconds']:.0f} |")
    return out


def criteria(rows: list[dict]) -> list[str]:
    """The issue's acceptance checks, evaluated on the rows present."""
    out = []
    by = {}
    for r in rows:
        by.setdefault(r["network"], []).append(r)
    for name in ("lenet300", "lenet5"):
        uni = [r for r in by.get(name, []) if r["method"] == "universal" and r["config"]["k"] == 128]
        for r in uni:
            ok = r["ratio_vs_fp32"] >= MIN_RATIO_LENET and r["delta"] >= -MAX_DROP
            out.append(f"- {name}, shipped 128-entry ROM: {r['ratio_vs_fp32']:.1f}x (>= {MIN_RATIO_LENET:.0f}x), "
                       f"accuracy {_d(r['metric'], r['delta'])} vs float (>= -1 pt): **{'met' if ok else 'NOT met'}**")
    uni = [r for r in by.get("minilm", []) if r["method"] == "universal"]
    if uni:
        good = [r for r in uni if r["ratio_vs_fp32"] >= MIN_RATIO_MINILM and r["quality"] >= MIN_COSINE_MINILM]
        # Met: the smallest fit that meets it; not met: the closest (best cosine) at >= 8x.
        small = [r for r in uni if r["ratio_vs_fp32"] >= MIN_RATIO_MINILM] or uni
        best = (max(good, key=lambda r: (r["ratio_vs_fp32"], r["quality"])) if good
                else max(small, key=lambda r: r["quality"]))
        out.append(f"- minilm: best universal fit {_cfg(best)}: {best['ratio_vs_fp32']:.1f}x (>= "
                   f"{MIN_RATIO_MINILM:.0f}x), mean embedding cosine {best['quality']:.4f} (>= {MIN_COSINE_MINILM}): "
                   f"**{'met' if good else 'NOT met'}**")
    for name, rs in by.items():
        uni = [r for r in rs if r["method"] == "universal" and not r["config"].get("donor")]
        for u in uni:
            # Equal bits: per-layer k-means with the same sub-vector dimension and codebook size.
            km = [r for r in rs if r["method"] in ("kmeans", "kmeans+ft") and r["config"].get("d") == u["config"]["dim"]
                  and r["config"].get("k") == u["config"]["k"]]
            for r in km:
                diff = u["quality"] - r["quality"]
                ok = diff >= -MAX_DROP
                out.append(f"- {name} (not a donor), universal k={u['config']['k']} vs per-layer {r['method']} "
                           f"d={r['config']['d']} k={r['config']['k']} ({u['bits_per_weight']:.3f} vs "
                           f"{r['bits_per_weight']:.3f} bits/weight): {_d(u['metric'], diff)} (>= -1 point): "
                           f"**{'met' if ok else 'NOT met'}**")
    return out


def render_markdown(table: dict) -> str:
    """The whole Markdown text of a table JSON (see the module docstring)."""
    cb = table["codebook"]
    kde = cb.get("kde") or {}
    nested = cb.get("nested") or {}
    rows = table["rows"]
    notes = table.get("notes") or {}
    lines = ["## Universal codebook vs per-layer baselines", "",
             f"One int8 ROM of {cb['k']} x {cb['dim']} codewords ({cb['rom_bytes']:,} bytes), nested: its first "
             f"{', '.join(str(k) for k in cb['stages'])} entries are each a codebook "
             f"({', '.join(f'{k}: {b:,} B' for k, b in cb['stage_rom_bytes'].items())}); the first "
             f"{cb['stages'][0]} are the shipped codebook the engine ROM holds (sha256 {cb['base_sha256'][:16]}). "
             f"Donors: {', '.join(cb['donors'])}. The ROM is shared by every network and is not in the ratios." +
             (f" {notes['codebook']}" if "codebook" in notes else ""), "",
             f"KDE: Gaussian kernel, bandwidth matrix factor^2 x sample covariance, factor {kde.get('factor', 0):.4f} "
             f"({kde.get('factor_over_scott')} x Scott's {kde.get('scott_factor', 0):.4f}, chosen by held-out "
             f"likelihood on {kde.get('heldout_points')} of {cb.get('samples_per_donor')} x {len(cb['donors'])} "
             f"row-RMS-normalized sub-vectors); base codewords: k-means of {kde.get('draws')} KDE draws. "
             f"Nested stages: k-means of KDE draws in blocks of {nested.get('draws')} (block 0 seeded "
             f"{nested.get('draw_seed')}, block j [{', '.join(map(str, nested.get('draw_seed') or []))}, j]; "
             f"a stage takes "
             f"{nested.get('draws_per_codeword', 64)} per codeword, so: " +
             ", ".join(f"{f['k']}: {f.get('draws', nested.get('draws'))}" for f in nested.get("stage_facts", [])) +
             f") with the earlier codewords fixed, D^2-seeded in {nested.get('seed_rounds')} batches, at most "
             f"{nested.get('lloyd_iterations_max')} Lloyd iterations per stage; int8 at the base's scale. "
             f"Mean squared error of the draws (4-D, unit-RMS rows): " +
             ", ".join(f"{f['k']}: {f['mse_int8']:.3f}" for f in nested.get("stage_facts", [])) + ".", "",
             "Bits per weight and ratios count every stored bit of the coded layers: indices, per-layer "
             "codebooks and other side data (int8 + one fp32 scale per array), per-row scales (16 bits, universal "
             "only) and biases (32 bits); the ratio is fp32 bytes of those layers' weights and biases over that. "
             "MiniLM's coded layers are its 36 encoder Linear layers (query, key, value, attention output, "
             "intermediate, output x 6 blocks); its token/position embeddings, LayerNorms and pooler are left in "
             "fp32 and are outside the ratio. Times are wall-clock seconds on one torch thread on a 2-core "
             "machine shared with other jobs (a universal row's time includes its initial assignment, teacher "
             "outputs and quality evaluations). `universal` is the soft-to-hard distilled fit; "
             "`universal-nearest` its starting point (nearest codewords with least-squares row scales, no "
             "training); `error_feedback` marks a fit whose Linear layers start instead from error-feedback "
             "codings (GPTQ-style, `model/error_feedback.py`) where those lower the distillation loss, and its "
             "`universal-ef` row is that start, untrained; `kmeans+ft` is per-layer k-means with its codewords fine-tuned by the same distillation "
             "for the same number of steps; the other baselines are post-training. \"engine int8\" is the "
             "golden model's accuracy of the lowered integer program.", ""]
    for name in dict.fromkeys(r["network"] for r in rows):
        lines += network_table([r for r in rows if r["network"] == name]) + [""]
        if name in notes:  # what the rows alone do not say (e.g. how a setting was chosen)
            lines += [notes[name], ""]
    fits = [r for r in rows if r["method"] == "universal" and "training_seconds" in r]
    if fits:
        lines += ["Training time of each universal fit (initial assignment, teacher outputs, soft-to-hard and "
                  "hard phases, quality evaluations; wall-clock seconds): " +
                  "; ".join(f"{r['network']} {_cfg(r)}: {r['training_seconds']:.0f}" for r in fits) + ".", ""]
    lines += ["### Criteria (issue 4), on the rows above", ""] + criteria(rows) + [""]
    return "\n".join(lines)
