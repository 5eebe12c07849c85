"""Canonical Huffman decoder: table load, then two codes per step from a word stream."""
from functools import reduce
from operator import or_

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS
from model.codecs.huffman import (DEFAULT_MAX_LEN, DEFAULT_SYMBOL_BITS, HEADER_LENGTH_BITS, MAX_LEN_LIMIT, STATUS_BITS,
                                  HuffmanStatus, codes_per_step, count_bits)
from model.contract.layout import HUFFMAN_SYMBOL_BITS_MAX, WORD_BITS

#: The duplicate-symbol check keeps one flop per possible symbol while a table
#: loads, so the RTL is limited to modest alphabets (1024 symbols).
MAX_RTL_SYMBOL_BITS = HUFFMAN_SYMBOL_BITS_MAX

#: Table symbols a load writes per cycle at most: the symbol memory has as many banks (table positions
#: modulo their number), so a cycle's consecutive positions are in different banks.  Four symbols of
#: 8 or 9 bits are about what one table word a cycle brings, so more banks would not load faster.
TABLE_SYMBOL_BANKS = 4


def huffman_events(max_len: int) -> data.StructLayout:
    """The decoder's counter strobes: ``symbol`` (``huffman_symbols``, symbols taken), ``bits``
    (``huffman_bits``, the codes a step decodes) and ``decode`` (``huffman_busy_cycles``)."""
    per_step = codes_per_step(max_len)
    return data.StructLayout({"symbol": range(per_step + 1), "bits": range(per_step * max_len + 1), "decode": 1})


class HuffmanDecoder(wiring.Component):
    """Decodes canonical Huffman codes from a 32-bit word stream, two codes a step, one symbol per cycle out.

    The code table, the stream format and every error rule are those of
    :mod:`model.codecs.huffman`, and :class:`model.golden.huffman.HuffmanDecoder` is
    its golden twin.

    **Table load.**  A ``load`` pulse latches ``table_words`` (the most words
    the table may take) and reads the table from the ``table`` stream in the
    :meth:`model.codecs.huffman.HuffmanTable.to_words` layout: the header, one count
    per cycle (each turned into the per-length ``limit`` and ``base``
    registers the decoder compares against), then up to :data:`TABLE_SYMBOL_BANKS`
    symbols per cycle, as many as the buffer and the next word hold, into the symbol memory
    (:class:`~amaranth.lib.memory.Memory` banks by table position, each with a read port per
    code of a step), checking each against a seen-symbols bitmap and the cycle's others.  A word is
    taken only when a field needs its bits, so exactly the table's words are consumed.
    Checks run as the fields arrive; the first failure sets ``error`` and stops the load.
    A field that straddles two words takes the second in the cycle it is used, so a load takes a
    cycle for the header, one per count and about one per word of symbols (a 200-symbol table for
    ``max_len = 15``, ``symbol_bits = 8``: 56 words, 66 cycles).

    **Decode.**  A ``start`` pulse latches ``count`` (symbols to decode) and
    ``n_words`` (the most words the stream may take).  A decode *step* takes two
    codes when ``2 * max_len <= 32`` (one when a single symbol remains), else
    one (:func:`model.codecs.huffman.codes_per_step`).  For each code the
    decoder reverses the next ``max_len`` bits into the code-first number
    ``rev``, compares it with every ``limit[L]`` in parallel (the limits are
    non-decreasing, so the matches form a thermometer code whose edge is the
    code length) and forms the symbol's table address ``base[L] + (rev >>
    (max_len - L))``; the second code's window starts where the first code
    ends, so the two comparator banks are chained.  The addresses go to the
    symbol memory (a read port per code), whose registered outputs are
    delivered one symbol per transfer on ``symbols``.

    The bit buffer holds fewer than 32 bits.  When the buffered bits cannot
    complete the step's codes, the decoder takes a word and decodes from the
    buffer and that word together in the same cycle (two codes of at most 16
    bits, or one of at most 32, always fit).  Words are therefore taken only
    when a code needs their bits: after ``count`` symbols exactly the words
    holding the codes have been consumed, and the rest of the last word is
    discarded, so the next stream starts word-aligned.  The decoder steps when
    its output will be empty after this cycle, so it delivers one symbol per
    cycle (one cycle of latency) while stepping every other cycle: two symbols
    per busy cycle (``huffman_busy_cycles``), the headroom a consumer of two
    symbols a cycle would use.

    **Errors** (``error``, a :class:`model.codecs.huffman.HuffmanStatus`): table
    errors (oversubscribed, incomplete, length over limit, bad symbol,
    truncated table) stay until the next ``load``, and ``start`` does not clear
    them; ``start`` without a loaded table (or during a load) gives
    ``NO_TABLE``; stream errors (invalid code, truncated stream) stop the run
    in the cycle they are found and stay until the next ``start`` or ``load``.
    After an error nothing more is read; a symbol already offered on
    ``symbols`` stays offered until taken (stream rules), so every symbol
    decoded before the error is delivered.  ``start`` and ``load`` abandon a
    run in progress (``load`` wins if both are high).

    Parameters
    ----------
    max_len : int
        Longest code, 1..32: the width of the decode window.
    symbol_bits : int
        Symbol width, 1..10; the alphabet is ``0 .. 2**symbol_bits - 1``.
    count_bits : int
        Width of ``count``, ``n_words`` and ``table_words``.

    Members
    -------
    table : In(stream.Signature(32))
        The table's words.
    table_words : In(count_bits)
        Words the table may take, latched by ``load``; running out is ``TRUNCATED``.
    load : In(1)
        Pulse: forget the table and load a new one.
    words : In(stream.Signature(32))
        The coded stream.
    count : In(count_bits)
        Symbols to decode, latched by ``start``.
    n_words : In(count_bits)
        Words the stream may take, latched by ``start``; running out is ``TRUNCATED``.
    start : In(1)
        Pulse: begin decoding (only with a loaded table).
    symbols : Out(stream.Signature(symbol_bits))
        The decoded symbols, one per transfer.
    pair : Out(1)
        Both symbols of a two-code step are offered: ``symbols.payload``, then ``second``.
    second : Out(symbol_bits)
        The symbol after ``symbols.payload``, while ``pair``.
    take_two : In(1)
        With ``pair``, a transfer on ``symbols`` takes ``second`` too (a consumer that passes
        some symbols on in the same cycle as the next, as the sparse stage does fillers).
    table_ok : Out(1)
        A table is loaded and valid.
    busy : Out(1)
        A load or a run is in progress, or a symbol is still offered.
    error : Out(STATUS_BITS)
        :class:`model.codecs.huffman.HuffmanStatus`; 0 when all is well.
    events : Out(huffman_events(max_len))
        ``symbol``: the symbols delivered this cycle, 0 to 2 (``huffman_symbols``).
        ``bits``: code bits the step consumed this cycle (``huffman_bits``).
        ``decode``: strobe, the decoder stepped: it decoded one or two symbols, or
        found a stream error (``huffman_busy_cycles``).
    """

    def __init__(self, max_len: int = DEFAULT_MAX_LEN, symbol_bits: int = DEFAULT_SYMBOL_BITS,
                 count_bits: int = COUNT_BITS):
        if not 1 <= max_len <= MAX_LEN_LIMIT:
            raise ValueError(f"max_len must be 1..{MAX_LEN_LIMIT}, got {max_len}")
        if not 1 <= symbol_bits <= MAX_RTL_SYMBOL_BITS:
            raise ValueError(f"symbol_bits must be 1..{MAX_RTL_SYMBOL_BITS}, got {symbol_bits}")
        self.max_len = max_len
        self.symbol_bits = symbol_bits
        super().__init__({
            "table": In(stream.Signature(unsigned(WORD_BITS))),
            "table_words": In(count_bits),
            "load": In(1),
            "words": In(stream.Signature(unsigned(WORD_BITS))),
            "count": In(count_bits),
            "n_words": In(count_bits),
            "start": In(1),
            "symbols": Out(stream.Signature(unsigned(symbol_bits))),
            "pair": Out(1),
            "second": Out(symbol_bits),
            "take_two": In(1),
            "table_ok": Out(1),
            "busy": Out(1),
            "error": Out(STATUS_BITS),
            "events": Out(huffman_events(max_len)),
        })

    def elaborate(self, platform):
        m = Module()
        ml, sb = self.max_len, self.symbol_bits
        cb = count_bits(sb)
        alphabet = 1 << sb

        error = Signal(STATUS_BITS)
        m.d.comb += self.error.eq(error)

        # The symbol memory in banks by table position (modulo their number), so that a table load
        # writes consecutive positions, one per bank, in one cycle; each decode read port reads every bank.
        n_banks = min(TABLE_SYMBOL_BANKS, alphabet)
        bank_bits = n_banks.bit_length() - 1
        banks = [Memory(shape=unsigned(sb), depth=alphabet // n_banks, init=[]) for _ in range(n_banks)]
        for b, bank in enumerate(banks):
            m.submodules[f"symbol_mem{b}"] = bank
        writes = [bank.write_port() for bank in banks]

        # Per-length decode registers, shifted in one per count during a load so
        # that entry i ends up describing codes of length i + 1.  limit: the
        # left-justified end of the length's codes; base: offset - first code,
        # modulo the memory size (the true address always fits).
        limits = [Signal(ml + 1, name=f"limit{i + 1}") for i in range(ml)]
        bases = [Signal(sb, name=f"base{i + 1}") for i in range(ml)]

        # --- table load ---------------------------------------------------------------------
        twords_left = Signal.like(self.table_words)
        # Fields not yet used (a word is added only when short): a count, or a cycle's symbols, less a bit.
        fbuf = Signal(WORD_BITS + max(cb, n_banks * sb) - 1)
        fbits = Signal(range(len(fbuf) + 1))
        n_lengths = Signal(HEADER_LENGTH_BITS)
        length = Signal(range(ml + 2))      # the count being read: codes of this length
        code_w = max(ml, cb) + 2            # first code + a count, before the overflow check
        first = Signal(code_w)              # first code of this length
        power = Signal(ml + 2)              # 2**length: the codes of this length
        offset = Signal(code_w)             # symbols of shorter codes (the total, at the end)
        count1_one = Signal()               # counts[1] == 1: part of the one-symbol test
        sym_k = Signal(range(alphabet + 1))
        seen = Signal(alphabet)

        take_table = self.table.valid & self.table.ready
        failing = Signal()                  # a table check fails this cycle
        lj_shift = Signal(range(ml))        # left-justifies a code of this length
        m.d.comb += lj_shift.eq(ml - length)

        def on_load():
            """A load restarts from any state (called last in each state, so it wins)."""
            with m.If(self.load):
                m.d.sync += [error.eq(HuffmanStatus.NONE), twords_left.eq(self.table_words),
                             fbuf.eq(0), fbits.eq(0), first.eq(0), power.eq(2), offset.eq(0),
                             length.eq(1), count1_one.eq(0), seen.eq(0)]
                m.next = "HEADER"

        def fail(status):
            m.d.comb += failing.eq(1)
            m.d.sync += error.eq(status)
            m.next = "FAILED"

        with m.FSM(name="table_fsm") as tfsm:
            with m.State("EMPTY"):
                on_load()
            with m.State("HEADER"):
                with m.If(twords_left == 0):
                    fail(HuffmanStatus.TRUNCATED)
                with m.Else():
                    m.d.comb += self.table.ready.eq(~self.load)
                    with m.If(take_table):
                        header_len = self.table.payload[:HEADER_LENGTH_BITS]
                        m.d.sync += [twords_left.eq(twords_left - 1), n_lengths.eq(header_len)]
                        with m.If(header_len > ml):
                            fail(HuffmanStatus.LENGTH_OVER_LIMIT)
                        with m.Else():
                            m.next = "COUNTS"
                on_load()
            with m.State("COUNTS"):
                in_table = length <= n_lengths   # lengths past the header's are zero counts
                # A count the buffer holds only in part takes the rest from the next word in the same
                # cycle, as a symbol does (below).
                count_short = Signal()
                count_grown = Signal.like(fbuf)
                m.d.comb += [count_short.eq(in_table & (fbits < cb)),
                             count_grown.eq(fbuf | Mux(count_short, self.table.payload << fbits, 0))]
                with m.If(count_short & (twords_left == 0)):
                    fail(HuffmanStatus.TRUNCATED)
                with m.Else():
                    m.d.comb += self.table.ready.eq(count_short & ~self.load)
                with m.If(~(count_short & (twords_left == 0)) & (~count_short | take_table)):
                    c = Mux(in_table, count_grown[:cb], 0)
                    next_code = Signal(code_w)
                    total = Signal(code_w)
                    m.d.comb += [next_code.eq(first + c), total.eq(offset + c)]
                    with m.If(in_table):
                        m.d.sync += [fbuf.eq(count_grown >> cb),
                                     fbits.eq(fbits + Mux(count_short, WORD_BITS, 0) - cb)]
                    with m.If(count_short):
                        m.d.sync += twords_left.eq(twords_left - 1)
                    with m.If(next_code > power):
                        fail(HuffmanStatus.OVERSUBSCRIBED)
                    with m.Else():
                        m.d.sync += [
                            limits[-1].eq((next_code << lj_shift)[:ml + 1]),
                            bases[-1].eq((offset - first)[:sb]),
                            offset.eq(total),
                            first.eq(next_code << 1),
                            power.eq(power << 1),
                            length.eq(length + 1),
                        ]
                        m.d.sync += [limits[i].eq(limits[i + 1]) for i in range(ml - 1)]
                        m.d.sync += [bases[i].eq(bases[i + 1]) for i in range(ml - 1)]
                        with m.If(length == 1):
                            m.d.sync += count1_one.eq(c == 1)
                        with m.If(length == ml):
                            # Zero counts past the longest code double the code space, so
                            # the table is complete iff it fills all 2**max_len codes here.
                            complete = next_code == power
                            one_symbol = (total == 1) & Mux(length == 1, c == 1, count1_one)
                            with m.If(~complete & ~one_symbol):
                                fail(HuffmanStatus.INCOMPLETE)
                            with m.Elif(total > alphabet):
                                fail(HuffmanStatus.BAD_SYMBOL)
                            with m.Else():
                                m.d.sync += sym_k.eq(0)
                                m.next = "SYMBOLS"
                on_load()
            with m.State("SYMBOLS"):
                # Up to a symbol per bank a cycle, as many as the buffer and the next table word hold (a
                # symbol the buffer holds only in part takes the rest of the word in the same cycle).  The
                # tables of a network's sparse layers are loaded for every image, so their load is a share
                # of every sparse layer's time that more PEs do not shorten.
                want = Signal(range(n_banks + 1))     # the symbols left, up to a cycle's
                short = Signal()                      # the buffer lacks bits of those
                got = Signal()                        # a table word joins the buffer this cycle
                grown = Signal.like(fbuf)
                gbits = Signal.like(fbits)
                n = Signal(range(n_banks + 1))        # symbols written this cycle
                left = Signal(range(alphabet + 1))
                m.d.comb += [left.eq(offset - sym_k), want.eq(Mux(left >= n_banks, n_banks, left)),
                             short.eq(fbits < want * sb),
                             self.table.ready.eq(short & (twords_left != 0) & ~self.load),
                             got.eq(take_table),
                             grown.eq(fbuf | Mux(got, self.table.payload << fbits, 0)),
                             gbits.eq(fbits + Mux(got, WORD_BITS, 0)),
                             n.eq(sum((j <= want) & (gbits >= j * sb) for j in range(1, n_banks + 1)))]
                syms = [grown[j * sb:(j + 1) * sb] for j in range(n_banks)]
                # Each symbol as a one-hot mask of the alphabet (a shifter, where a write to a bit picked by
                # the symbol would be a case per symbol value, for each of the cycle's symbols).
                onehot = [Signal(alphabet, name=f"symbol{j}_onehot") for j in range(n_banks)]
                m.d.comb += [onehot[j].eq(Const(1, alphabet) << syms[j]) for j in range(n_banks)]
                # A symbol already in the table, or equal to one before it in this cycle's.
                dup = [(seen & onehot[j]).any() | reduce(or_, [syms[j] == syms[i] for i in range(j)], Const(0))
                       for j in range(n_banks)]
                with m.If((fbits < sb) & (twords_left == 0)):
                    fail(HuffmanStatus.TRUNCATED)
                with m.Elif(n != 0):
                    m.d.sync += [fbuf.eq(grown >> (n * sb)), fbits.eq(gbits - n * sb)]
                    with m.If(got):
                        m.d.sync += twords_left.eq(twords_left - 1)
                    with m.If(reduce(or_, [(j < n) & dup[j] for j in range(n_banks)])):
                        fail(HuffmanStatus.BAD_SYMBOL)
                    with m.Else():
                        for b, wr in enumerate(writes):
                            # Bank b takes this cycle's symbol j at position sym_k + j = b (mod n_banks).
                            j = Signal(bank_bits, name=f"bank{b}_symbol")
                            m.d.comb += j.eq(b - sym_k[:bank_bits])
                            m.d.comb += [wr.addr.eq((sym_k + j) >> bank_bits), wr.en.eq(j < n)]
                            with m.Switch(j):
                                for k in range(n_banks):
                                    with m.Case(k):
                                        m.d.comb += wr.data.eq(syms[k])
                        m.d.sync += [seen.eq(reduce(or_, [Mux(k < n, onehot[k], 0) for k in range(n_banks)], seen)),
                                     sym_k.eq(sym_k + n)]
                        with m.If(sym_k + n == offset):
                            m.next = "READY"
                on_load()
            with m.State("READY"):
                on_load()
            with m.State("FAILED"):
                on_load()

        table_ready = tfsm.ongoing("READY")
        loading = tfsm.ongoing("HEADER") | tfsm.ongoing("COUNTS") | tfsm.ongoing("SYMBOLS")

        # --- decode -------------------------------------------------------------------------
        # A step decodes up to ``per_step`` codes (two when two codes always fit in a word:
        # model.codecs.huffman.codes_per_step), the second from the bits after the first;
        # ``two``: this step takes two (more than one symbol remains).
        per_step = codes_per_step(ml)
        active = Signal()            # symbols remain to be decoded
        left = Signal.like(self.count)
        words_left = Signal.like(self.n_words)
        buf = Signal(WORD_BITS)      # undecoded bits, first bit at 0; zero above nbits
        nbits = Signal(range(WORD_BITS + 1))
        out_n = Signal(range(per_step + 1))   # decoded symbols in the memory's read data, not yet delivered
        out_sel = Signal()                    # the next of them is read port 1's
        two_taken = Signal()                  # both symbols of a step go this cycle
        m.d.comb += two_taken.eq((out_n == 2) & self.symbols.ready & self.take_two)
        out_free = (out_n == 0) | ((out_n == 1) & self.symbols.ready) | two_taken   # empty after this cycle
        two = Signal()
        m.d.comb += two.eq((left >= 2) if per_step == 2 else 0)

        def decode(window, name):
            """Code length (0 = no code matches) and table address of the code at ``window[0]``."""
            rev = Signal(ml, name=f"{name}_rev")
            m.d.comb += rev.eq(window[:ml][::-1])   # first stream bit = most significant code bit
            match = [Signal(name=f"{name}_match{i + 1}") for i in range(ml)]
            m.d.comb += [match[i].eq(rev < limits[i]) for i in range(ml)]
            edge = [match[0]] + [match[i] & ~match[i - 1] for i in range(1, ml)]
            n = Signal(range(ml + 1), name=f"{name}_len")
            addr = Signal(sb, name=f"{name}_addr")
            m.d.comb += [
                n.eq(reduce(or_, [Mux(edge[i], i + 1, 0) for i in range(ml)])),
                addr.eq(reduce(or_, [Mux(edge[i], (rev[ml - 1 - i:] + bases[i])[:sb], 0)
                                     for i in range(ml)])),
            ]
            return n, addr

        # From the buffer alone.  Whether a code of at most nbits bits matches
        # depends only on real bits, never on the zeros above them.
        len_a, addr_a = decode(buf, "a")
        a_ok = (len_a != 0) & (len_a <= nbits)
        # Only a one-symbol table can fail to match; its verdict needs one real bit.
        a_invalid = (len_a == 0) & (nbits != 0)
        if per_step == 2:
            rest = Signal.like(nbits)           # real bits after the first code
            m.d.comb += rest.eq(nbits - len_a)
            len_a2, addr_a2 = decode(buf >> len_a, "a2")
            a2_ok = (len_a2 != 0) & (len_a2 <= rest)
            a2_invalid = (len_a2 == 0) & (rest != 0)
        else:
            len_a2, addr_a2, a2_ok, a2_invalid = Const(0), Const(0), Const(0), Const(0)
        buf_fire = a_ok & (~two | a2_ok)        # every code of the step is in the buffer
        buf_bad = a_invalid | (a_ok & two & a2_invalid)
        need_word = ~buf_fire & ~buf_bad
        # From the buffer and the offered word, when a word is needed: nbits is then below
        # per_step * max_len <= 32, and the merged bits always hold the step's codes.
        shift = nbits[:max(1, (per_step * ml - 1).bit_length())]
        merged = Signal(WORD_BITS + per_step * ml - 1)
        m.d.comb += merged.eq(buf | (self.words.payload << shift))
        len_b, addr_b = decode(merged, "b")
        if per_step == 2:
            len_b2, addr_b2 = decode(merged >> len_b, "b2")
        else:
            len_b2, addr_b2 = Const(0), Const(0)

        step = active & (error == HuffmanStatus.NONE) & out_free & ~self.start & ~self.load
        m.d.comb += self.words.ready.eq(step & need_word & (words_left != 0))
        take = self.words.valid & self.words.ready
        truncated = step & need_word & (words_left == 0)
        # The step decodes from the buffer alone: all its codes are there, or it finds an invalid
        # one, or the words ran out (then the first code, if the buffer holds it, is delivered).
        from_buf = (step & ~need_word) | truncated
        # Codes the step delivers (first, second) and whether it finds an invalid code.
        first_ok = Mux(from_buf, a_ok, take & (len_b != 0))
        second_ok = first_ok & two & Mux(from_buf, a2_ok, len_b2 != 0)
        bad_code = Mux(from_buf, buf_bad & ~truncated, take & ((len_b == 0) | (two & (len_b2 == 0))))
        n_fire = Signal(range(per_step + 1))
        m.d.comb += n_fire.eq(Mux(first_ok, 1 + second_ok, 0))
        len0 = Mux(from_buf, len_a, len_b)
        len1 = Mux(from_buf, len_a2, len_b2)
        n_used = Signal(range(per_step * ml + 1))
        m.d.comb += n_used.eq(Mux(first_ok, len0, 0) + Mux(second_ok, len1, 0))
        fire = n_fire != 0

        # A read port per code of a step, each reading every bank; the address's bank bits, kept with
        # the read, pick the bank's data.
        read_ports = []
        for i, addr in enumerate([Mux(from_buf, addr_a, addr_b)]
                                 + ([Mux(from_buf, addr_a2, addr_b2)] if per_step == 2 else [])):
            at = Signal(sb, name=f"read{i}_addr")
            bank_of = Signal(bank_bits, name=f"read{i}_bank")
            data_i = Signal(sb, name=f"read{i}_data")
            ports = [bank.read_port() for bank in banks]
            m.d.comb += [at.eq(addr), *(port.addr.eq(at >> bank_bits) for port in ports),
                         *(port.en.eq(out_free) for port in ports)]
            with m.Switch(bank_of):
                for b, port in enumerate(ports):
                    with m.Case(b):
                        m.d.comb += data_i.eq(port.data)
            with m.If(out_free):
                m.d.sync += bank_of.eq(at[:bank_bits])
            read_ports.append(data_i)
        m.d.comb += [
            self.symbols.valid.eq(out_n != 0),
            self.symbols.payload.eq(read_ports[-1] if per_step == 1 else Mux(out_sel, read_ports[1], read_ports[0])),
        ]
        with m.If(self.symbols.valid & self.symbols.ready):
            m.d.sync += [out_n.eq(out_n - 1 - two_taken), out_sel.eq(1)]
        with m.If(out_free):
            m.d.sync += [out_n.eq(n_fire), out_sel.eq(0)]

        with m.If(from_buf & fire):
            m.d.sync += [buf.eq(buf >> n_used), nbits.eq(nbits - n_used)]
        with m.If(take):
            m.d.sync += [words_left.eq(words_left - 1), buf.eq(merged >> n_used),
                         nbits.eq(nbits + WORD_BITS - n_used)]
        with m.If(fire):
            m.d.sync += left.eq(left - n_fire)
            with m.If(left == n_fire):
                # Done: the rest of the last word is padding.
                m.d.sync += [active.eq(0), buf.eq(0), nbits.eq(0)]
        with m.If(step & bad_code):
            m.d.sync += [error.eq(HuffmanStatus.INVALID_CODE), active.eq(0)]
        with m.If(truncated):
            m.d.sync += [error.eq(HuffmanStatus.TRUNCATED), active.eq(0)]

        with m.If(self.load):
            m.d.sync += active.eq(0)
        with m.Elif(self.start):
            with m.If(table_ready):
                m.d.sync += [error.eq(HuffmanStatus.NONE), active.eq(self.count != 0), left.eq(self.count),
                             words_left.eq(self.n_words), buf.eq(0), nbits.eq(0)]
            with m.Elif(~tfsm.ongoing("FAILED") & ~failing):   # a table error found now wins
                m.d.sync += [error.eq(HuffmanStatus.NO_TABLE), active.eq(0)]

        m.d.comb += [
            self.table_ok.eq(table_ready),
            self.busy.eq(loading | active | (out_n != 0)),
            self.events.symbol.eq(Mux(self.symbols.valid & self.symbols.ready, 1 + two_taken, 0)),
            self.pair.eq(out_n == 2),
            self.second.eq(read_ports[-1]),
            self.events.bits.eq(n_used),
            self.events.decode.eq(fire | (step & bad_code) | truncated),
        ]
        return m
