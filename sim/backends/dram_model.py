"""The simulated DRAM the engine runs against: a preloaded memory with pipelined reads and random stalls."""
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import DramReadSignature, dram_write_signature
from model.contract.layout import WORD_BITS

#: Galois LFSR taps (x^32 + x^22 + x^2 + x + 1), for the random stalls.
LFSR_TAPS = 0x80200003
#: Stall probability is ``stall / 2**STALL_BITS``.
STALL_BITS = 8
#: Read port (1), response queue (1) and response register (1).
MIN_LATENCY = 3


class DramModel(wiring.Component):
    """Simulated DRAM: a memory preloaded with the program image.

    Reads are pipelined: one request per cycle, each answered ``latency``
    cycles later, in order.  With ``stall`` > 0 a free-running LFSR randomly
    withholds ``ready`` on requests and writes and delays responses, so the
    engine sees irregular valid/ready timing without any testbench activity.

    Parameters
    ----------
    image : list of int
        Initial contents, 32-bit words from address 0.
    addr_width : int
        Word-address width; the memory has ``2**addr_width`` words.
    latency : int
        Cycles from an accepted request to its response when nothing stalls
        (at least ``MIN_LATENCY``).
    stall : int
        Stall probability in 1/256ths on each of the three handshakes.
    seed : int
        LFSR seed (non-zero).

    Members
    -------
    rd : In(DramReadSignature(addr_width))
    wr : In(dram_write_signature(addr_width))
    dbg_addr : In(addr_width)
    dbg_data : Out(32)
        Word at last cycle's ``dbg_addr``, for reading results back.
    """

    def __init__(self, image, addr_width: int, latency: int = 10, stall: int = 0, seed: int = 1):
        """Check the timing and that ``image`` fits; the memory is built in `elaborate`."""
        if latency < MIN_LATENCY:
            raise ValueError(f"DRAM latency must be at least {MIN_LATENCY} cycles, got {latency}")
        if len(image) > 1 << addr_width:
            raise ValueError(f"image of {len(image)} words does not fit {addr_width} address bits")
        if not 0 <= stall < 1 << STALL_BITS:
            raise ValueError(f"stall must be 0..{(1 << STALL_BITS) - 1}")
        self._image = [int(w) for w in image]
        self._aw, self._latency, self._stall, self._seed = addr_width, latency, stall, seed or 1
        super().__init__({
            "rd": In(DramReadSignature(addr_width)),
            "wr": In(dram_write_signature(addr_width)),
            "dbg_addr": In(addr_width),
            "dbg_data": Out(WORD_BITS),
        })

    def elaborate(self, platform):
        """The memory, its read pipeline and the stall LFSR."""
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=unsigned(WORD_BITS), depth=1 << self._aw,
                                               init=self._image)
        rd, wr, dbg = mem.read_port(), mem.write_port(), mem.read_port()
        m.d.comb += [dbg.addr.eq(self.dbg_addr), self.dbg_data.eq(dbg.data)]

        lfsr = Signal(32, init=self._seed)
        m.d.sync += lfsr.eq((lfsr >> 1) ^ (LFSR_TAPS * lfsr[0]))
        stall = [Signal(name=f"stall_{n}") for n in ("req", "resp", "wr")]
        for i, s in enumerate(stall):
            m.d.comb += s.eq(lfsr[i * STALL_BITS:(i + 1) * STALL_BITS] < self._stall)

        # Requests in flight are bounded so the response queue never overflows.
        capacity = self._latency + 2
        m.submodules.queue = queue = fifo.SyncFIFO(width=WORD_BITS, depth=capacity)
        in_flight = Signal(range(capacity + 2))
        accept = Signal()
        m.d.comb += [
            self.rd.req.ready.eq((in_flight + queue.level < capacity) & ~stall[0]),
            accept.eq(self.rd.req.valid & self.rd.req.ready),
            rd.addr.eq(self.rd.req.payload), rd.en.eq(1),
        ]
        # The read port, the queue and the response register give three cycles of
        # latency; a delay line gives the rest.
        stages = self._latency - MIN_LATENCY + 1
        valid_line = [accept] + [Signal(name=f"valid_d{i}") for i in range(1, stages + 1)]
        data_line = [rd.data] + [Signal(WORD_BITS, name=f"data_d{i}") for i in range(2, stages + 1)]
        for a, b in zip(valid_line, valid_line[1:]):
            m.d.sync += b.eq(a)
        for a, b in zip(data_line, data_line[1:]):
            m.d.sync += b.eq(a)
        arrive = valid_line[-1]
        m.d.comb += [queue.w_en.eq(arrive), queue.w_data.eq(data_line[-1])]
        m.d.sync += in_flight.eq(in_flight + accept - arrive)

        # Once offered, a response stays offered until taken.
        with m.If((~self.rd.resp.valid | self.rd.resp.ready)):
            m.d.comb += queue.r_en.eq(~stall[1])
            m.d.sync += [self.rd.resp.valid.eq(queue.r_rdy & ~stall[1]),
                         self.rd.resp.payload.eq(queue.r_data)]

        m.d.comb += [
            self.wr.ready.eq(~stall[2]),
            wr.addr.eq(self.wr.payload.addr), wr.data.eq(self.wr.payload.data),
            wr.en.eq(self.wr.valid & self.wr.ready),
        ]
        return m
