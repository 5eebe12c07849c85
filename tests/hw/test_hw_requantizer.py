"""hw.requantizer.Requantizer: ``sat(round(acc * mult / 2**shift))``, then the activation.

Golden model: :func:`model.contract.fixedpoint.requantize`.  The input is always-ready,
so it gets random valid bubbles (garbage payload in the bubbles).  Checked:
every output value, one output per input and nothing else, the fixed `Requantizer.LATENCY`-cycle
latency; stimulus covers shift 0 and 63, the int32 extremes, mult 0/1/65535,
exact half-way cases (round half up, also for negatives), values landing just
inside and outside the int8 range (saturation at both ends); no activation, ReLU
(slope 0), leaky ReLU with random slopes (extremes included) and the floor activation.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.layouts import RowResult
from hw.requantizer import Requantizer
from model.contract.fixedpoint import requantize

from hwsim import Mutant, pack, simulate, stalls, to_signed

LATENCY = Requantizer.LATENCY
#: Activations: (relu, floor).
ACTIVATIONS = {"none": (False, False), "relu": (True, False), "floor": (False, True)}
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def make_stimulus(rng, n: int):
    """(acc, mult, shift) triples mixing random, edge and targeted cases."""
    cases = []
    edges_acc = [0, 1, -1, I32_MAX, I32_MIN, I32_MAX - 1, I32_MIN + 1, 127, 128, -128, -129]
    edges_mult = [0, 1, 2, 0x7FFF, 0x8000, 0xFFFF]
    for a in edges_acc:
        for mlt in edges_mult:
            for s in (0, 1, 31, 47, 48, 62, 63):
                cases.append((a, mlt, s))
    # exact halves: acc * mult = (2k + 1) * 2**(s-1), for positive and negative k
    for _ in range(120):
        s = int(rng.integers(1, 40))
        k = int(rng.integers(-300, 300))
        p = (2 * k + 1) << (s - 1)
        mult = 1 << int(rng.integers(0, 16))
        if p % mult == 0 and I32_MIN <= p // mult <= I32_MAX:
            cases.append((p // mult, mult, s))
        elif I32_MIN <= p <= I32_MAX:
            cases.append((p, 1, s))
    # results just around the saturation bounds and zero: pick the shift that maps acc*mult near them
    for _ in range(n // 3):
        acc = int(rng.integers(I32_MIN, I32_MAX + 1)) >> int(rng.integers(0, 31))
        mult = int(rng.integers(1, 1 << 16))
        p = abs(acc * mult)
        s = max(0, min(63, p.bit_length() - 7 + int(rng.integers(-2, 3))))
        cases.append((acc, mult, s))
    while len(cases) < n:   # fully random
        cases.append((int(rng.integers(I32_MIN, I32_MAX + 1)), int(rng.integers(0, 1 << 16)),
                      int(rng.integers(0, 64))))
    order = rng.permutation(len(cases))
    return [cases[i] for i in order]


def with_act(rng, cases, activation: str):
    """Each (acc, mult, shift) case with an activation parameter: slopes over the whole field (a third
    zero: plain ReLU), floors over int8."""
    if activation == "floor":
        acts = rng.integers(-128, 128, size=len(cases))
    else:
        acts = np.where(rng.random(len(cases)) < 1 / 3, 0, rng.integers(-512, 512, size=len(cases)))
        acts[:4] = [-512, 511, 256, -256]
    return [c + (int(a),) for c, a in zip(cases, acts)]


def run_requantizer(dut, cases, activation: str, *, seed: int, bubble: float = 0.3):
    rng = np.random.default_rng(seed)
    n_cycles = int(len(cases) / (1 - bubble)) * 2 + 40
    gaps = stalls(rng, n_cycles, bubble)
    words = [pack(RowResult, acc=a, mult=m, shift=s, act=act) for a, m, s, act in cases]
    obs = {"out": [], "out_cycles": [], "in_cycles": []}
    relu, floor = ACTIVATIONS[activation]

    async def bench(ctx):
        ctx.set(dut.relu, int(relu))
        ctx.set(dut.floor, int(floor))
        pos = 0
        for cycle in range(n_cycles):
            if pos < len(words) and not gaps[cycle]:
                ctx.set(dut.result.valid, 1)
                ctx.set(dut.result.payload.as_value(), words[pos])
                obs["in_cycles"].append(cycle)
                pos += 1
            else:
                ctx.set(dut.result.valid, 0)
                ctx.set(dut.result.payload.as_value(), int(rng.integers(0, 1 << 54)))
            if ctx.get(dut.output.valid):
                obs["out"].append(to_signed(int(ctx.get(dut.output.payload)), 8))
                obs["out_cycles"].append(cycle)
            await ctx.tick()
            if pos == len(words) and cycle > obs["in_cycles"][-1] + LATENCY + 5:
                return
        raise AssertionError(f"timeout: {pos}/{len(words)} inputs")

    simulate(dut, bench)
    return obs


def golden(cases, activation):
    acc, mult, shift, act = (np.array(c, dtype=np.int64) for c in zip(*cases))
    relu, floor = ACTIVATIONS[activation]
    return [int(v) for v in requantize(acc, mult, shift, relu, act, floor)]


def check(obs, cases, activation):
    expected = golden(cases, activation)
    assert len(obs["out"]) == len(expected)
    mismatches = [(cases[i], obs["out"][i], expected[i]) for i in range(len(expected))
                  if obs["out"][i] != expected[i]]
    assert mismatches == [], \
        f"{len(mismatches)} mismatches, first: (acc, mult, shift, act), got, expected = {mismatches[:5]}"
    assert [o - i for i, o in zip(obs["in_cycles"], obs["out_cycles"])] == [LATENCY] * len(cases)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_requantizer_random(activation):
    seed = list(ACTIVATIONS).index(activation)
    rng = np.random.default_rng(17 + seed)
    cases = with_act(rng, make_stimulus(rng, 1100), activation)
    expected = golden(cases, activation)
    # the stimulus reaches both saturation bounds, zero, and many unsaturated values
    assert expected.count(127) > 20 and expected.count(-128 if activation == "none" else 0) > 20
    assert sum(-128 < v < 127 for v in expected) > 100
    if activation == "relu":   # leaky: negative outputs, some saturated
        assert sum(v < 0 for v in expected) > 100 and expected.count(-128) > 10
    obs = run_requantizer(Requantizer(), cases, activation, seed=5 + seed)
    check(obs, cases, activation)


def test_requantizer_golden_spot_checks():
    """The golden rule on hand-computed values (so the model itself is pinned down)."""
    cases = [(5, 1, 1), (-5, 1, 1), (7, 1, 1), (-7, 1, 1), (3, 1, 0), (1000, 1, 0), (-1000, 1, 0),
             (I32_MIN, 0xFFFF, 63), (I32_MAX, 0xFFFF, 63), (-1, 1, 63), (100, 3, 2)]
    assert golden([c + (0,) for c in cases], "none") == [3, -2, 4, -3, 3, 127, -128, 0, 0, 0, 75]
    assert golden([c + (0,) for c in cases], "relu") == [3, 0, 4, 0, 3, 127, 0, 0, 0, 0, 75]
    # Slope 64/256 = 0.25: -2 -> round(-0.5) = 0 (half up), -1000 -> -250 -> saturates, -3 -> round(-0.75) = -1.
    assert golden([c + (64,) for c in cases], "relu") == [3, 0, 4, -1, 3, 127, -128, 0, 0, 0, 75]
    # Slope -256/256 = -1 mirrors negatives; -1000 beyond 16 bits' worth stays exact (saturates).
    assert golden([(-5, 1, 0, -256), (-100000, 1, 0, -256), (-100000, 1, 0, 1)], "relu") == [5, 127, -128]
    assert golden([c + (-3,) for c in cases], "floor") == [3, -2, 4, -3, 3, 127, -3, 0, 0, 0, 75]


def test_requantizer_activation_is_per_layer():
    """Switching the activation between runs of the same values changes what the golden model says it does."""
    rng = np.random.default_rng(99)
    cases = with_act(rng, make_stimulus(rng, 200), "floor")
    for activation in ACTIVATIONS:
        obs = run_requantizer(Requantizer(), cases, activation, seed=1, bubble=0.0)
        check(obs, cases, activation)


def test_requantizer_mutant_is_caught():
    """A requantizer that truncates instead of rounding, or saturates wrongly, fails."""
    rng = np.random.default_rng(4)
    cases = with_act(rng, make_stimulus(rng, 300), "relu")
    for fn in (lambda y: y + 1, lambda y: y & 0x7F):
        obs = run_requantizer(Mutant(Requantizer(), {"output.payload": fn}), cases, "none", seed=4)
        with pytest.raises(AssertionError):
            check(obs, cases, "none")
