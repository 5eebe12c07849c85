"""hw.huffman.HuffmanDecoder against its golden twin model.golden.huffman.HuffmanDecoder.

One simulation drives a sequence of table loads and decode runs, each with
random valid gaps on the ``table``/``words`` streams and random ready stalls
on ``symbols``.  For every operation the RTL must match the golden model in:
the decoded symbols (in order and in number), the ``error`` code, the words
consumed (exactly the table's / the codes' words: extra words are offered and
must be left alone), and the counters summed from the ``stat_*`` strobes.
Handshake rules are checked every cycle (an offered symbol holds until taken),
and after an operation ends nothing may be read or emitted and ``error`` must
hold.  Every loop is bounded, so a hang fails as an assertion.

Also: every table and stream error class, ``start`` without a table, the
measured decode rate on a long stream (two codes per step), a golden-model fuzz (hypothesis,
thousands of random and corrupted tables and streams, checked against an
independent bit-by-bit decoder and table checker) and an RTL fuzz of 64
random and corrupted table/stream pairs.
"""
from __future__ import annotations

import collections
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hw.huffman import TABLE_SYMBOL_BANKS, HuffmanDecoder
from model.codecs.huffman import HuffmanError, HuffmanStatus, HuffmanTable, count_bits, encode
from model.contract.ints import ceil_div
from model.contract.layout import WORD_BITS
from model.golden.huffman import HuffmanDecoder as GoldenDecoder

from huffman_cases import golden_outcome, random_freqs, reference_decode, reference_steps, words_of
from hwsim import Mutant, Sink, Source, budget, simulate, stalls

TAIL = 12           # idle cycles checked after each operation
WORD_MASK = 0xFFFFFFFF


# --- the harness -------------------------------------------------------------------------------

def junk_words(rng, n: int) -> list[int]:
    return [int(x) for x in rng.integers(0, 1 << 32, size=n, dtype=np.uint64)]


def load_op(words, budget_words=None, extra=2, rng=None):
    """Load a table: ``budget_words`` (default all) words may be taken; ``extra`` more are offered."""
    words = [int(w) & WORD_MASK for w in words]
    n = len(words) if budget_words is None else budget_words
    junk = junk_words(rng or np.random.default_rng(0), extra)
    return {"op": "load", "words": words[:n], "offer": words + junk}


def run_op(words, count, n_words=None, extra=2, rng=None):
    """Decode ``count`` symbols; ``n_words`` (default all) words may be taken; ``extra`` more offered."""
    words = [int(w) & WORD_MASK for w in words]
    n = len(words) if n_words is None else n_words
    junk = junk_words(rng or np.random.default_rng(1), extra)
    return {"op": "run", "words": words[:n], "count": int(count), "offer": words + junk}


def run_rtl(dut, ops, *, seed=0, gap=0.3, stall=0.3):
    """Run ``ops`` one after another on ``dut``; returns one observation dict per operation."""
    rng = np.random.default_rng(seed)
    results = []

    async def bench(ctx):
        for op in ops:
            is_load = op["op"] == "load"
            stream_in = dut.table if is_load else dut.words
            work = len(op["offer"]) + (op.get("count", 0) if not is_load else 64 + (1 << dut.symbol_bits))
            n_cycles = budget(work, gap, stall, slack=100)
            src = Source(stream_in, op["offer"], stalls(rng, n_cycles + TAIL, gap))
            ready = stalls(rng, n_cycles, stall)
            obs = {"symbols": [], "bits": 0, "busy": 0, "issues": []}
            if is_load:
                ctx.set(dut.table_words, len(op["words"]))
                ctx.set(dut.load, 1)
            else:
                ctx.set(dut.count, op["count"])
                ctx.set(dut.n_words, len(op["words"]))
                ctx.set(dut.start, 1)
            # The command cycle: the stream is offered but must not be taken yet.
            src.drive(ctx)
            ctx.set(dut.symbols.ready, 0)
            if ctx.get(stream_in.ready):
                obs["issues"].append("word taken in the command cycle")
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.start, 0)
            sink = Sink("symbol", obs["issues"])
            sink.items = obs["symbols"]
            for cycle in range(n_cycles):
                src.drive(ctx)
                rdy = not ready[cycle]
                ctx.set(dut.symbols.ready, int(rdy))
                sink.sample(ctx.get(dut.symbols.valid), ctx.get(dut.symbols.payload), rdy, cycle)
                obs["bits"] += ctx.get(dut.events.bits)
                obs["busy"] += ctx.get(dut.events.decode)
                if ctx.get(dut.events.symbol) != int(bool(ctx.get(dut.symbols.valid)) and rdy):
                    obs["issues"].append(f"cycle {cycle}: stat_symbol wrong")
                src.sample(ctx)
                await ctx.tick()
                if not ctx.get(dut.busy):
                    break
            else:
                raise AssertionError(f"{op['op']}: no end after {n_cycles} cycles "
                                     f"(taken {src.pos}/{len(op['offer'])}, {len(obs['symbols'])} symbols)")
            obs["cycles"] = cycle + 1
            obs["taken"] = src.pos
            obs["error"] = HuffmanStatus(ctx.get(dut.error))
            obs["table_ok"] = bool(ctx.get(dut.table_ok))
            # Idle: whatever is offered, nothing is taken or emitted, and the status holds.
            for _ in range(TAIL):
                src.drive(ctx)
                ctx.set(dut.symbols.ready, 1)
                if src.offering and ctx.get(stream_in.ready):
                    obs["issues"].append("word taken after the operation ended")
                for port in (dut.symbols.valid, dut.busy, dut.events.decode, dut.events.bits):
                    if ctx.get(port):
                        obs["issues"].append(f"{port.name} active after the operation ended")
                if ctx.get(dut.error) != obs["error"]:
                    obs["issues"].append("error changed while idle")
                src.sample(ctx)
                await ctx.tick()
            ctx.set(stream_in.valid, 0)
            results.append(obs)

    simulate(dut, bench)
    return results


def expect(golden: GoldenDecoder, op) -> dict:
    """What the golden model says ``op`` does."""
    if op["op"] == "load":
        try:
            golden.load(op["words"])
        except HuffmanError:
            pass
        return {"symbols": [], "bits": 0, "busy": 0, "taken": golden.words_used,
                "error": golden.status, "table_ok": golden.table is not None}
    try:
        symbols = [int(s) for s in golden.run(op["words"], op["count"])]
    except HuffmanError as err:
        symbols = list(err.symbols)
    c = golden.counters
    assert c["huffman_symbols"] == len(symbols)
    return {"symbols": symbols, "bits": c["huffman_bits"], "busy": c["huffman_busy_cycles"],
            "taken": golden.words_used, "error": golden.status, "table_ok": golden.table is not None}


def check(dut, ops, *, seed=0, gap=0.3, stall=0.3) -> list[dict]:
    """Run ``ops`` on the RTL and the golden model and require identical observations."""
    observed = run_rtl(dut, ops, seed=seed, gap=gap, stall=stall)
    golden = GoldenDecoder(dut.max_len, dut.symbol_bits)
    for i, (op, obs) in enumerate(zip(ops, observed)):
        assert obs["issues"] == [], f"op {i} ({op['op']}): {obs['issues'][:5]}"
        want = expect(golden, op)
        got = {k: obs[k] for k in want}
        assert got == want, f"op {i} ({op['op']}): RTL {got} != golden {want}"
    return observed


def stream_for(rng, table: HuffmanTable, n: int, freqs=None):
    present = np.array(table.symbols)
    p = None
    if freqs is not None:
        p = np.asarray(freqs, dtype=np.float64)[present]
        p /= p.sum()
    symbols = rng.choice(present, size=n, p=p)
    words, _ = encode(symbols, table)
    return symbols, [int(w) for w in words]


def fibonacci_freqs(symbol_bits: int, n: int) -> np.ndarray:
    """Frequencies that make an unlimited Huffman code ``n - 1`` bits deep."""
    freqs = np.zeros(1 << symbol_bits, dtype=np.int64)
    a, b = 1, 1
    for i in range(n):
        freqs[(i * 7) % (1 << symbol_bits)] = a
        a, b = b, a + b
    return freqs


# --- RTL vs golden -----------------------------------------------------------------------------

@pytest.mark.parametrize("max_len,symbol_bits", [(15, 8), (7, 4), (4, 3), (1, 1), (32, 5)])
def test_random_tables_and_streams(max_len, symbol_bits):
    rng = np.random.default_rng(max_len * 31 + symbol_bits)
    ops = []
    for k in range(3):
        if max_len == 32 and k == 0:
            freqs = fibonacci_freqs(symbol_bits, 32)       # codes up to 31 bits
        else:
            freqs = random_freqs(rng, symbol_bits, max_len)
        table = HuffmanTable.from_freqs(freqs, symbol_bits, max_len)
        # k == 1: the word budgets run past the table and the stream (words that must be left)
        junk = junk_words(rng, 3 * (k == 1))
        ops.append(load_op(list(table.to_words()) + junk, rng=rng))
        for n in (int(rng.integers(20, 60)), int(rng.integers(1, 5))):
            symbols, words = stream_for(rng, table, n, freqs)
            ops.append(run_op(words + junk, n, rng=rng))
    ops.append(run_op([], 0))                               # nothing to decode, nothing taken
    check(HuffmanDecoder(max_len, symbol_bits), ops, seed=max_len)


@pytest.mark.parametrize("profile", [(0.0, 0.8), (0.8, 0.0), (0.6, 0.6)])
def test_stall_profiles(profile):
    """Input much slower than output and the reverse: same symbols, same busy cycles."""
    gap, stall = profile
    rng = np.random.default_rng(int(10 * sum(profile)))
    freqs = random_freqs(rng, 4, 6, n_present=16)
    table = HuffmanTable.from_freqs(freqs, 4, 6)
    ops = [load_op(table.to_words(), rng=rng)]
    for n in (50, 7):
        _, words = stream_for(rng, table, n, freqs)
        ops.append(run_op(words, n, rng=rng))
    check(HuffmanDecoder(6, 4), ops, gap=gap, stall=stall)


def test_decode_rate():
    """A long stream with no gaps or stalls: two symbols per busy cycle (a step decodes two codes),
    and one per clock (the output delivers one a cycle, so the decoder steps every other cycle)."""
    rng = np.random.default_rng(7)
    freqs = random_freqs(rng, 8, 15, n_present=200)
    table = HuffmanTable.from_freqs(freqs, 8, 15)
    n = 1500
    symbols, words = stream_for(rng, table, n, freqs)
    ops = [load_op(table.to_words()), run_op(words, n)]
    load, obs = check(HuffmanDecoder(15, 8), ops, gap=0.0, stall=0.0)
    assert obs["symbols"] == [int(s) for s in symbols]
    # a table load is a cycle for the header, one per count and, for the symbols, one per word they take
    # (four 8-bit symbols a cycle, TABLE_SYMBOL_BANKS; a field takes the word it needs in the cycle it is used)
    fields = 1 + table.longest + ceil_div(table.n_symbols, TABLE_SYMBOL_BANKS)
    assert fields <= load["cycles"] <= fields + 1
    per_busy = n / obs["busy"]
    per_clock = n / obs["cycles"]   # from the cycle after start to the last symbol
    print(f"\nHuffman table load: {table.n_symbols} symbols, {len(ops[0]['words'])} words, "
          f"{load['cycles']} cycles")
    print(f"Huffman decode: {n} symbols, {len(words)} words, {obs['busy']} busy cycles, "
          f"{obs['cycles']} cycles: {per_busy:.4f} symbols/busy cycle, {per_clock:.4f} symbols/cycle")
    assert per_busy >= 1.9 and per_clock >= 0.95
    assert obs["busy"] == n // 2 and obs["cycles"] == n + 1   # one cycle of latency, no bubbles


def test_harness_catches_a_wrong_symbol():
    rng = np.random.default_rng(3)
    table = HuffmanTable.from_freqs(random_freqs(rng, 3, 5, n_present=8), 3, 5)
    _, words = stream_for(rng, table, 20)
    mutant = Mutant(HuffmanDecoder(5, 3), {"symbols.payload": lambda v: v ^ 1})
    with pytest.raises(AssertionError, match="golden"):
        check(mutant, [load_op(table.to_words()), run_op(words, 20)])


# --- errors ------------------------------------------------------------------------------------

TABLE_CASES = {
    # name: (words, symbol_bits), for a decoder with max_len = 5
    "oversubscribed": (words_of(2, [1, 3], [0, 1, 2, 3], 2), 2),
    "oversubscribed late": (words_of(5, [0, 2, 1, 2, 9], list(range(4)), 8), 8),
    "incomplete": (words_of(2, [1, 1], [0, 1], 2), 2),
    "empty": (words_of(0, [], [], 2), 2),
    "one symbol, long code": (words_of(2, [0, 1], [3], 2), 2),
    "over limit": (words_of(6, [0] * 6, [], 2), 2),
    "over limit, big": (words_of(255, [], [], 8), 8),
    "duplicate": (words_of(2, [0, 4], [0, 1, 1, 2], 2), 2),
    "duplicate far apart": (words_of(5, [0, 0, 0, 0, 32], list(range(31)) + [17], 8), 8),
    "too many symbols": (words_of(3, [0, 1, 6], [0, 1, 2, 3, 0, 1, 2], 2), 2),
    "counts cut": (words_of(5, [0, 4, 0, 0, 0], [0, 1, 2, 3], 8)[:1], 8),
    "symbols cut": (words_of(5, [0, 4, 0, 0, 0], [0, 1, 2, 3], 8)[:2], 8),
    "no header": ([], 8),
}


@pytest.mark.parametrize("symbol_bits", [2, 8])
def test_table_errors(symbol_bits):
    """Each bad table: same error and same words consumed; a start after it is refused with
    that error (nothing read); a good table afterwards works."""
    rng = np.random.default_rng(symbol_bits)
    good = HuffmanTable.from_freqs(random_freqs(rng, symbol_bits, 5, n_present=4), symbol_bits, 5)
    symbols, words = stream_for(rng, good, 12)
    ops = []
    statuses = set()
    for name, (table_words, sb) in TABLE_CASES.items():
        try:
            HuffmanTable.parse_words(table_words, 5, sb)
            raise AssertionError(f"{name}: table accepted")
        except HuffmanError as err:
            statuses.add(err.status)
        if sb == symbol_bits:
            ops += [load_op(table_words, rng=rng), run_op(words, 12), load_op(good.to_words()),
                    run_op(words, 12)]
    observed = check(HuffmanDecoder(5, symbol_bits), ops)
    for i in range(0, len(ops), 4):
        assert observed[i]["error"] != HuffmanStatus.NONE and not observed[i]["table_ok"]
        assert observed[i + 1]["taken"] == 0 and observed[i + 1]["symbols"] == []
        assert observed[i + 3]["symbols"] == [int(s) for s in symbols]
    assert statuses >= {HuffmanStatus.OVERSUBSCRIBED, HuffmanStatus.INCOMPLETE,
                        HuffmanStatus.LENGTH_OVER_LIMIT, HuffmanStatus.BAD_SYMBOL, HuffmanStatus.TRUNCATED}


def test_stream_errors():
    rng = np.random.default_rng(11)
    single = HuffmanTable.from_lengths([0, 0, 1], 3, 4)       # symbol 2 = '0'
    freqs = random_freqs(rng, 3, 4, n_present=8)
    table = HuffmanTable.from_freqs(freqs, 3, 4)
    _, words = stream_for(rng, table, 40, freqs)
    ops = [
        run_op(words, 40),                                     # no table yet: NO_TABLE
        load_op(single.to_words()),
        run_op([0, 0x100], 50),                                # '1' at bit 40: INVALID_CODE
        run_op([0x1], 5),                                      # '1' at bit 0: INVALID_CODE
        run_op([0, 0], 64),                                    # exactly fills the words
        run_op([0, 0], 65),                                    # one more: TRUNCATED
        run_op([], 3),                                         # no words at all: TRUNCATED
        run_op([0x80000000], 31),                              # error-free: the '1' is padding
        load_op(table.to_words()),
        run_op(words, 40, n_words=len(words) - 1),             # last word withheld: TRUNCATED
        run_op(words, 200),                                    # more symbols than coded: TRUNCATED
        run_op(words, 40),                                     # and a clean run afterwards
    ]
    observed = check(HuffmanDecoder(4, 3), ops)
    errors = [o["error"] for o in observed]
    assert errors[0] == HuffmanStatus.NO_TABLE
    assert errors[2:8] == [HuffmanStatus.INVALID_CODE, HuffmanStatus.INVALID_CODE, HuffmanStatus.NONE,
                           HuffmanStatus.TRUNCATED, HuffmanStatus.TRUNCATED, HuffmanStatus.NONE]
    assert errors[9:] == [HuffmanStatus.TRUNCATED, HuffmanStatus.TRUNCATED, HuffmanStatus.NONE]
    assert observed[2]["symbols"] == [2] * 40 and observed[2]["taken"] == 2
    assert observed[2]["busy"] == 21           # 40 symbols two a step + the step that found the error


def test_start_during_load_and_restart():
    """A start while a table loads reports NO_TABLE (the load goes on); a load abandons a run."""
    rng = np.random.default_rng(5)
    table = HuffmanTable.from_freqs(random_freqs(rng, 8, 15, n_present=100), 8, 15)
    symbols, words = stream_for(rng, table, 30)
    dut = HuffmanDecoder(15, 8)
    twords = [int(w) for w in table.to_words()]
    seen = {}

    async def bench(ctx):
        ctx.set(dut.table_words, len(twords))
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        src = Source(dut.table, twords)
        for cycle in range(400):
            src.drive(ctx)
            ctx.set(dut.start, int(cycle == 10))
            src.sample(ctx)
            await ctx.tick()
            if cycle == 10:
                seen["mid_load"] = HuffmanStatus(ctx.get(dut.error))
            if not ctx.get(dut.busy):
                break
        seen["loaded"] = (ctx.get(dut.table_ok), HuffmanStatus(ctx.get(dut.error)), src.pos)
        ctx.set(dut.start, 0)
        ctx.set(dut.table.valid, 0)
        # start a run, then reload the same table half way through: the run is abandoned
        ctx.set(dut.count, 30)
        ctx.set(dut.n_words, len(words))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        wsrc = Source(dut.words, words)
        ctx.set(dut.symbols.ready, 1)
        out = []
        for _ in range(10):
            wsrc.drive(ctx)
            if ctx.get(dut.symbols.valid):
                out.append(ctx.get(dut.symbols.payload))
            wsrc.sample(ctx)
            await ctx.tick()
        ctx.set(dut.words.valid, 0)
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        for _ in range(3):        # the symbol already decoded drains; then no more
            if ctx.get(dut.symbols.valid):
                out.append(ctx.get(dut.symbols.payload))
            await ctx.tick()
        seen["abandoned"] = (out, ctx.get(dut.symbols.valid), ctx.get(dut.table_ok))

    simulate(dut, bench)
    assert seen["mid_load"] == HuffmanStatus.NO_TABLE
    assert seen["loaded"] == (1, HuffmanStatus.NO_TABLE, len(twords))
    out, valid, ok = seen["abandoned"]
    assert out == [int(s) for s in symbols[:len(out)]] and 8 <= len(out) <= 11
    assert not valid and not ok


# --- fuzzing -----------------------------------------------------------------------------------

def corrupt_table(rng, words: list[int], symbol_bits: int, kind: str) -> tuple[list[int], int]:
    """A damaged copy of table ``words`` and the word budget to give the loader."""
    words = list(words)
    n = len(words)
    cb = count_bits(symbol_bits)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 3))):
            bit = int(rng.integers(0, n * WORD_BITS))
            words[bit // WORD_BITS] ^= 1 << (bit % WORD_BITS)
    elif kind == "header":
        words[0] = int(rng.integers(0, 40)) | int(rng.integers(0, 1 << 24)) << 8
    elif kind == "count":
        n_lengths = words[0] & 0xFF
        if n_lengths:
            pos = WORD_BITS + int(rng.integers(0, n_lengths)) * cb
            bits = sum(w << (WORD_BITS * i) for i, w in enumerate(words))
            field = (bits >> pos) & ((1 << cb) - 1)
            bits ^= (field ^ ((field + int(rng.choice([-1, 1]))) & ((1 << cb) - 1))) << pos
            words = [(bits >> (WORD_BITS * i)) & WORD_MASK for i in range(n)]
    elif kind == "duplicate":
        table = HuffmanTable.from_words(words, 32, symbol_bits)
        if table.n_symbols > 1:
            symbols = list(table.symbols)
            i, j = rng.choice(len(symbols), size=2, replace=False)
            symbols[i] = symbols[j]
            words = words_of(table.longest, table.counts[1:], symbols, symbol_bits)
    elif kind == "cut":
        return words, int(rng.integers(0, n))
    return words, n


def corrupt_stream(rng, words: list[int], count: int, kind: str) -> tuple[list[int], int, int]:
    """(words, count, n_words) for a damaged stream."""
    words = list(words) or [0]
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            bit = int(rng.integers(0, len(words) * WORD_BITS))
            words[bit // WORD_BITS] ^= 1 << (bit % WORD_BITS)
    elif kind == "cut":
        return words, count, int(rng.integers(0, len(words)))
    elif kind == "more":
        count += int(rng.integers(1, 40))
    elif kind == "random":
        words = [int(x) for x in rng.integers(0, 1 << 32, size=len(words), dtype=np.uint64)]
    return words, count, len(words)


TABLE_DAMAGE = ["flip", "header", "count", "duplicate", "cut"]
STREAM_DAMAGE = ["flip", "cut", "more", "random"]


def fuzz_case(rng, max_len: int, symbol_bits: int, *, p_table=0.3, p_stream=0.5):
    """A (possibly damaged) table, one or two (possibly damaged) streams: (table words, budget, runs)."""
    one = rng.random() < 0.15
    freqs = random_freqs(rng, symbol_bits, max_len, n_present=1 if one else None)
    table = HuffmanTable.from_freqs(freqs, symbol_bits, max_len)
    twords = [int(w) for w in table.to_words()]
    tbudget = len(twords)
    if rng.random() < p_table:
        twords, tbudget = corrupt_table(rng, twords, symbol_bits, str(rng.choice(TABLE_DAMAGE)))
    runs = []
    for _ in range(int(rng.integers(1, 3))):
        count = int(rng.integers(1, 40))
        _, words = stream_for(rng, table, count, freqs)
        if one and rng.random() < 0.5:
            kind = "flip"                      # the only way to an invalid code
        else:
            kind = str(rng.choice(STREAM_DAMAGE)) if rng.random() < p_stream else "none"
        runs.append(corrupt_stream(rng, words, count, kind) if kind != "none"
                    else (words, count, len(words)))
    return twords, tbudget, runs


def reference_table_status(words, max_len: int, symbol_bits: int) -> HuffmanStatus:
    """The table rules read straight off the bit string, with exact Kraft sums (independent check)."""
    if not words:
        return HuffmanStatus.TRUNCATED
    n_lengths = int(words[0]) & 0xFF
    if n_lengths > max_len:
        return HuffmanStatus.LENGTH_OVER_LIMIT
    bits = "".join(format(int(w), "032b")[::-1] for w in words[1:])
    cb = count_bits(symbol_bits)
    counts = []
    kraft = Fraction(0)
    for length in range(1, n_lengths + 1):
        field = bits[(length - 1) * cb:length * cb]
        if len(field) < cb:
            return HuffmanStatus.TRUNCATED
        counts.append(int(field[::-1], 2))
        kraft += Fraction(counts[-1], 2 ** length)
        if kraft > 1:
            return HuffmanStatus.OVERSUBSCRIBED
    if kraft < 1 and not (sum(counts) == 1 and counts[0] == 1):
        return HuffmanStatus.INCOMPLETE
    if sum(counts) > 2 ** symbol_bits:
        return HuffmanStatus.BAD_SYMBOL
    start = n_lengths * cb
    fields = [bits[start + k * symbol_bits:start + (k + 1) * symbol_bits] for k in range(sum(counts))]
    seen = set()
    for f in fields:
        if len(f) < symbol_bits:
            return HuffmanStatus.TRUNCATED
        if f in seen:
            return HuffmanStatus.BAD_SYMBOL
        seen.add(f)
    return HuffmanStatus.NONE


GOLDEN_FUZZ_EXAMPLES = 2500


@settings(max_examples=GOLDEN_FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(max_len=st.integers(1, 16), symbol_bits=st.integers(1, 8), seed=st.integers(0, 2 ** 32 - 1),
       p_table=st.sampled_from([0.0, 0.5, 1.0]), p_stream=st.sampled_from([0.0, 0.5, 1.0]))
def test_golden_fuzz(max_len, symbol_bits, seed, p_table, p_stream):
    """Thousands of random and damaged tables and streams through the golden decoder, checked
    against the independent table checker and bit-by-bit decoder: same symbols, same error
    class, same bits and words consumed; a loaded table re-serialises to itself."""
    rng = np.random.default_rng(seed)
    twords, tbudget, runs = fuzz_case(rng, max_len, symbol_bits, p_table=p_table, p_stream=p_stream)
    golden = GoldenDecoder(max_len, symbol_bits)
    try:
        table = golden.load(twords[:tbudget])
    except HuffmanError:
        table = None
    assert golden.status == reference_table_status(twords[:tbudget], max_len, symbol_bits)
    if table is not None:
        assert HuffmanTable.from_words(table.to_words(), max_len, symbol_bits) == table
    for words, count, n_words in runs:
        if table is None:
            with pytest.raises(HuffmanError) as info:
                golden.run(words[:n_words], count)
            assert info.value.status == golden.status   # the failed load's error, checked above
            continue
        symbols, status, bits, used, counters = golden_outcome(words[:n_words], table, count)
        assert (symbols, status, bits, used) == reference_decode(words[:n_words], table, count)
        assert counters["huffman_busy_cycles"] == reference_steps(len(symbols), status != HuffmanStatus.NONE, max_len)


RTL_FUZZ_CONFIGS = [(6, 3), (9, 4), (5, 5), (15, 2)]
RTL_FUZZ_CASES = 20   # per configuration: 80 tables, about 120 streams in all


@pytest.mark.parametrize("max_len,symbol_bits", RTL_FUZZ_CONFIGS)
def test_rtl_fuzz(max_len, symbol_bits):
    """Random and damaged tables and streams through the RTL: identical to the golden model
    (symbols, error class, words consumed, counters), never a hang."""
    rng = np.random.default_rng(1000 + max_len * 10 + symbol_bits)
    ops = []
    for _ in range(RTL_FUZZ_CASES):
        twords, tbudget, runs = fuzz_case(rng, max_len, symbol_bits, p_table=0.35, p_stream=0.5)
        ops.append(load_op(twords, tbudget, rng=rng))
        ops += [run_op(words, count, n_words, rng=rng) for words, count, n_words in runs]
    observed = check(HuffmanDecoder(max_len, symbol_bits), ops, seed=max_len, gap=0.25, stall=0.25)
    runs = sum(op["op"] == "run" for op in ops)
    print(f"\nRTL fuzz ({max_len}, {symbol_bits}): {RTL_FUZZ_CASES} tables, {runs} streams, "
          f"{sum(o['cycles'] for o in observed)} cycles, errors "
          f"{sorted(collections.Counter(o['error'].name for o in observed).items())}")
    errors = {o["error"] for o in observed}
    assert HuffmanStatus.NONE in errors and len(errors) >= 3, errors
