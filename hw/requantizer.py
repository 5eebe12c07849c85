"""Requantizer: a row's 32-bit accumulator -> its int8 output, through the layer's activation."""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import Act, RowResult
from model.contract.fixedpoint import (ACC_BITS, ACT_MAX, ACT_MIN, ACT_PARAM_BITS, MULT_BITS, SLOPE_FRAC_BITS,
                                       SLOPE_INPUT_BITS)

#: Multiplier bits per partial product of the first stage (four 32 x 4 products, summed in two more stages).
NIBBLE = 4
#: Bits the coarse shift stage keeps of ``2 * product >> 8 * (shift // 8)``: the fine shift (0..7) of them
#: still leaves the 18 bits the clamp needs.
COARSE_KEEP = 18 + 7
#: Width of ``t = 2 * product >> shift`` kept after the shifts: enough to tell the clamp's two bounds.
T_BITS = 18
#: Bounds ``t`` is clamped to: ``(t + 1) >> 1`` of them is the 16-bit clamp of the rounded value.
T_MAX, T_MIN = (1 << (SLOPE_INPUT_BITS)) - 2, -(1 << SLOPE_INPUT_BITS)


def _saturated(value):
    """``value`` clamped to int8."""
    return Mux(value > ACT_MAX, ACT_MAX, Mux(value < ACT_MIN, ACT_MIN, value))


def _add_shifted(low, high, k):
    """``low + (high << k)``, signed, with the ``k`` low bits of ``low`` passed through (no adder for them)."""
    return Cat(low[:k], low[k:].as_signed() + high).as_signed()


def _times_unsigned(a, b):
    """``a * b`` for a signed ``a`` and an unsigned ``b``, as radix-4 rows of shifts and adds.

    Each pair of ``b``'s bits picks 0, ``a``, ``2a`` or ``3a`` (``3a`` is one adder, shared by every
    row), so a row costs a 4-way select instead of two AND rows: on the iCE40, which has no multiplier,
    this takes about a fifth fewer LUTs than ``*`` and keeps the carry chains short.
    """
    rows = []
    for j in range(0, len(b) - 1, 2):
        d = b[j:j + 2]
        rows.append((j, Mux(d == 0, 0, Mux(d == 1, a, Mux(d == 2, a << 1, a + (a << 1))))))
    if len(b) % 2:
        rows.append((len(b) - 1, Mux(b[-1], a, 0)))
    out = rows[0][1]
    for j, row in rows[1:]:
        out = _add_shifted(out, row, j)
    return out


class Requantizer(wiring.Component):
    """Scales a 32-bit accumulator to int8: ``sat(round(acc * mult / 2**shift))``, then the activation.

    Pipelined, one row per cycle, in `LATENCY` stages, each at most one carry chain deep so the
    engine's clock is not set here (issue 16):

    1. four partial products ``acc * mult[4k:4k+4]`` (radix-4 rows, `_times_unsigned`);
    2. their sums in pairs; 3. the 48-bit product ``p``;
    4. the coarse right shift of ``x = 2p`` by ``8 * (shift // 8)``, keeping `COARSE_KEEP` bits and
       whether the bits above them are all sign; 5. the fine shift by ``shift % 8`` to
       ``t = x >> shift`` (`T_BITS` bits) and its clamp to [`T_MIN`, `T_MAX`];
    6. the rounding, ``(t + 1) >> 1``: round half up, since ``t = 2 * (p >> shift) + bit(shift-1, p)``,
       and already the 16-bit clamp of the rounded value the slope needs; its int8 saturation;
    7, 8. the leaky-ReLU slope multiply (16 x ``ACT_PARAM_BITS``), two halves then their sum;
    9. the activation.

    One shifter instead of two (the rounding bit comes with it) and nothing wider than the
    clamp after the shifts.  Golden twin: :func:`model.contract.fixedpoint.requantize`.

    Members
    -------
    result : In(stream.Signature(RowResult, always_ready=True))
        The row's accumulator, multiplier, shift and activation parameter ``act``.
    relu : In(1)
        ReLU, negative values times ``act / 2**SLOPE_FRAC_BITS`` (held for the layer).
    floor : In(1)
        The floor activation, ``max(value, act)`` (held for the layer; not with ``relu``).
    output : Out(stream.Signature(signed(8), always_ready=True))
    """

    #: Cycles from a ``result`` to its ``output``: one per stage.
    LATENCY = 9

    def __init__(self):
        super().__init__({
            "result": In(stream.Signature(RowResult, always_ready=True)),
            "relu": In(1),
            "floor": In(1),
            "output": Out(stream.Signature(Act, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        r = self.result.payload
        depth = [0]

        def stage(**values):
            """Register ``values`` as the next stage's signals (named after it)."""
            depth[0] += 1
            regs = {}
            for name, v in values.items():
                regs[name] = Signal(v.shape(), name=f"{name}{depth[0]}")
                m.d.sync += regs[name].eq(v)
            return regs

        def carried(prev, *names):
            return {n: prev[n] for n in names}

        # 1-3: the product, from four partial products.
        s = stage(**{f"q{k}": _times_unsigned(r.acc, r.mult[NIBBLE * k:NIBBLE * (k + 1)]) for k in range(4)},
                  shift=r.shift, act=r.act, valid=self.result.valid)
        s = stage(h0=_add_shifted(s["q0"], s["q1"], NIBBLE), h1=_add_shifted(s["q2"], s["q3"], NIBBLE),
                  **carried(s, "shift", "act", "valid"))
        # |acc * mult| <= 2**31 * (2**16 - 1) < 2**47: 48 bits, signed.
        s = stage(p=_add_shifted(s["h0"], s["h1"], 2 * NIBBLE)[:ACC_BITS + MULT_BITS].as_signed(),
                  **carried(s, "shift", "act", "valid"))

        # 4: x = 2p >> 8c.  Whether the bits above the kept ones are all sign is a suffix AND of x's bits.
        x = Cat(Const(0, 1), s["p"]).as_signed()
        sign = s["p"][-1]
        is_sign = Cat(~(x[i] ^ sign) for i in range(len(x)))
        coarse, kept, fits = s["shift"][3:], Signal(signed(COARSE_KEEP)), Signal()
        with m.Switch(coarse):
            for c in range(1 << len(coarse)):
                with m.Case(c):
                    above = 8 * c + COARSE_KEEP
                    m.d.comb += [kept.eq((x >> (8 * c))[:COARSE_KEEP]),
                                 fits.eq(is_sign[above:].all() if above < len(x) - 1 else 1)]
        s = stage(kept=kept, fits=fits, sign=sign, fine=s["shift"][:3], **carried(s, "act", "valid"))

        # 5: t = kept >> f, and whether it fits T_BITS; then the clamp (the sign says which bound when not).
        t, t_fits = Signal(signed(T_BITS)), Signal()
        kept_sign = Cat(~(s["kept"][i] ^ s["sign"]) for i in range(COARSE_KEEP))
        with m.Switch(s["fine"]):
            for f in range(8):
                with m.Case(f):
                    m.d.comb += [t.eq((s["kept"] >> f)[:T_BITS]),
                                 t_fits.eq(s["fits"] & kept_sign[T_BITS - 1 + f:].all())]
        clamped = Mux(~t_fits, Mux(s["sign"], T_MIN, T_MAX), Mux(t > T_MAX, T_MAX, Mux(t < T_MIN, T_MIN, t)))
        s = stage(t=clamped, **carried(s, "act", "valid"))

        # 6: round half up; the 16-bit value for the slope (exact: see fixedpoint), and int8.
        rounded = Signal(signed(SLOPE_INPUT_BITS + 1))
        m.d.comb += rounded.eq((s["t"] + 1) >> 1)
        s = stage(value=_saturated(rounded)[:8].as_signed(), negative=rounded[:SLOPE_INPUT_BITS].as_signed(),
                  is_negative=rounded[-1], **carried(s, "act", "valid"))

        # 7, 8: the slope multiply, act's low (unsigned) and high (signed) halves, then their sum.
        half = ACT_PARAM_BITS // 2
        s = stage(lo=_times_unsigned(s["negative"], s["act"][:half]), hi=s["negative"] * s["act"][half:].as_signed(),
                  **carried(s, "value", "is_negative", "act", "valid"))
        s = stage(sloped=_add_shifted(s["lo"], s["hi"], half)[:SLOPE_INPUT_BITS + ACT_PARAM_BITS].as_signed(),
                  **carried(s, "value", "is_negative", "act", "valid"))

        # 9: the activation.
        sloped, value, act = s["sloped"], s["value"], s["act"]
        leaky = Signal(signed(len(sloped)))
        m.d.comb += leaky.eq((sloped >> SLOPE_FRAC_BITS) + sloped[SLOPE_FRAC_BITS - 1])
        with m.If(self.floor):
            m.d.sync += self.output.payload.eq(Mux(value < act, act, value))
        with m.Elif(self.relu & s["is_negative"]):
            m.d.sync += self.output.payload.eq(_saturated(leaky))
        with m.Else():
            m.d.sync += self.output.payload.eq(value)
        m.d.sync += self.output.valid.eq(s["valid"])
        assert depth[0] + 1 == self.LATENCY
        return m
