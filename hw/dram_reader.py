"""DRAM reader: one command reads a block of consecutive words, with requests pipelined."""
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import COUNT_BITS, DramReadSignature
from model.contract.layout import WORD_BITS


def read_command(addr_width: int) -> data.StructLayout:
    """A read of ``rows * row_words`` words from ``addr`` (two counts, as descriptors give them)."""
    return data.StructLayout({"addr": addr_width, "rows": COUNT_BITS, "row_words": COUNT_BITS})


def walk_block(m: Module, cmd, step):
    """The addresses of a read command, one per cycle in which ``step`` is high.

    Takes ``cmd`` (a :func:`read_command` stream) while no block is being
    walked.  Returns the current address and whether a block is being walked
    (``active``); a command with ``rows`` or ``row_words`` zero walks nothing.
    """
    addr = Signal.like(cmd.payload.addr)
    rows_left = Signal(COUNT_BITS)
    words_left = Signal(COUNT_BITS)
    row_words = Signal(COUNT_BITS)
    active = Signal()
    m.d.comb += cmd.ready.eq(~active)
    with m.If(cmd.valid & ~active):
        c = cmd.payload
        m.d.sync += [addr.eq(c.addr), rows_left.eq(c.rows), words_left.eq(c.row_words),
                     row_words.eq(c.row_words), active.eq((c.rows != 0) & (c.row_words != 0))]
    with m.If(step):
        m.d.sync += [addr.eq(addr + 1), words_left.eq(words_left - 1)]
        with m.If(words_left == 1):
            m.d.sync += [rows_left.eq(rows_left - 1), words_left.eq(row_words)]
            with m.If(rows_left == 1):
                m.d.sync += active.eq(0)
    return addr, active


class DramReader(wiring.Component):
    """Reads ``rows * row_words`` consecutive DRAM words with requests pipelined.

    Requests are issued one per cycle while fewer than ``depth`` words are in
    flight or buffered, so the response FIFO can never overflow and the DRAM's
    latency is hidden as long as ``depth`` exceeds it.

    Parameters
    ----------
    addr_width : int
        DRAM word-address width.
    depth : int
        Response FIFO depth, and the bound on requests in flight.

    Members
    -------
    cmd : In(stream.Signature(read_command(addr_width)))
        Start address and length (``rows`` x ``row_words``; either zero reads nothing).
    dram : Out(DramReadSignature(addr_width))
        The DRAM read port.
    data : Out(stream.Signature(32))
        The words read, in order.
    idle : Out(1)
        No command in progress and no word in flight or buffered.
    """

    def __init__(self, addr_width: int, depth: int = 16):
        self._depth = depth
        super().__init__({
            "cmd": In(stream.Signature(read_command(addr_width))),
            "dram": Out(DramReadSignature(addr_width)),
            "data": Out(stream.Signature(unsigned(WORD_BITS))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=WORD_BITS, depth=self._depth)

        pending = Signal(range(self._depth + 1))  # issued and not yet popped from the FIFO
        issue = Signal()
        addr, active = walk_block(m, self.cmd, issue)
        m.d.comb += [
            self.dram.req.valid.eq(active & (pending < self._depth)),
            self.dram.req.payload.eq(addr),
            issue.eq(self.dram.req.valid & self.dram.req.ready),
        ]

        m.d.comb += [
            buf.w_data.eq(self.dram.resp.payload),
            buf.w_en.eq(self.dram.resp.valid),
            self.dram.resp.ready.eq(buf.w_rdy),
            self.data.payload.eq(buf.r_data),
            self.data.valid.eq(buf.r_rdy),
            buf.r_en.eq(self.data.ready),
        ]
        pop = self.data.valid & self.data.ready
        m.d.sync += pending.eq(pending + issue - pop)
        m.d.comb += self.idle.eq(~active & (pending == 0))
        return m
