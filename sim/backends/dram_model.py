"""The simulated DRAM the engine runs against: a memory with pipelined reads and random stalls, holding the
program image from elaboration (Amaranth simulator) or from a file at run time (compiled simulators)."""
from pathlib import Path

from amaranth.hdl import Array, ClockSignal, Instance, Module, Signal, unsigned
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import DramReadSignature, dram_write_signature
from model.contract.layout import WORD_BITS
from sim.backends.readmem import PLUSARG_PATH_CHARS

#: Galois LFSR taps (x^32 + x^22 + x^2 + x + 1), for the random stalls.
LFSR_TAPS = 0x80200003
#: Stall probability is ``stall / 2**STALL_BITS``.
STALL_BITS = 8
#: Read port (1), response queue (1) and response register (1).
MIN_LATENCY = 3
#: Longest read latency the model's delay line holds (the ``latency`` port's range).
MAX_LATENCY = 32
#: Bits of the stall LFSR and of its seed.
SEED_BITS = 32
#: Verilog module standing in for the memory when the contents are loaded at run time (``image=None``).
STORAGE_MODULE = "vqe_dram_storage"
#: Its source, added to the design's Verilog by `sim.backends.top`.
STORAGE_VERILOG = Path(__file__).with_name("verilog") / f"{STORAGE_MODULE}.v"


def check_timing(latency: int, stall: int, seed: int) -> None:
    """Refuse DRAM timing the model cannot produce (``ValueError`` naming the knob and its range)."""
    if not MIN_LATENCY <= latency <= MAX_LATENCY:
        raise ValueError(f"DRAM latency must be {MIN_LATENCY}..{MAX_LATENCY} cycles, got {latency}")
    if not 0 <= stall < 1 << STALL_BITS:
        raise ValueError(f"stall must be 0..{(1 << STALL_BITS) - 1}, got {stall}")
    if not 0 <= seed < 1 << SEED_BITS:
        raise ValueError(f"seed must be 0..{(1 << SEED_BITS) - 1}, got {seed}")


class DramModel(wiring.Component):
    """Simulated DRAM: a memory holding the program image.

    Reads are pipelined: one request per cycle, each answered ``latency``
    cycles later, in order.  With ``stall`` > 0 a free-running LFSR randomly
    withholds ``ready`` on requests and writes and delays responses, so the
    engine sees irregular valid/ready timing without any testbench activity.

    The timing is set by input ports, so one build of a compiled simulation
    serves every latency, stall rate and seed; their initial values are the
    constructor's, which is what they keep when nothing drives them (the
    Amaranth simulator).  The LFSR takes ``seed`` in its first cycle.

    Parameters
    ----------
    image : list of int or None
        Initial contents, 32-bit words from address 0, in an Amaranth memory.
        None: the storage is the Verilog module :data:`STORAGE_MODULE`
        (:data:`STORAGE_VERILOG`), loaded at run time from ``+vqe_dram=FILE``;
        only compiled simulators can run it.
    addr_width : int
        Word-address width; the memory has ``2**addr_width`` words.
    latency : int
        Cycles from an accepted request to its response when nothing stalls
        (``MIN_LATENCY`` .. ``MAX_LATENCY``): the ``latency`` port's initial value.
    stall : int
        Stall probability in 1/256ths on each of the three handshakes (the ``stall`` port's).
    seed : int
        LFSR seed; 0 is taken as 1 (the ``seed`` port's).

    Members
    -------
    rd : In(DramReadSignature(addr_width))
    wr : In(dram_write_signature(addr_width))
    dbg_addr : In(addr_width)
    dbg_data : Out(32)
        Word at last cycle's ``dbg_addr``, for reading results back.
    latency : In(range(MAX_LATENCY + 1))
    stall : In(STALL_BITS)
    seed : In(SEED_BITS)
        DRAM timing; hold them steady while the engine runs.
    """

    def __init__(self, image, addr_width: int, latency: int = 10, stall: int = 0, seed: int = 1):
        """Check the timing and that ``image`` fits; the memory is built in `elaborate`."""
        check_timing(latency, stall, seed)
        if image is not None and len(image) > 1 << addr_width:
            raise ValueError(f"image of {len(image)} words does not fit {addr_width} address bits")
        self._image = None if image is None else [int(w) for w in image]
        self._aw = addr_width
        super().__init__({
            "rd": In(DramReadSignature(addr_width)),
            "wr": In(dram_write_signature(addr_width)),
            "dbg_addr": In(addr_width),
            "dbg_data": Out(WORD_BITS),
            "latency": In(range(MAX_LATENCY + 1), init=latency),
            "stall": In(STALL_BITS, init=stall),
            "seed": In(SEED_BITS, init=seed),
        })

    def _storage(self, m: Module):
        """The word storage's ports: (read, write, debug) as (addr, data[, en]) signals."""
        if self._image is not None:
            m.submodules.mem = mem = memory.Memory(shape=unsigned(WORD_BITS), depth=1 << self._aw,
                                                   init=self._image)
            rd, wr, dbg = mem.read_port(), mem.write_port(), mem.read_port()
            m.d.comb += rd.en.eq(1)
            return (rd.addr, rd.data), (wr.addr, wr.data, wr.en), (dbg.addr, dbg.data)
        rd = (Signal(self._aw, name="rd_addr"), Signal(WORD_BITS, name="rd_data"))
        wr = (Signal(self._aw, name="wr_addr"), Signal(WORD_BITS, name="wr_data"), Signal(name="wr_en"))
        dbg = (Signal(self._aw, name="dbg_addr_s"), Signal(WORD_BITS, name="dbg_data_s"))
        m.submodules.mem = Instance(STORAGE_MODULE, p_AW=self._aw, p_PATH_CHARS=PLUSARG_PATH_CHARS,
                                    i_clk=ClockSignal(),
                                    i_rd_addr=rd[0], o_rd_data=rd[1], i_dbg_addr=dbg[0], o_dbg_data=dbg[1],
                                    i_wr_en=wr[2], i_wr_addr=wr[0], i_wr_data=wr[1])
        return rd, wr, dbg

    def elaborate(self, platform):
        """The memory, its read pipeline and the stall LFSR."""
        m = Module()
        rd, wr, dbg = self._storage(m)
        m.d.comb += [dbg[0].eq(self.dbg_addr), self.dbg_data.eq(dbg[1])]

        lfsr = Signal(SEED_BITS, init=1)
        seeded = Signal()
        with m.If(seeded):
            m.d.sync += lfsr.eq((lfsr >> 1) ^ (LFSR_TAPS * lfsr[0]))
        with m.Else():
            m.d.sync += [lfsr.eq(self.seed | (self.seed == 0)), seeded.eq(1)]
        stall = [Signal(name=f"stall_{n}") for n in ("req", "resp", "wr")]
        for i, s in enumerate(stall):
            m.d.comb += s.eq(seeded & (lfsr[i * STALL_BITS:(i + 1) * STALL_BITS] < self.stall))

        # Requests in flight are bounded so the response queue never overflows.
        capacity = MAX_LATENCY + 2
        m.submodules.queue = queue = fifo.SyncFIFO(width=WORD_BITS, depth=capacity)
        in_flight = Signal(range(capacity + 2))
        accept = Signal()
        m.d.comb += [
            self.rd.req.ready.eq((in_flight + queue.level < self.latency + 2) & ~stall[0]),
            accept.eq(self.rd.req.valid & self.rd.req.ready),
            rd[0].eq(self.rd.req.payload),
        ]
        # The read port, the queue and the response register give three cycles of
        # latency; a delay line, tapped at the run-time latency, gives the rest.
        stages = MAX_LATENCY - MIN_LATENCY + 1
        valid_line = [accept] + [Signal(name=f"valid_d{i}") for i in range(1, stages + 1)]
        data_line = [rd[1]] + [Signal(WORD_BITS, name=f"data_d{i}") for i in range(2, stages + 1)]
        for a, b in zip(valid_line, valid_line[1:]):
            m.d.sync += b.eq(a)
        for a, b in zip(data_line, data_line[1:]):
            m.d.sync += b.eq(a)
        tap = Signal(range(stages + 1))
        m.d.comb += tap.eq(self.latency - MIN_LATENCY)
        arrive = Array(valid_line[1:])[tap]
        m.d.comb += [queue.w_en.eq(arrive), queue.w_data.eq(Array(data_line)[tap])]
        m.d.sync += in_flight.eq(in_flight + accept - arrive)

        # Once offered, a response stays offered until taken.
        with m.If((~self.rd.resp.valid | self.rd.resp.ready)):
            m.d.comb += queue.r_en.eq(~stall[1])
            m.d.sync += [self.rd.resp.valid.eq(queue.r_rdy & ~stall[1]),
                         self.rd.resp.payload.eq(queue.r_data)]

        m.d.comb += [
            self.wr.ready.eq(~stall[2]),
            wr[0].eq(self.wr.payload.addr), wr[1].eq(self.wr.payload.data),
            wr[2].eq(self.wr.valid & self.wr.ready),
        ]
        return m
