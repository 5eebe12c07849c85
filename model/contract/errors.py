"""Every error a user can see, and the engine's error status.

:class:`VqeError` is the base class of every error the ``vqe`` command reports
as one line (bad program files, bad options, bad data, engine faults);
:class:`EngineError` is the value of the engine's ``error`` output, and
:class:`EngineFault` the golden model's way of saying the engine stops with it.
"""
from __future__ import annotations

import enum
import struct
import tokenize
import zipfile
import zlib


class VqeError(Exception):
    """Base class of the errors a user can see: the CLI prints one line and exits 1."""


#: What NumPy raises reading a damaged ``.npy``/``.npz`` file.  Beside the usual I/O and value errors, a
#: damaged archive fails in ``zipfile`` or ``zlib``, and a damaged array header in ``tokenize`` (NumPy
#: tokenizes the header's dict literal; ``TokenError`` is not a ``ValueError``).  Every loader of a user's
#: file catches these and reports one line.
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, RuntimeError, SyntaxError, struct.error,
                   tokenize.TokenError, zipfile.BadZipFile, zlib.error)


class ProgramError(VqeError):
    """A program file is unreadable or describes something the engine cannot run."""


class EngineError(enum.IntEnum):
    """Values of the engine's ``error`` status (0 = no error)."""
    NONE = 0
    BAD_JOB = 1       #: job header magic wrong, or zero layers or images
    BAD_SHAPE = 2     #: a feature count is zero or exceeds ``max_features``
    BAD_CHAIN = 3     #: ``in_features`` differs from the previous layer's output;
                      #: ADD: or from the skip buffer's saved vector (none saved: 0)
    BAD_CODEBOOK = 4  #: codebook size zero, above ``codebook_depth``, or past the ROM's end;
                      #: PVQ: K zero or above ``pvq_k_max``, or entry width wrong for K;
                      #: HUFFMAN: k zero or above ``huffman_k_max``, or its entries past the ROM's end
    BAD_STREAM = 5    #: ``row_words`` disagrees with the shape and index width;
                      #: HUFFMAN: a word needed past the size word's total;
                      #: a descriptor or stream read at or past the job's ``dram_words``
    BAD_MODE = 6      #: unknown layer mode
    BAD_INDEX = 7     #: a codebook index at or above the layer's codebook size (PVQ: >= V(lanes, K))
    BAD_SPARSE = 8    #: HUFFMAN: a position at or past ``in_features``
    # HUFFMAN layers: the decoder's status, HUFF_BASE + model.codecs.huffman.HuffmanStatus.
    HUFF_OVERSUBSCRIBED = 9   #: table: Kraft sum above 1
    HUFF_INCOMPLETE = 10      #: table: Kraft sum below 1
    HUFF_LENGTH = 11          #: table: codes longer than the engine's ``huffman_max_len``
    HUFF_SYMBOL = 12          #: table: symbol repeated, or more symbols than the alphabet
    HUFF_NO_TABLE = 13        #: never raised: the engine always loads a table first
    HUFF_INVALID_CODE = 14    #: row codes: bits matching no code
    HUFF_TRUNCATED = 15       #: table longer than ``table_words`` (or a row's codes than ``FIELD16`` words)


#: ``EngineError`` of a Huffman decoder status ``s`` (``model.codecs.huffman.HuffmanStatus``) is ``HUFF_BASE + s``.
HUFF_BASE = EngineError.BAD_SPARSE


ERROR_BITS = 4


class EngineFault(VqeError):
    """The engine stopped with an error status.

    Parameters
    ----------
    code : EngineError
        The status the RTL reports for the same image.
    detail : str
        What was wrong, for people.
    """

    def __init__(self, code: EngineError, detail: str):
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self):
        """Pickle as its arguments (a fault raised in a Dask worker reaches the client intact)."""
        return type(self), (self.code, self.detail)
