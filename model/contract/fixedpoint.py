"""Fixed-point arithmetic shared by the golden model and the RTL.

Everything the hardware computes on numbers is defined here once: the widths of
activations, weights, accumulators and requantization parameters, and the
rounding and saturation rule.  The RTL (``hw/``) imports these constants so the
two sides cannot drift apart.
"""
from __future__ import annotations

import math

import numpy as np

#: Activations and codebook entries are signed 8-bit integers.
ACT_BITS = 8
ACT_MIN = -(1 << (ACT_BITS - 1))
ACT_MAX = (1 << (ACT_BITS - 1)) - 1
#: Accumulators (and biases) are two's-complement 32-bit; sums wrap modulo 2**32.
ACC_BITS = 32


#: Width of a squared difference of two int8 values (``(x - p)**2 <= 255**2 < 2**16``, unsigned): the
#: nearest-prototype unit's squares (:mod:`model.contract.layout`, "Nearest-prototype layers").
SQUARE_BITS = 2 * ACT_BITS


def distance_bits(max_features: int) -> int:
    """Width of a squared Euclidean distance over up to ``max_features`` int8 pairs (unsigned): ``SQUARE_BITS``
    plus ``max_features.bit_length()`` bits, so the sum of ``max_features`` squares never wraps."""
    return SQUARE_BITS + int(max_features).bit_length()


def stage_sum_bits(stages: int) -> int:
    """Width of a lane of the sum of ``stages`` int8 codewords (residual VQ): ``ACT_BITS`` plus
    ``ceil(log2(stages))`` bits, so the sum never wraps (1 stage: ``ACT_BITS``; 2: 9; 3 and 4: 10)."""
    return ACT_BITS + max(0, (int(stages) - 1).bit_length())

#: Requantization multiplier: unsigned, ``MULT_BITS`` wide.
MULT_BITS = 16
#: Requantization right shift: ``SHIFT_BITS`` wide, so 0 .. 2**SHIFT_BITS - 1.
SHIFT_BITS = 6
SHIFT_MAX = (1 << SHIFT_BITS) - 1
#: The activation parameter beside them in the requantization word: signed, ``ACT_PARAM_BITS`` wide.
#: With ReLU it is the negative slope (leaky / parametric ReLU; 0 is plain ReLU), in units of
#: ``2**-SLOPE_FRAC_BITS``; with the floor activation it is the floor (an int8 value).
ACT_PARAM_BITS = 10
ACT_PARAM_SHIFT = MULT_BITS + SHIFT_BITS
ACT_PARAM_MIN = -(1 << (ACT_PARAM_BITS - 1))
ACT_PARAM_MAX = (1 << (ACT_PARAM_BITS - 1)) - 1
SLOPE_FRAC_BITS = 8
#: A negative value is clamped to this signed width before the slope multiply.  Exact: a value
#: beyond it times any nonzero slope saturates the int8 output anyway.
SLOPE_INPUT_BITS = 16


def wrap_acc(x):
    """Wrap integers (scalar or array) to the signed ``ACC_BITS`` range, as the RTL does."""
    a = np.asarray(x, dtype=np.int64)
    m = np.int64(1) << ACC_BITS
    return ((a + (m >> 1)) % m) - (m >> 1)


def _round_shift(p, s):
    """``round(p / 2**s)``, half up, as ``(p >> s) + bit(s-1, p)`` (no wide adder in the RTL)."""
    s = np.asarray(s, dtype=np.int64)
    return (p >> s) + np.where(s > 0, (p >> np.maximum(s - 1, 0)) & 1, 0)


def requantize(acc, mult: int | np.ndarray, shift: int | np.ndarray, relu: bool,
               act: int | np.ndarray = 0, floor: bool = False):
    """Scale 32-bit accumulators down to int8: ``sat(round(acc * mult / 2**shift))``, then the activation.

    Rounding is round-half-up, computed as ``(p >> s) + bit(s-1, p)`` so the RTL
    needs no wide adder; the result saturates to [-128, 127].  Activations:

    * ``relu``: a negative value ``y`` becomes ``sat(round(clamp16(y) * act / 2**8))``
      (leaky / parametric ReLU with slope ``act / 256``; ``act = 0`` is ReLU,
      whose outputs are [0, 127]);
    * ``floor``: ``max(sat(y), act)`` (a ReLU followed by a positive per-channel
      scale and an offset, folded: ``relu(z) * a + b = max(a z + b, b)``).

    Parameters
    ----------
    acc : array of int
        Accumulators, already wrapped to ``ACC_BITS``.
    mult : int or array
        Unsigned multiplier, ``0 <= mult < 2**MULT_BITS``.
    shift : int or array
        Right shift, ``0 <= shift <= SHIFT_MAX``.
    relu : bool
        ReLU, or with ``act`` a leaky one.
    act : int or array
        The activation parameter (``ACT_PARAM_BITS`` signed).
    floor : bool
        The floor activation (not with ``relu``).
    """
    y = _round_shift(np.asarray(acc, dtype=np.int64) * np.asarray(mult, dtype=np.int64), shift)
    act = np.asarray(act, dtype=np.int64)
    if floor:
        return np.maximum(np.clip(y, ACT_MIN, ACT_MAX), act).astype(np.int8)
    if relu:
        lim = 1 << (SLOPE_INPUT_BITS - 1)
        y = np.where(y < 0, _round_shift(np.clip(y, -lim, lim - 1) * act, SLOPE_FRAC_BITS), y)
    return np.clip(y, ACT_MIN, ACT_MAX).astype(np.int8)


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """Approximate a positive real ``scale`` as ``mult / 2**shift``.

    ``mult`` uses the full ``MULT_BITS`` (its top bit set) for the best
    precision the shift range allows.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"requantization scale must be positive and finite, got {scale}")
    mant, exp = math.frexp(scale)  # scale = mant * 2**exp, 0.5 <= mant < 1
    shift = MULT_BITS - exp
    mult = round(mant * (1 << MULT_BITS))
    if mult == 1 << MULT_BITS:
        mult >>= 1
        shift -= 1
    while shift > SHIFT_MAX:
        mult = (mult + 1) >> 1
        shift -= 1
    if shift < 0:
        raise ValueError(f"requantization scale {scale} is too large for {MULT_BITS}-bit multiplier")
    return int(mult), int(shift)


def quantize_act(x, scale: float):
    """Quantize real activations to int8 with ``round(x / scale)`` and saturation."""
    return np.clip(np.round(np.asarray(x) / scale), ACT_MIN, ACT_MAX).astype(np.int8)


#: A compact row's signed bias width and its scale's range (:mod:`model.contract.layout`, compact rows).
COMPACT_BIAS_BITS = 16
COMPACT_BIAS_SHIFT_BITS = 5


def compact_row_params(bias, mult, shift, act) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """A layer's per-row requantization in the compact-row format: (bias16, mult, shift, bias_shift, act).

    One shift for every row: the largest that keeps every row's multiplier within ``MULT_BITS``
    (rows whose own shift was larger lose low multiplier bits, rounded); one bias scale: the
    smallest ``bias_shift`` whose rounded ``bias >> bias_shift`` fits a signed 16-bit field.  The
    rows' activation parameter must be one value.

    Raises
    ------
    ValueError
        If the rows' activation parameters differ.
    """
    bias, mult, shift, act = (np.asarray(a, dtype=np.int64) for a in (bias, mult, shift, act))
    if act.size and np.any(act != act.flat[0]):
        raise ValueError("compact rows share one activation parameter; these rows differ")
    room = np.array([MULT_BITS - int(m).bit_length() for m in mult.flat], dtype=np.int64).reshape(mult.shape)
    common = int(min(SHIFT_MAX, np.min(shift + room))) if shift.size else 0
    delta = common - shift
    up = np.left_shift(mult, np.maximum(delta, 0))
    down = np.right_shift(mult + np.left_shift(1, np.maximum(-delta - 1, 0)), np.maximum(-delta, 0))
    new_mult = np.where(delta >= 0, up, np.where(-delta > 0, down, mult))
    new_mult = np.minimum(new_mult, (1 << MULT_BITS) - 1)
    limit = 1 << (COMPACT_BIAS_BITS - 1)
    for bias_shift in range(1 << COMPACT_BIAS_SHIFT_BITS):
        half = (1 << bias_shift) >> 1
        bias16 = np.right_shift(bias + half, bias_shift)
        if np.all((bias16 >= -limit) & (bias16 < limit)):
            break
    return bias16, new_mult, common, bias_shift, int(act.flat[0]) if act.size else 0
