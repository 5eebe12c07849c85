"""Payload layouts and interface signatures shared between the engine's blocks.

Layouts (:mod:`amaranth.lib.data`) say what a payload holds; signatures
(:class:`amaranth.lib.wiring.Signature` subclasses, with checked parameters
like :class:`amaranth.lib.memory.ReadPort.Signature`) say which ports a kind of
block has.  Blocks that play the same role share one signature class, so the
engine connects whichever a layer needs in one way: the row sources
(:class:`RowSourceSignature`) and the dot-product units
(:class:`DotProductSignature`).
"""
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.contract.counters import COUNTER_BITS, COUNTERS, RTL_COUNTERS
from model.contract.errors import ERROR_BITS
from model.contract.fixedpoint import (ACC_BITS, ACT_BITS, ACT_PARAM_BITS, ACT_PARAM_SHIFT, COMPACT_BIAS_SHIFT_BITS,
                                       MULT_BITS, SHIFT_BITS)
from model.contract.layout import (COMPACT_ACT_LSB, COMPACT_BIAS_SHIFT_LSB, COMPACT_SHIFT_LSB, DESC_WORDS,
                                   DRAM_WORDS_WORD, FLAG_COMPACT, FLAG_FLOOR, FLAG_RELU, FLAG_RESIDENT, FLAG_SAVE,
                                   JOB_WORDS, KIND_MASK, KIND_SHIFT, MAX_FEATURES_LIMIT, MODE_MASK, MODE_PARAM_SHIFT,
                                   MODE_SHIFT,
                                   WORD_BITS, WSRAM_ADDR_BITS)
from model.contract.window import GROUPS_BITS, GROUPS_SHIFT, SIDE_BITS, WORD7_FIELDS, WORD7_SHIFT

#: Width of feature counts, row counts and per-row word counts in descriptors.
#: Counts of values and rows: up to the largest activation SRAM itself.
COUNT_BITS = MAX_FEATURES_LIMIT.bit_length()

#: Width of the engine's ``phase`` output: 0, or one more than the index of the running layer.
PHASE_BITS = COUNT_BITS + 1

Act = signed(ACT_BITS)

#: The layout of a member a block does not need (no configuration, no events): zero bits.
EMPTY = data.StructLayout({})


def lane_word(lanes: int) -> data.ArrayLayout:
    """``lanes`` int8 values side by side: one SRAM word, one codeword."""
    return data.ArrayLayout(Act, lanes)


def row_marked(fields: dict) -> data.StructLayout:
    """``fields``, then the ``first`` and ``last`` marks that delimit a row's beats.

    Every per-beat payload between the row sources and the accumulators ends
    with these two bits, so a row's boundaries travel with its data.
    """
    return data.StructLayout({**fields, "first": 1, "last": 1})


RowParams = data.StructLayout({
    "bias": signed(ACC_BITS),
    "mult": unsigned(MULT_BITS),
    "shift": unsigned(SHIFT_BITS),
    "act": signed(ACT_PARAM_BITS),
})

RowResult = data.StructLayout({
    "acc": signed(ACC_BITS),
    "mult": unsigned(MULT_BITS),
    "shift": unsigned(SHIFT_BITS),
    "act": signed(ACT_PARAM_BITS),
})


def beat_layout(index_bits: int) -> data.StructLayout:
    """One dense-row entry: its codebook index (or PVQ index and scale) and its activation sub-vector."""
    return row_marked({"index": unsigned(index_bits), "subvector": unsigned(COUNT_BITS)})


def weight_word(lanes: int, weight_bits: int = ACT_BITS) -> data.ArrayLayout:
    """``lanes`` signed weights of ``weight_bits`` side by side (a codeword; ``ACT_BITS``: a :func:`lane_word`)."""
    return lane_word(lanes) if weight_bits == ACT_BITS else data.ArrayLayout(signed(weight_bits), lanes)


def operands_layout(lanes: int, weight_bits: int = ACT_BITS) -> data.StructLayout:
    """One codeword (``weight_bits`` per lane: wider than int8 for a sum of residual-VQ stages) and the
    activation sub-vector it multiplies."""
    return row_marked({"codeword": weight_word(lanes, weight_bits), "activations": lane_word(lanes)})


def sram_write_layout(addr_width: int, lanes: int) -> data.StructLayout:
    """One activation SRAM write: a lane-word and its address within the half being written."""
    return data.StructLayout({"addr": addr_width, "data": lane_word(lanes)})


CounterLayout = data.StructLayout({name: unsigned(COUNTER_BITS) for name in COUNTERS + RTL_COUNTERS})

#: The job header's words (:mod:`model.contract.layout`), word 0 lowest.
JobHeaderLayout = data.FlexibleLayout(JOB_WORDS * WORD_BITS, {
    "magic": data.Field(unsigned(WORD_BITS), 0),
    "n_layers": data.Field(unsigned(16), WORD_BITS),
    "n_images": data.Field(unsigned(16), WORD_BITS + 16),
    "desc_addr": data.Field(unsigned(WORD_BITS), 2 * WORD_BITS),
    "input_addr": data.Field(unsigned(WORD_BITS), 3 * WORD_BITS),
    "input_features": data.Field(unsigned(WORD_BITS), 4 * WORD_BITS),
    "output_addr": data.Field(unsigned(WORD_BITS), 5 * WORD_BITS),
    "dram_words": data.Field(unsigned(WORD_BITS), DRAM_WORDS_WORD * WORD_BITS),
})

#: A layer descriptor's words (:mod:`model.contract.layout`), word 0 lowest.  The
#: overlapping fields name what the codebook words and ``row_words`` hold in PVQ,
#: HUFFMAN, AVGPOOL and ADD layers, as :class:`model.contract.descriptor.Descriptor` does.
DescriptorLayout = data.FlexibleLayout(DESC_WORDS * WORD_BITS, {
    "in_features": data.Field(unsigned(16), 0),
    "out_features": data.Field(unsigned(16), 16),
    "codebook_base": data.Field(unsigned(16), WORD_BITS),
    "codebook_size": data.Field(unsigned(16), WORD_BITS + 16),
    "pvq_k": data.Field(unsigned(16), WORD_BITS),
    # An AVGPOOL or ADD layer's word 1 is its requantization word.
    "pool_mult": data.Field(unsigned(MULT_BITS), WORD_BITS),
    "pool_shift": data.Field(unsigned(SHIFT_BITS), WORD_BITS + MULT_BITS),
    "pool_act": data.Field(signed(ACT_PARAM_BITS), WORD_BITS + ACT_PARAM_SHIFT),
    "entry_bits": data.Field(unsigned(16), WORD_BITS + 16),
    "stream_addr": data.Field(unsigned(WORD_BITS), 2 * WORD_BITS),
    "row_words": data.Field(unsigned(16), 3 * WORD_BITS),
    "table_words": data.Field(unsigned(16), 3 * WORD_BITS),
    "relu": data.Field(unsigned(1), 3 * WORD_BITS + 16 + (FLAG_RELU.bit_length() - 1)),
    "resident": data.Field(unsigned(1), 3 * WORD_BITS + 16 + (FLAG_RESIDENT.bit_length() - 1)),
    "floor": data.Field(unsigned(1), 3 * WORD_BITS + 16 + (FLAG_FLOOR.bit_length() - 1)),
    "compact": data.Field(unsigned(1), 3 * WORD_BITS + 16 + (FLAG_COMPACT.bit_length() - 1)),
    # A compact FC layer's word 5: its rows' shift, activation parameter and bias shift.
    "compact_shift": data.Field(unsigned(SHIFT_BITS), 5 * WORD_BITS + COMPACT_SHIFT_LSB),
    "compact_act": data.Field(signed(ACT_PARAM_BITS), 5 * WORD_BITS + COMPACT_ACT_LSB),
    "compact_bias_shift": data.Field(unsigned(COMPACT_BIAS_SHIFT_BITS), 5 * WORD_BITS + COMPACT_BIAS_SHIFT_LSB),
    "wsram_addr": data.Field(unsigned(WSRAM_ADDR_BITS), 4 * WORD_BITS),
    "mode": data.Field(unsigned(MODE_MASK.bit_length()), 3 * WORD_BITS + 16 + MODE_SHIFT),
    "kind": data.Field(unsigned(KIND_MASK.bit_length()), 3 * WORD_BITS + 16 + KIND_SHIFT),
    # The window of a windowed kind (model.contract.window).
    "channel_groups": data.Field(unsigned(GROUPS_BITS), 4 * WORD_BITS + GROUPS_SHIFT),
    "in_width": data.Field(unsigned(SIDE_BITS), 5 * WORD_BITS),
    "in_height": data.Field(unsigned(SIDE_BITS), 5 * WORD_BITS + SIDE_BITS),
    "out_width": data.Field(unsigned(SIDE_BITS), 6 * WORD_BITS),
    "out_height": data.Field(unsigned(SIDE_BITS), 6 * WORD_BITS + SIDE_BITS),
    **{name: data.Field(unsigned(bits), 7 * WORD_BITS + WORD7_SHIFT[name]) for name, bits in WORD7_FIELDS},
})

#: The descriptor bit of ``FLAG_SAVE``.  Not a field of `DescriptorLayout`: a field adds a named wire to
#: every engine's Verilog, and engines without the skip buffer must stay as they were.
SAVE_BIT = 3 * WORD_BITS + 16 + (FLAG_SAVE.bit_length() - 1)
#: The descriptor's first ``MODE_PARAM`` bit (RVQ's stages - 1, PQ's log2 block width), for the same reason.
MODE_PARAM_BIT = 3 * WORD_BITS + 16 + MODE_PARAM_SHIFT


def control_members(counters=CounterLayout) -> dict:
    """The job-control ports of the engine and of every top that stands in for it.

    ``start`` In(1), ``busy`` and ``done`` Out(1), ``error`` Out(ERROR_BITS),
    ``counters`` Out(counters) and ``phase`` Out(PHASE_BITS);
    :class:`hw.engine.Engine` documents what they mean.
    """
    return {"start": In(1), "busy": Out(1), "done": Out(1), "error": Out(ERROR_BITS),
            "counters": Out(counters), "phase": Out(PHASE_BITS)}


# --- parameter checks shared by the signatures --------------------------------------------------

def _check_width(value, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")


def _check_layout(value, name: str, *, row_marks: bool = False) -> None:
    if not isinstance(value, data.Layout):
        raise TypeError(f"{name} must be a data layout, not {value!r}")
    if row_marks:
        for mark in ("first", "last"):
            try:
                field = value[mark]
            except (KeyError, TypeError):   # no such field, or not a struct-like layout
                raise ValueError(f"{name} must have a one-bit {mark!r} field (see row_marked), "
                                 f"not {value!r}") from None
            if Shape.cast(field.shape) != unsigned(1):
                raise ValueError(f"{name}'s {mark!r} field must be one bit, not {field.shape!r}")


class _ParameterizedSignature(wiring.Signature):
    """A signature fixed by its parameters: equal to another of its class with the same
    parameters, and shown with them, as the standard library's signatures are."""

    def __init__(self, members: dict, **params):
        self._params = params
        super().__init__(members)

    def __eq__(self, other):
        return type(self) is type(other) and self._params == other._params

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._params.items())})"


# --- DRAM ports ---------------------------------------------------------------------------------

class DramReadSignature(_ParameterizedSignature):
    """Signature of a pipelined DRAM read port: addresses go out, words come back in request order.

    Parameters
    ----------
    addr_width : int
        Width of a DRAM word address, at least 1.

    Members
    -------
    req : Out(stream.Signature(unsigned(addr_width)))
        One word address per read.
    resp : In(stream.Signature(unsigned(32)))
        The words read, in request order.
    """

    def __init__(self, addr_width: int):
        _check_width(addr_width, "addr_width")
        super().__init__({
            "req": Out(stream.Signature(unsigned(addr_width))),
            "resp": In(stream.Signature(unsigned(WORD_BITS))),
        }, addr_width=addr_width)

    @property
    def addr_width(self) -> int:
        return self._params["addr_width"]


def dram_write_layout(addr_width: int) -> data.StructLayout:
    """One posted DRAM write: the word and where it goes."""
    _check_width(addr_width, "addr_width")
    return data.StructLayout({"addr": addr_width, "data": WORD_BITS})


def dram_write_signature(addr_width: int) -> stream.Signature:
    """Signature of a posted DRAM write port: ``stream.Signature(dram_write_layout(addr_width))``.

    A write is done when its transfer is accepted.  (A stream's signature is
    :class:`amaranth.lib.stream.Signature`, which may not be subclassed: the
    write port is a plain stream whose payload layout carries the parameter.)
    """
    return stream.Signature(dram_write_layout(addr_width))


# --- datapath roles ------------------------------------------------------------------------------

class _RoleSignature(_ParameterizedSignature):
    """What the datapath roles' signatures share: per-block ``config`` and ``events`` layouts."""

    @property
    def config(self) -> data.Layout:
        return self._params["config"]

    @property
    def events(self) -> data.Layout:
        return self._params["events"]


class RowSourceSignature(_RoleSignature):
    """Signature of a row source: a layer's DRAM stream in, row parameters and beats out.

    A row source reads one layer's stream and says, for each row, its bias and
    requantization (``params``) and then each step of the row (``beats``: what
    the fetch stage reads from the ROM and SRAM for it).
    :class:`hw.index_path.IndexPath` (dense VQ and PVQ rows) and
    :class:`hw.sparse_rows.SparseRowPath` (sparse Huffman-coded rows) are the
    engine's row sources.

    Parameters
    ----------
    config : data.Layout
        The layer's configuration, in the fields this source needs.
    beat : data.Layout
        One beat; it must end with the one-bit ``first`` and ``last`` marks (:func:`row_marked`).
    events : data.Layout
        The source's activity strobes, for the engine's counters (:data:`EMPTY` for none).

    Members
    -------
    config : In(config)
        Held from ``start`` to the end of the layer.
    start : In(1)
        Begin a layer, from any state; clears ``error``.
    words : In(stream.Signature(unsigned(32)))
        The layer's stream.
    dry : In(1)
        No more words will come on ``words`` (a source whose rows have a
        length known in advance does not need it).
    params : Out(stream.Signature(RowParams))
        One transfer per row, before the row's first beat.
    beats : Out(stream.Signature(beat))
        One transfer per beat.
    busy : Out(1)
        From ``start`` until every row has been read and every beat has gone
        out; it stays high after an error.  Once it is low, ``words`` may still
        be taken: the source discards what follows its rows (padding).
    error : Out(ERROR_BITS)
        :class:`model.contract.errors.EngineError` value, 0 when none; held
        until ``start``, and nothing more is emitted meanwhile.
    events : Out(events)
    """

    def __init__(self, *, config: data.Layout, beat: data.Layout, events: data.Layout = EMPTY):
        _check_layout(config, "config")
        _check_layout(beat, "beat", row_marks=True)
        _check_layout(events, "events")
        super().__init__({
            "config": In(config),
            "start": In(1),
            "words": In(stream.Signature(unsigned(WORD_BITS))),
            "dry": In(1),
            "params": Out(stream.Signature(RowParams)),
            "beats": Out(stream.Signature(beat)),
            "busy": Out(1),
            "error": Out(ERROR_BITS),
            "events": Out(events),
        }, config=config, beat=beat, events=events)

    @property
    def beat(self) -> data.Layout:
        return self._params["beat"]


class DotProductSignature(_RoleSignature):
    """Signature of a dot-product unit: operand beats in, one accumulator per row out.

    Each operand transfer is one step of a row: a weight sub-vector, coded as
    the unit takes it, with the activation sub-vector it meets.  The unit sums
    the row's products onto its bias modulo ``2**32`` (the golden model's
    :func:`model.golden.mac.accumulate`) and passes the row's requantization
    on.  :class:`hw.mac.MacLanes` (codewords, one multiply per lane) and
    :class:`hw.pvq.PvqDotProduct` (PVQ indices, adds only) are the engine's
    dot-product units.

    Parameters
    ----------
    operands : data.Layout
        One operand transfer; it must end with the one-bit ``first`` and ``last``
        marks (:func:`row_marked`).
    config : data.Layout
        The layer's configuration, in the fields this unit needs (:data:`EMPTY` for none).
    events : data.Layout
        The unit's activity strobes, for the engine's counters and for tests (:data:`EMPTY` for none).
    always_ready : bool
        The unit takes an operand in every cycle (``operands`` has no ``ready``).

    Members
    -------
    config : In(config)
        Held for the layer; sampled with each operand.
    clear : In(1)
        Abandon the rows in progress and clear ``error``; the next operand must start a row.
    operands : In(stream.Signature(operands, always_ready=always_ready))
    params : In(stream.Signature(RowParams))
        The current row's bias and requantization, read when the row's first
        operand reaches the accumulator and consumed with its last.  The unit
        assumes it is valid then (the engine's row-parameter FIFO runs ahead).
    result : Out(stream.Signature(RowResult, always_ready=True))
        One accumulator per row, with the row's ``mult`` and ``shift``.
    error : Out(1)
        An operand was out of range (the engine's ``BAD_INDEX``); held until ``clear``.
    events : Out(events)
    """

    def __init__(self, *, operands: data.Layout, config: data.Layout = EMPTY, events: data.Layout = EMPTY,
                 always_ready: bool = False):
        _check_layout(operands, "operands", row_marks=True)
        _check_layout(config, "config")
        _check_layout(events, "events")
        if not isinstance(always_ready, bool):
            raise TypeError(f"always_ready must be a bool, not {always_ready!r}")
        super().__init__({
            "config": In(config),
            "clear": In(1),
            "operands": In(stream.Signature(operands, always_ready=always_ready)),
            "params": In(stream.Signature(RowParams)),
            "result": Out(stream.Signature(RowResult, always_ready=True)),
            "error": Out(1),
            "events": Out(events),
        }, operands=operands, config=config, events=events, always_ready=always_ready)

    @property
    def operands(self) -> data.Layout:
        return self._params["operands"]

    @property
    def always_ready(self) -> bool:
        return self._params["always_ready"]
