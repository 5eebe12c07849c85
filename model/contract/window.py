"""The window of a windowed layer (convolution, pooling): fields, words, checks and taps.

Descriptor words of a windowed kind (:mod:`model.contract.layout`, "Layer kinds"):

====  ===========================================================================
word  contents
====  ===========================================================================
4     ``channel_groups`` [31:24]: input channels padded, in units of ``vector_align(lanes)``
5     ``in_width`` [15:0], ``in_height`` [31:16]
6     ``out_width`` [15:0], ``out_height`` [31:16]
7     ``kernel_w`` [7:0], ``kernel_h`` [15:8], ``stride_x`` [18:16], ``stride_y`` [21:19],
      ``pad_left`` [26:22], ``pad_top`` [31:27]
====  ===========================================================================

Output position ``(oy, ox)`` reads input pixel ``(oy * stride_y - pad_top + ky,
ox * stride_x - pad_left + kx)`` for tap ``(ky, kx)``; a pixel outside
``in_height x in_width`` is padding.  Padding at the bottom and right is
whatever ``out_height`` and ``out_width`` imply.

The engine checks a window after the descriptor's other checks, in this
order (:meth:`Window.check`, twin of :class:`hw.window_setup.WindowSetup`):
every field nonzero except the pads (``BAD_SHAPE``); ``kernel_h * kernel_w *
channels`` equal to the descriptor's ``in_features`` (``BAD_SHAPE``); for
a pooling kind (MAXPOOL, AVGPOOL), ``out_features`` equal to ``channels`` (``BAD_SHAPE``); ``in_height *
in_width * channels`` equal to the size of the layer's input (``BAD_CHAIN``);
the output map at most ``max_features`` (``BAD_SHAPE``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.contract.errors import EngineError, EngineFault
from model.contract.fixedpoint import ACT_BITS
from model.contract.ints import round_up
from model.contract.layout import vector_align

#: Bit offset of ``channel_groups`` in descriptor word 4, and its width.
GROUPS_SHIFT, GROUPS_BITS = 24, 8
#: Widths of the kernel, stride and pad fields of word 7 (pads up to 31: CREPE's convolutions pad 31/32).
KERNEL_BITS, STRIDE_BITS, PAD_BITS = 8, 3, 5
#: Word 7's fields, from bit 0 up, and the bit offset of each.
WORD7_FIELDS = (("kernel_w", KERNEL_BITS), ("kernel_h", KERNEL_BITS), ("stride_x", STRIDE_BITS),
                ("stride_y", STRIDE_BITS), ("pad_left", PAD_BITS), ("pad_top", PAD_BITS))
WORD7_SHIFT = {name: sum(bits for _, bits in WORD7_FIELDS[:i]) for i, (name, _) in enumerate(WORD7_FIELDS)}
assert WORD7_SHIFT["pad_top"] + PAD_BITS == 32
#: Widths of the map sides of words 5 and 6.
SIDE_BITS = 16
#: Width of an average-pooling sum: the most taps a window has (two kernel fields) times an int8
#: value, signed; the sum never wraps.
POOL_SUM_BITS = ACT_BITS + 2 * KERNEL_BITS


def _field(word: int, shift: int, bits: int) -> int:
    return (word >> shift) & ((1 << bits) - 1)


@dataclass(frozen=True)
class Window:
    """A windowed layer's geometry (see the module docstring for the words)."""
    channel_groups: int
    in_width: int
    in_height: int
    out_width: int
    out_height: int
    kernel_w: int
    kernel_h: int
    stride_x: int = 1
    stride_y: int = 1
    pad_left: int = 0
    pad_top: int = 0

    @classmethod
    def decode(cls, words) -> "Window":
        """From descriptor words 4 to 7."""
        w4, w5, w6, w7 = (int(w) for w in words)
        return cls(channel_groups=_field(w4, GROUPS_SHIFT, GROUPS_BITS),
                   in_width=_field(w5, 0, SIDE_BITS), in_height=_field(w5, SIDE_BITS, SIDE_BITS),
                   out_width=_field(w6, 0, SIDE_BITS), out_height=_field(w6, SIDE_BITS, SIDE_BITS),
                   **{name: _field(w7, WORD7_SHIFT[name], bits) for name, bits in WORD7_FIELDS})

    def encode(self) -> tuple[int, int, int, int]:
        """Descriptor words 4 (its ``channel_groups`` bits only) to 7; raises ValueError on a field too wide."""
        for name, bits in (("channel_groups", GROUPS_BITS), ("in_width", SIDE_BITS), ("in_height", SIDE_BITS),
                           ("out_width", SIDE_BITS), ("out_height", SIDE_BITS), ("kernel_w", KERNEL_BITS),
                           ("kernel_h", KERNEL_BITS), ("stride_x", STRIDE_BITS), ("stride_y", STRIDE_BITS),
                           ("pad_left", PAD_BITS), ("pad_top", PAD_BITS)):
            if not 0 <= getattr(self, name) < 1 << bits:
                raise ValueError(f"window {name}={getattr(self, name)} does not fit its {bits}-bit field")
        return (self.channel_groups << GROUPS_SHIFT,
                self.in_width | self.in_height << SIDE_BITS,
                self.out_width | self.out_height << SIDE_BITS,
                sum(getattr(self, name) << WORD7_SHIFT[name] for name, _ in WORD7_FIELDS))

    # --- sizes -------------------------------------------------------------------------
    def channels(self, lanes: int) -> int:
        """Padded input channels: ``channel_groups * vector_align(lanes)``."""
        return self.channel_groups * vector_align(lanes)

    def positions(self) -> int:
        return self.out_height * self.out_width

    def taps(self) -> int:
        return self.kernel_h * self.kernel_w

    def in_map(self, lanes: int) -> int:
        """Values of the input map (padded channels)."""
        return self.in_height * self.in_width * self.channels(lanes)

    def out_map(self, out_channels: int, lanes: int) -> int:
        """Values of the output map of ``out_channels`` channels, padded."""
        return self.positions() * round_up(out_channels, vector_align(lanes))

    def check(self, pooling: bool, in_features: int, out_features: int, prev_features: int, max_features: int,
              lanes: int, where: str) -> None:
        """Raise ``EngineFault`` at the first rule broken, in the engine's order (module docstring)."""
        fields = ("channel_groups", "in_width", "in_height", "out_width", "out_height", "kernel_w", "kernel_h",
                  "stride_x", "stride_y")
        zero = [name for name in fields if getattr(self, name) == 0]
        if zero:
            raise EngineFault(EngineError.BAD_SHAPE, f"{where}: window field {zero[0]} is 0")
        c = self.channels(lanes)
        if self.taps() * c != in_features:
            raise EngineFault(EngineError.BAD_SHAPE, f"{where}: in_features={in_features}, but the window has "
                                                     f"{self.kernel_h}x{self.kernel_w} taps of {c} channels")
        if pooling and out_features != c:
            raise EngineFault(EngineError.BAD_SHAPE, f"{where}: a pooling layer's out_features={out_features} "
                                                     f"must be its {c} channels")
        if self.in_map(lanes) != prev_features:
            raise EngineFault(EngineError.BAD_CHAIN, f"{where}: the window reads a {self.in_height}x{self.in_width}x"
                                                     f"{c} map but its input has {prev_features} values")
        out = self.out_map(out_features, lanes)
        if out > max_features:
            raise EngineFault(EngineError.BAD_SHAPE, f"{where}: the output map of {out} values does not fit the "
                                                     f"activation SRAM ({max_features} values); use an engine "
                                                     f"with max_features >= {out}")

    # --- taps --------------------------------------------------------------------------
    def tap_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Input pixel of each output position and tap: (rows, cols) arrays of shape (positions, taps).

        Row-major positions, taps in (ky, kx) order; outside the map where
        padding (not clipped).
        """
        oy, ox = np.divmod(np.arange(self.positions()), self.out_width)
        ky, kx = np.divmod(np.arange(self.taps()), self.kernel_w)
        rows = (oy * self.stride_y - self.pad_top)[:, None] + ky[None, :]
        cols = (ox * self.stride_x - self.pad_left)[:, None] + kx[None, :]
        return rows, cols

    def tap_inside(self) -> np.ndarray:
        """Whether each (position, tap) reads a pixel of the input map: bool (positions, taps)."""
        rows, cols = self.tap_pixels()
        return (rows >= 0) & (rows < self.in_height) & (cols >= 0) & (cols < self.in_width)

    def gather(self, x: np.ndarray, lanes: int, fill: int = 0) -> np.ndarray:
        """The windows of input maps ``x`` (n, in_map values, HWC): (n, positions, taps, channels).

        Padding taps hold ``fill``.
        """
        c = self.channels(lanes)
        maps = np.asarray(x).reshape(len(x), self.in_height * self.in_width, c)
        rows, cols = self.tap_pixels()
        inside = self.tap_inside()
        pixel = np.where(inside, rows * self.in_width + cols, 0)
        out = maps[:, pixel, :]
        out[:, ~inside, :] = fill
        return out

