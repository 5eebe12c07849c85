"""Huffman coding of index streams: canonical tables, their words, encoding and decoding.

Codebook indices (and the relative positions of sparse entries) are stored in
DRAM as canonical Huffman codes.  Their lengths are designed by
:func:`model.codecs.huffman_design.code_lengths` (optimal under a length
limit); this module describes the codes compactly (:class:`HuffmanTable`,
serialised to 32-bit words), encodes symbol streams (:func:`encode`) and
decodes them exactly as the hardware does (:func:`decode`; the decoder's golden
twin is :class:`model.golden.huffman.HuffmanDecoder`).

Canonical codes
===============
Codes are assigned DEFLATE-style from the code lengths alone: shorter codes
first, and within one length by increasing symbol value.  The first code of
length ``L`` is ``first[L] = (first[L-1] + counts[L-1]) << 1`` (``first[1] = 0``)
and the ``k``-th symbol of that length gets ``first[L] + k``.  A table lists its
symbols in this canonical order; a table read from words whose symbols are not
sorted within a length is still a valid prefix code: the ``j``-th listed symbol
always gets the ``j``-th code, and encoder and decoders all follow the list.

Bit order in the stream
=======================
A coded stream is a sequence of 32-bit words whose bits are consumed LSB-first,
bit 0 of word 0 first, as everywhere else in the engine
(:mod:`model.codecs.index_packing`).  Codes are numbers read most significant bit
first, so each code goes into the stream **first (most significant) bit first**:
a code ``c`` of length ``L`` written at stream bit ``p`` puts bit ``L-1-i`` of
``c`` at stream bit ``p + i``.  Seen as an LSB-first field, a code is therefore
stored bit-reversed.  After the last code the final word is padded with zero
bits; a decoder discards the rest of the last word, so the next stream starts
word-aligned.

Table word layout (:meth:`HuffmanTable.to_words`)
=================================================
``cb = symbol_bits + 1`` (wide enough for a count of ``2**symbol_bits``, the
largest count a valid table can have).

=============  ================================================================
word 0         header: bits [7:0] ``n_lengths``, the longest code length (the
               number of count fields that follow); bits [31:8] written as zero,
               ignored by the readers
words 1 ...    one LSB-first bit string, padded with zeros to a whole word:
               ``n_lengths`` count fields of ``cb`` bits (codes of length 1,
               2, ..., ``n_lengths``), then ``sum(counts)`` symbol fields of
               ``symbol_bits`` bits in canonical order
=============  ================================================================

The table takes ``1 + ceil((n_lengths * cb + n_symbols * symbol_bits) / 32)``
words (:func:`table_words`).  For the default ``symbol_bits = 8`` a full table
(15 lengths, 256 symbols) is 1 + 69 words.

One-symbol alphabets
====================
A table with a single symbol is the one incomplete table that is accepted: its
only count is ``counts[1] = 1``, the symbol's code is the single bit ``0`` and
a stream of ``n`` such symbols is ``n`` zero bits.  :func:`code_lengths` gives
the lone symbol length 1.

Validation (identical in the golden model and the RTL)
======================================================
Table words are checked in the order they arrive, and the first failure wins:

1. the header word is missing: ``TRUNCATED``
2. ``n_lengths > max_len``: ``LENGTH_OVER_LIMIT`` (a code longer than the
   decoder's window; the count fields are not read)
3. for ``L = 1 .. n_lengths``: count field missing: ``TRUNCATED``; more codes of
   lengths ``<= L`` than fit (``first[L] + counts[L] > 2**L``, i.e. the Kraft
   sum of the lengths so far exceeds 1): ``OVERSUBSCRIBED``
4. the Kraft sum is below 1 (including an empty table), other than the
   one-symbol table: ``INCOMPLETE``
5. more symbols than the alphabet holds (``sum(counts) > 2**symbol_bits``):
   ``BAD_SYMBOL``
6. for each symbol field: missing: ``TRUNCATED``; a symbol already listed:
   ``BAD_SYMBOL``

Decoding ``count`` symbols from a stream of ``n_words`` words; per symbol:

1. no bits left in the ``n_words`` words: ``TRUNCATED``
2. the next bits match no code: ``INVALID_CODE``.  Since every accepted table is
   complete except the one-symbol table, the only invalid code is a ``1`` bit
   where a one-symbol table expects its ``0``.
3. the matching code runs past the end of the ``n_words`` words: ``TRUNCATED``

Words consumed: a table load takes exactly the table's words, a run exactly
the words holding its ``count`` codes (``ceil(bits / 32)``); words after them,
even within the budget, are left for whoever reads the stream next.  A run that
stops on ``INVALID_CODE`` has taken the words up to the one holding the bad
bit; one stopped by ``TRUNCATED`` (table or stream) has taken its whole budget.
The decoder is told how many symbols to decode, not where the codes end: if
``count`` is larger than the number of symbols coded, the zero padding decodes
as further symbols (the all-zeros code) until the words run out.

A failed load's error, truncation included, stays until the next load and a
start meanwhile is refused with that error; a start with no table ever loaded
is refused with ``NO_TABLE``.  A stream error stays until the next start.

Decoding uses a window of the next ``max_len`` bits (zeros past the end of the
words) compared against per-length limits, exactly as the RTL does: with
``rev`` the window read code-first as a ``max_len``-bit number, the code length
is the smallest ``L`` with ``rev < limit[L]`` where
``limit[L] = (first[L] + counts[L]) << (max_len - L)``, and the symbol is
``symbols[offset[L] + (rev >> (max_len - L)) - first[L]]`` with
``offset[L] = counts[1] + ... + counts[L-1]``.

Decoding steps
==============
A decoder *step* takes ``codes_per_step(max_len)`` codes: two when ``2 * max_len
<= 32`` (then one new word always completes both), else one; a run's last code
goes alone when one symbol remains.  The second code is the one that starts
right after the first.  A step decodes from the buffered bits (the rest of the
words taken so far) when they hold all its codes, or an invalid one; otherwise
it takes one word and decodes from the buffer and that word together.  So which
words a step takes, and how many codes it decodes, depend only on the data,
never on stalls.  A step that finds an invalid second code delivers the first,
then stops.  A step that needs a word when none is left in the budget
(``TRUNCATED``) delivers the first code if the buffer holds it; a decoder whose
words are merely late (the engine's layer stream running dry, which the engine
reports as ``BAD_STREAM``) waits instead, and delivers neither
(:attr:`HuffmanError.pending` counts what the failing step delivered).

Counters (names from :data:`model.contract.counters.COUNTERS`), since the last start:
``huffman_symbols`` symbols decoded, ``huffman_bits`` code bits consumed (the
sum of the decoded codes' lengths; the discarded padding is not counted) and
``huffman_busy_cycles``, the decoder's steps: the cycles in which it decodes at
least one symbol or finds a stream error.  The RTL steps only when its output
will be empty, so a step is one busy cycle whatever the stalls: with two codes a
step, ``huffman_busy_cycles`` is ``ceil(huffman_symbols / 2)`` per run, or
``floor(huffman_symbols / 2) + 1`` after a stream error.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from model.codecs.huffman_design import _reverse, code_lengths
from model.contract.ints import ceil_div
from model.contract.layout import HUFFMAN_DEFAULT_MAX_LEN, HUFFMAN_MAX_LEN_LIMIT, WORD_BITS

#: Width of the header's ``n_lengths`` field.
HEADER_LENGTH_BITS = 8
HEADER_LENGTH_MASK = (1 << HEADER_LENGTH_BITS) - 1
#: Longest code a decoder may be built for: a code must fit in one stream word,
#: so one new word always completes the symbol being decoded.
MAX_LEN_LIMIT = HUFFMAN_MAX_LEN_LIMIT
#: Widest symbols a table may hold (the count fields then take 17 bits).
MAX_SYMBOL_BITS = 16
DEFAULT_MAX_LEN = HUFFMAN_DEFAULT_MAX_LEN
DEFAULT_SYMBOL_BITS = 8

#: Counter names, as in :data:`model.contract.counters.COUNTERS`.
HUFFMAN_COUNTERS = ("huffman_symbols", "huffman_bits", "huffman_busy_cycles")


class HuffmanStatus(enum.IntEnum):
    """Values of the decoder's ``error`` output (0 = no error), shared by golden model and RTL."""
    NONE = 0
    OVERSUBSCRIBED = 1     #: table: Kraft sum above 1
    INCOMPLETE = 2         #: table: Kraft sum below 1 (other than the one-symbol table)
    LENGTH_OVER_LIMIT = 3  #: table: codes longer than the decoder's ``max_len``
    BAD_SYMBOL = 4         #: table: a symbol repeated or out of range, or more symbols than the alphabet
    NO_TABLE = 5           #: decode started with no table loaded (or while one is loading)
    INVALID_CODE = 6       #: stream: bits matching no code
    TRUNCATED = 7          #: table or stream: the words ended inside a field or a code


#: Width of the ``error`` output.
STATUS_BITS = max(HuffmanStatus).bit_length()
#: The bad-table classes.  These, and a truncated table, stay until the next table load.
TABLE_ERRORS = frozenset({HuffmanStatus.OVERSUBSCRIBED, HuffmanStatus.INCOMPLETE,
                          HuffmanStatus.LENGTH_OVER_LIMIT, HuffmanStatus.BAD_SYMBOL})


class HuffmanError(ValueError):
    """A bad table or stream.  ``status`` is the :class:`HuffmanStatus` the RTL reports.

    Parameters
    ----------
    message : str
    words_used : int or None
        Words the decoder had consumed when it stopped (the RTL consumes exactly these).
    symbols : list of int or None
        Stream errors: the symbols decoded before the error.
    bits : int or None
        Stream errors: code bits consumed before the error.
    counters : dict or None
        Stream errors: the decoder's counters when it stopped.
    pending : int
        ``TRUNCATED`` in a stream: how many of ``symbols`` the failing step itself delivered (the
        first code of a two-code step whose second code the words do not hold).  A decoder whose
        words are merely late waits instead and delivers none of them.

    Members
    -------
    status : HuffmanStatus
        Class attribute: the error code of this error class.
    words_used, symbols, bits, counters
        As given.
    """
    status = HuffmanStatus.NONE

    def __init__(self, message: str, *, words_used=None, symbols=None, bits=None, counters=None, pending=0):
        super().__init__(message)
        self.words_used = words_used
        self.symbols = symbols
        self.bits = bits
        self.counters = counters
        self.pending = pending


class OversubscribedError(HuffmanError):
    status = HuffmanStatus.OVERSUBSCRIBED


class IncompleteError(HuffmanError):
    status = HuffmanStatus.INCOMPLETE


class LengthOverLimitError(HuffmanError):
    status = HuffmanStatus.LENGTH_OVER_LIMIT


class BadSymbolError(HuffmanError):
    status = HuffmanStatus.BAD_SYMBOL


class NoTableError(HuffmanError):
    status = HuffmanStatus.NO_TABLE


class InvalidCodeError(HuffmanError):
    status = HuffmanStatus.INVALID_CODE


class TruncatedError(HuffmanError):
    status = HuffmanStatus.TRUNCATED


ERROR_CLASSES = {cls.status: cls for cls in (OversubscribedError, IncompleteError, LengthOverLimitError,
                                             BadSymbolError, NoTableError, InvalidCodeError, TruncatedError)}


def _check_params(max_len: int, symbol_bits: int) -> None:
    if not 1 <= max_len <= MAX_LEN_LIMIT:
        raise ValueError(f"max_len must be 1..{MAX_LEN_LIMIT}, got {max_len}")
    if not 1 <= symbol_bits <= MAX_SYMBOL_BITS:
        raise ValueError(f"symbol_bits must be 1..{MAX_SYMBOL_BITS}, got {symbol_bits}")


def count_bits(symbol_bits: int) -> int:
    """Width of a count field: a valid count can be ``2**symbol_bits`` (every symbol one length)."""
    return symbol_bits + 1


def table_words(n_lengths: int, n_symbols: int, symbol_bits: int) -> int:
    """Words of a table with ``n_lengths`` count fields and ``n_symbols`` symbols."""
    return 1 + ceil_div(n_lengths * count_bits(symbol_bits) + n_symbols * symbol_bits, WORD_BITS)



# --- tables ------------------------------------------------------------------------------------

class _BitReader:
    """Fields of a word list read LSB-first, with the word count the RTL would have taken."""

    def __init__(self, words, start_word: int):
        self.n_words = len(words)
        self.bits = 0
        for i, word in enumerate(words):
            self.bits |= (int(word) & 0xFFFFFFFF) << (WORD_BITS * i)
        self.pos = start_word * WORD_BITS

    def take(self, width: int, what: str) -> int:
        end = self.pos + width
        if end > self.n_words * WORD_BITS:
            raise TruncatedError(f"table words end inside {what}", words_used=self.n_words)
        value = (self.bits >> self.pos) & ((1 << width) - 1)
        self.pos = end
        return value

    @property
    def words_used(self) -> int:
        return ceil_div(self.pos, WORD_BITS)


@dataclass(frozen=True)
class HuffmanTable:
    """A canonical Huffman code: codes per length and the symbols in canonical order.

    Construction validates the table (:class:`HuffmanError` subclasses); see
    the module docstring for the rules.

    Parameters
    ----------
    counts : sequence of int
        ``counts[L]`` codes of length ``L``; ``counts[0]`` must be 0.  Trailing
        zeros are dropped.
    symbols : sequence of int
        ``sum(counts)`` symbols, shortest codes first (canonical order).
    symbol_bits : int
        Symbols are ``0 .. 2**symbol_bits - 1``.
    max_len : int
        Longest code the table may have (the decoder's window).

    Members
    -------
    counts : tuple of int
    symbols : tuple of int
    symbol_bits : int
    max_len : int
    """
    counts: tuple
    symbols: tuple
    symbol_bits: int = DEFAULT_SYMBOL_BITS
    max_len: int = DEFAULT_MAX_LEN
    _codes: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_params(self.max_len, self.symbol_bits)
        counts = [int(c) for c in self.counts] or [0]
        if counts[0]:
            raise ValueError("counts[0] must be 0: there are no codes of length 0")
        if min(counts) < 0:
            raise ValueError("negative count")
        while len(counts) > 1 and counts[-1] == 0:
            counts.pop()
        object.__setattr__(self, "counts", tuple(counts))
        object.__setattr__(self, "symbols", tuple(int(s) for s in self.symbols))
        if self.longest > self.max_len:
            raise LengthOverLimitError(f"codes of {self.longest} bits, the limit is {self.max_len}")
        next_code = 0
        for length in range(1, len(counts)):
            next_code = (next_code << 1) + counts[length]
            if next_code > 1 << length:
                raise OversubscribedError(f"oversubscribed at length {length}: Kraft sum above 1")
        if not self.one_symbol and next_code != 1 << self.longest:
            raise IncompleteError("incomplete code: Kraft sum below 1")
        if sum(counts) > 1 << self.symbol_bits:
            raise BadSymbolError(f"{sum(counts)} codes for an alphabet of {1 << self.symbol_bits}")
        if len(self.symbols) != sum(counts):
            raise BadSymbolError(f"{len(self.symbols)} symbols for {sum(counts)} codes")
        seen = set()
        for s in self.symbols:
            if not 0 <= s < 1 << self.symbol_bits:
                raise BadSymbolError(f"symbol {s} out of range for {self.symbol_bits}-bit symbols")
            if s in seen:
                raise BadSymbolError(f"symbol {s} listed twice")
            seen.add(s)
        codes = {}
        for symbol, code, length in self._canonical():
            codes[symbol] = (code, length)
        object.__setattr__(self, "_codes", codes)

    @property
    def longest(self) -> int:
        """Longest code length (0 for an empty table)."""
        return len(self.counts) - 1

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def one_symbol(self) -> bool:
        """The accepted incomplete table: one symbol, coded as the single bit 0."""
        return self.counts[1:] == (1,)

    def _canonical(self):
        """(symbol, code, length) in canonical order."""
        j = 0
        code = 0
        for length in range(1, len(self.counts)):
            for _ in range(self.counts[length]):
                yield self.symbols[j], code, length
                j += 1
                code += 1
            code <<= 1

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_lengths(cls, lengths, symbol_bits: int = DEFAULT_SYMBOL_BITS,
                     max_len: int = DEFAULT_MAX_LEN) -> "HuffmanTable":
        """The canonical table of per-symbol code lengths (index = symbol, 0 = absent)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.size and lengths.min() < 0:
            raise ValueError("negative code length")
        present = np.flatnonzero(lengths)
        if present.size and present[-1] >= 1 << symbol_bits:
            raise BadSymbolError(f"symbol {present[-1]} out of range for {symbol_bits}-bit symbols")
        longest = int(lengths.max(initial=0))
        counts = np.bincount(lengths, minlength=longest + 1)
        counts[0] = 0
        symbols = present[np.lexsort((present, lengths[present]))]
        return cls(tuple(int(c) for c in counts), tuple(int(s) for s in symbols), symbol_bits, max_len)

    @classmethod
    def from_freqs(cls, freqs, symbol_bits: int = DEFAULT_SYMBOL_BITS,
                   max_len: int = DEFAULT_MAX_LEN) -> "HuffmanTable":
        """The optimal length-limited canonical table for ``freqs`` (index = symbol)."""
        return cls.from_lengths(code_lengths(freqs, max_len), symbol_bits, max_len)

    # -- views ----------------------------------------------------------------------------------
    def lengths(self) -> np.ndarray:
        """Code length per symbol, ``2**symbol_bits`` entries (0 = absent)."""
        out = np.zeros(1 << self.symbol_bits, dtype=np.int64)
        for symbol, (_, length) in self._codes.items():
            out[symbol] = length
        return out

    def code(self, symbol: int) -> tuple[int, int]:
        """``(code, length)`` of ``symbol``; :class:`BadSymbolError` if it has none."""
        try:
            return self._codes[int(symbol)]
        except KeyError:
            raise BadSymbolError(f"symbol {symbol} has no code in this table") from None

    def decode_tables(self):
        """Per-length ``(limit, first, offset)`` for ``L = 1 .. max_len`` (see the module docstring)."""
        out = []
        first = offset = 0
        for length in range(1, self.max_len + 1):
            count = self.counts[length] if length <= self.longest else 0
            out.append(((first + count) << (self.max_len - length), first, offset))
            offset += count
            first = (first + count) << 1
        return out

    # -- words ----------------------------------------------------------------------------------
    def to_words(self) -> np.ndarray:
        """The table in the word layout of the module docstring, as uint32."""
        cb = count_bits(self.symbol_bits)
        bits = 0
        pos = 0
        for length in range(1, self.longest + 1):
            bits |= self.counts[length] << pos
            pos += cb
        for s in self.symbols:
            bits |= s << pos
            pos += self.symbol_bits
        n = ceil_div(pos, WORD_BITS)
        body = [(bits >> (WORD_BITS * i)) & 0xFFFFFFFF for i in range(n)]
        return np.array([self.longest] + body, dtype=np.uint32)

    @classmethod
    def parse_words(cls, words, max_len: int = DEFAULT_MAX_LEN,
                    symbol_bits: int = DEFAULT_SYMBOL_BITS) -> tuple["HuffmanTable", int]:
        """Read a table from ``words`` in the order the RTL does; returns ``(table, words_used)``.

        Words after the table are left alone (not an error).  Raises the first
        error in the order of the module docstring; the exception's
        ``words_used`` is what the RTL has consumed when it stops.
        """
        _check_params(max_len, symbol_bits)
        words = [int(x) & 0xFFFFFFFF for x in words]
        if not words:
            raise TruncatedError("no table header word", words_used=0)
        n_lengths = words[0] & HEADER_LENGTH_MASK
        if n_lengths > max_len:
            raise LengthOverLimitError(f"table has codes up to {n_lengths} bits, the limit is {max_len}",
                                       words_used=1)
        reader = _BitReader(words, 1)
        cb = count_bits(symbol_bits)
        counts = [0]
        next_code = 0
        for length in range(1, n_lengths + 1):
            count = reader.take(cb, f"the count of length {length}")
            counts.append(count)
            next_code = (next_code << 1) + count
            if next_code > 1 << length:
                raise OversubscribedError(f"oversubscribed at length {length}: Kraft sum above 1",
                                          words_used=reader.words_used)
        total = sum(counts)
        one_symbol = total == 1 and n_lengths >= 1 and counts[1] == 1
        if not one_symbol and next_code != 1 << n_lengths:
            raise IncompleteError("incomplete code: Kraft sum below 1", words_used=reader.words_used)
        if total > 1 << symbol_bits:
            raise BadSymbolError(f"{total} codes for an alphabet of {1 << symbol_bits}",
                                 words_used=reader.words_used)
        symbols = []
        seen = set()
        for k in range(total):
            s = reader.take(symbol_bits, f"symbol {k}")
            if s in seen:
                raise BadSymbolError(f"symbol {s} listed twice", words_used=reader.words_used)
            seen.add(s)
            symbols.append(s)
        return cls(tuple(counts), tuple(symbols), symbol_bits, max_len), reader.words_used

    @classmethod
    def from_words(cls, words, max_len: int = DEFAULT_MAX_LEN,
                   symbol_bits: int = DEFAULT_SYMBOL_BITS) -> "HuffmanTable":
        """Inverse of :meth:`to_words` (words after the table are ignored)."""
        return cls.parse_words(words, max_len, symbol_bits)[0]


# --- streams -----------------------------------------------------------------------------------

def encode(symbols, table: HuffmanTable) -> tuple[np.ndarray, int]:
    """Code ``symbols`` with ``table``: returns ``(words, n_bits)``.

    ``words`` (uint32) holds the codes first bit first, LSB-first in the stream,
    zero-padded to a whole word; ``n_bits`` is the number of code bits.
    """
    acc = 0
    pos = 0
    for s in np.asarray(symbols, dtype=np.int64).ravel():
        code, length = table.code(int(s))
        acc |= _reverse(code, length) << pos
        pos += length
    n = ceil_div(pos, WORD_BITS)
    words = np.array([(acc >> (WORD_BITS * i)) & 0xFFFFFFFF for i in range(n)], dtype=np.uint32)
    return words, pos


@dataclass
class DecodeResult:
    """What a decode run produced.

    Members
    -------
    symbols : numpy.ndarray of int64
    counters : dict
        ``huffman_symbols``, ``huffman_bits``, ``huffman_busy_cycles``.
    words_used : int
        Stream words consumed: the words holding the codes (the rest of the last
        one is discarded).
    """
    symbols: np.ndarray
    counters: dict
    words_used: int


def codes_per_step(max_len: int) -> int:
    """Codes a decoder step takes: two when two codes always fit in one word (``2 * max_len <= 32``),
    so a step that needs a word always completes both; else one."""
    return 2 if 2 * max_len <= WORD_BITS else 1


def decode_stream(words, table: HuffmanTable, n_symbols: int) -> DecodeResult:
    """Decode ``n_symbols`` symbols from ``words`` as the RTL does, step by step (see the module docstring).

    Raises :class:`InvalidCodeError` or :class:`TruncatedError`, carrying the
    symbols decoded before the error, the code bits consumed and the words used.
    """
    words = [int(x) & 0xFFFFFFFF for x in words]
    stream = 0
    for i, word in enumerate(words):
        stream |= word << (WORD_BITS * i)
    ml = table.max_len
    mask = (1 << ml) - 1
    tables = table.decode_tables()
    per_step = codes_per_step(ml)
    out = []
    pos = 0        # bits decoded
    taken = 0      # words taken
    steps = 0

    def code_at(p):
        """(length, symbol) of the code at bit ``p``, length 0 if none matches (bits past the end are zero)."""
        rev = _reverse((stream >> p) & mask, ml)
        for length, (limit, first, offset) in enumerate(tables, start=1):
            if rev < limit:
                return length, table.symbols[offset + (rev >> (ml - length)) - first]
        return 0, None

    def look(end, n):
        """The step's codes within the first ``end`` bits: ``(codes, verdict)``, verdict ``"ok"`` (all
        ``n`` there), ``"invalid"`` (the next bits match no code) or ``"need"`` (they end first)."""
        codes, p = [], pos
        for _ in range(n):
            if p >= end:
                return codes, "need"
            length, symbol = code_at(p)
            if length == 0:
                return codes, "invalid"
            if p + length > end:
                return codes, "need"
            codes.append((length, symbol))
            p += length
        return codes, "ok"

    def fail(cls, message, words_used, pending=0):
        counters = {"huffman_symbols": len(out), "huffman_bits": pos, "huffman_busy_cycles": steps}
        return cls(message, words_used=words_used, symbols=list(out), bits=pos, counters=counters,
                   pending=pending)

    while len(out) < n_symbols:
        n = min(per_step, int(n_symbols) - len(out))
        codes, verdict = look(taken * WORD_BITS, n)
        if verdict == "need":
            if taken == len(words):
                # The step ends the run: the codes the buffer held are delivered, then the error.
                steps += 1
                for length, symbol in codes:
                    out.append(symbol)
                    pos += length
                raise fail(TruncatedError, f"stream ends inside symbol {len(out)}", len(words), len(codes))
            taken += 1                  # one word always completes the step's codes
            codes, verdict = look(taken * WORD_BITS, n)
        steps += 1
        for length, symbol in codes:
            out.append(symbol)
            pos += length
        if verdict == "invalid":
            raise fail(InvalidCodeError, f"bits at {pos} match no code (symbol {len(out)})", taken)
    counters = {"huffman_symbols": len(out), "huffman_bits": pos, "huffman_busy_cycles": steps}
    return DecodeResult(np.array(out, dtype=np.int64), counters, taken)


def decode(words, table: HuffmanTable, n_symbols: int) -> np.ndarray:
    """Golden decoder: ``n_symbols`` symbols from the word stream ``words``.

    Raises :class:`InvalidCodeError` or :class:`TruncatedError` (see the module docstring).
    """
    return decode_stream(words, table, n_symbols).symbols


