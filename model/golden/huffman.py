"""Golden twin of :class:`hw.huffman.HuffmanDecoder`."""
from __future__ import annotations

import numpy as np

from model.codecs.huffman import (DEFAULT_MAX_LEN, DEFAULT_SYMBOL_BITS, ERROR_CLASSES, HUFFMAN_COUNTERS, HuffmanError,
                                  HuffmanStatus, HuffmanTable, _check_params, decode_stream)


class HuffmanDecoder:
    """Golden twin of :class:`hw.huffman.HuffmanDecoder`: table load, decode runs, status, counters.

    Parameters
    ----------
    max_len : int
        Longest code (the decoder's window).
    symbol_bits : int
        Symbol width; the alphabet is ``0 .. 2**symbol_bits - 1``.

    Members
    -------
    table : HuffmanTable or None
        The table in use; None before a successful load.
    status : HuffmanStatus
        The RTL's ``error`` output after the last operation.
    counters : dict
        ``huffman_symbols``, ``huffman_bits``, ``huffman_busy_cycles`` since the last start.
    words_used : int
        Words the last load or run consumed.
    """

    def __init__(self, max_len: int = DEFAULT_MAX_LEN, symbol_bits: int = DEFAULT_SYMBOL_BITS):
        _check_params(max_len, symbol_bits)
        self.max_len = max_len
        self.symbol_bits = symbol_bits
        self.table = None
        self.status = HuffmanStatus.NONE
        self.counters = dict.fromkeys(HUFFMAN_COUNTERS, 0)
        self.words_used = 0
        self._load_failed = False

    def load(self, words) -> HuffmanTable:
        """Load a table from its words (the RTL's ``load`` and ``table`` stream)."""
        self.table = None
        self.status = HuffmanStatus.NONE
        self._load_failed = False
        try:
            self.table, self.words_used = HuffmanTable.parse_words(words, self.max_len, self.symbol_bits)
        except HuffmanError as err:
            self.status = err.status
            self.words_used = err.words_used
            self._load_failed = True
            raise
        return self.table

    def run(self, words, count: int) -> np.ndarray:
        """Decode ``count`` symbols from ``words`` (the RTL's ``start`` with ``n_words = len(words)``)."""
        self.counters = dict.fromkeys(HUFFMAN_COUNTERS, 0)
        self.words_used = 0
        if self.table is None:
            # A failed load's error (a bad or truncated table) stays until the next
            # load; with no load at all the run is refused as NO_TABLE.
            if not self._load_failed:
                self.status = HuffmanStatus.NO_TABLE
            raise ERROR_CLASSES[self.status]("no valid table loaded", words_used=0, symbols=[], bits=0)
        self.status = HuffmanStatus.NONE
        try:
            result = decode_stream(words, self.table, count)
        except HuffmanError as err:
            self.status = err.status
            self.counters = err.counters
            self.words_used = err.words_used
            raise
        self.counters = result.counters
        self.words_used = result.words_used
        return result.symbols
