"""The simulation top: the engine with a DRAM model holding the program image.

A whole job runs inside the simulated design; a testbench only pulses
``start``, waits for ``done`` and reads the results back through ``dbg``.

Three forms.  For the Amaranth simulator (`SimTop` with an image) the image is
the DRAM memory's initial contents.  For the compiled simulators
(`compiled_top_verilog`) the DRAM is a blank :data:`COMPILED_ADDR_BITS`-bit
memory loaded at run time from ``+vqe_dram=FILE``, the codebook ROM is loaded
from ``+vqe_rom=FILE`` (`rom_at_run_time`, `rom_hex`), and the DRAM timing comes
in through ports, so the Verilog depends on the engine's shape alone: one build
serves every program, input set, latency and stall rate.  The cocotb
testbenches run `SimTop` so; the Verilator harness runs `HarnessTop`, the same
with its reset made inside and its inputs registered.
"""
import functools
import re
from dataclasses import replace

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.engine import Engine
from hw.layouts import control_members
from model.contract.config import EngineConfig
from model.contract.layout import WORD_BITS
from sim.backends.dram_model import MAX_LATENCY, SEED_BITS, STALL_BITS, STORAGE_VERILOG, DramModel
from sim.backends.readmem import PLUSARG_PATH_CHARS

TOP_NAME = "vqe_sim_top"
#: DRAM word-address bits of the compiled simulations: 4 Mi words (16 MiB) hold a job of 10,000
#: LeNet-300-100 images (about 2 Mi words); `sim.shards` splits larger jobs.
COMPILED_ADDR_BITS = 22

# yosys makes every combinational ``always @*`` block sensitive to a dummy register
# initialised in its declaration, so that it runs at time zero; Icarus applies that
# initialisation before the blocks wait, so a block whose inputs never change (a PVQ
# unit idle from reset) is never evaluated and its outputs stay x.  One more event on
# each dummy, after time zero's processes have started, evaluates them all.
_DUMMY = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def settle_at_time_zero(text: str) -> str:
    """Verilog with every combinational block evaluated once at time zero, in any simulator."""
    return _DUMMY.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #0 {m.group(2)}= 1'h1;", text)


def dram_addr_width(image_words: int) -> int:
    """DRAM word-address width that holds ``image_words`` words (at least 4 bits)."""
    return max(4, (image_words - 1).bit_length())


class SimTop(wiring.Component):
    """Engine plus :class:`sim.backends.dram_model.DramModel`.

    Parameters
    ----------
    config : EngineConfig
    image : sequence of int or None
        The DRAM image (program, inputs, output space); None for a blank
        DRAM of ``2**COMPILED_ADDR_BITS`` words loaded at run time (compiled simulators only).
    latency, stall, seed :
        DRAM model timing (see :class:`DramModel`): the initial values of the timing ports.

    Members
    -------
    start : In(1)
    busy, done : Out(1)
    error : Out(4)
    counters : Out(CounterLayout)
    phase : Out(PHASE_BITS)
    dbg_addr : In(addr_width)
    dbg_data : Out(32)
    dram_latency : In(range(MAX_LATENCY + 1))
    dram_stall : In(STALL_BITS)
    dram_seed : In(SEED_BITS)
        The DRAM model's timing; a testbench sets them before ``start``.
    """

    def __init__(self, config: EngineConfig, image, latency: int = 10, stall: int = 0, seed: int = 1):
        """The ports; the engine and the DRAM model are built in `elaborate`."""
        self.config = config
        self.addr_width = COMPILED_ADDR_BITS if image is None else dram_addr_width(len(image))
        self._image, self._latency, self._stall, self._seed = image, latency, stall, seed
        super().__init__({
            **control_members(),   # the engine's start, busy, done, error and counters
            "dbg_addr": In(self.addr_width), "dbg_data": Out(WORD_BITS),
            "dram_latency": In(range(MAX_LATENCY + 1), init=latency), "dram_stall": In(STALL_BITS, init=stall),
            "dram_seed": In(SEED_BITS, init=seed),
        })

    def elaborate(self, platform):
        """The engine wired to the DRAM model; the top's ports are theirs."""
        m = Module()
        m.submodules.engine = engine = Engine(self.config, addr_width=self.addr_width)
        m.submodules.dram = dram = DramModel(self._image, self.addr_width, self._latency,
                                             self._stall, self._seed)
        wiring.connect(m, engine.dram_rd, dram.rd)
        wiring.connect(m, engine.dram_wr, dram.wr)
        m.d.comb += [
            engine.start.eq(self.start), self.busy.eq(engine.busy), self.done.eq(engine.done),
            self.error.eq(engine.error), self.counters.eq(engine.counters), self.phase.eq(engine.phase),
            dram.dbg_addr.eq(self.dbg_addr), self.dbg_data.eq(dram.dbg_data),
            dram.latency.eq(self.dram_latency), dram.stall.eq(self.dram_stall), dram.seed.eq(self.dram_seed),
        ]
        return m


#: Cycles the compiled harness's top holds its design in reset after power-on.
POWER_ON_RESET_CYCLES = 2
#: The top's inputs the harness's top registers.
_REGISTERED_INPUTS = ("start", "dbg_addr", "dram_latency", "dram_stall", "dram_seed")


class HarnessTop(wiring.Component):
    """The top the compiled Verilator harness clocks: `SimTop` (blank DRAM) with no input feeding logic.

    Verilator re-evaluates all logic fed by a top-level input at every evaluation, and
    Amaranth's synchronous reset makes every register's next-state logic depend on ``rst``:
    profiled on LeNet-300-100, that input logic took about half of the simulation time.  So this
    top has no ``rst`` port (a power-on counter holds the design in reset for
    `POWER_ON_RESET_CYCLES` cycles: the harness builds a fresh model for each job) and registers
    its other inputs, which the harness sets a cycle ahead.  The engine and its counters are
    unchanged; ``start`` reaches the engine one cycle after the harness raises it.

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    clk : In(1)
        The clock (the design's only clock domain, whose reset is the power-on counter).
    The members of `SimTop`.
    """

    def __init__(self, config: EngineConfig):
        self._inner = SimTop(config, None)
        super().__init__({"clk": In(1), **self._inner.signature.members})

    def elaborate(self, platform):
        """The power-on reset, the input registers and `SimTop`."""
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        m.d.comb += sync.clk.eq(self.clk)
        por = Signal(range(POWER_ON_RESET_CYCLES + 1), reset_less=True)
        with m.If(por != POWER_ON_RESET_CYCLES):
            m.d.sync += por.eq(por + 1)
        m.d.comb += sync.rst.eq(por != POWER_ON_RESET_CYCLES)
        m.submodules.top = inner = self._inner
        for name, member in self._inner.signature.members.items():
            outer, port = getattr(self, name), getattr(inner, name)
            if name in _REGISTERED_INPUTS:
                held = Signal.like(outer, name=f"{name}_q", reset_less=True)
                m.d.sync += held.eq(outer)
                m.d.comb += port.eq(held)
            elif member.flow == wiring.In:
                m.d.comb += port.eq(outer)
            else:
                m.d.comb += outer.eq(port)
        return m


#: The codebook ROM's contents as Amaranth writes them (`hw.memories.CodebookRom`): its declaration,
#: then one assignment per entry in an initial block.
_ROM_INIT = re.compile(r"^(?P<indent>[ \t]*)(?P<decl>reg \[\d+:0\] rom \[\d+:0\];)\n[ \t]*initial begin\n"
                       r"(?:[ \t]*rom\[\d+\] = [^;\n]*;\n)*[ \t]*end\n", re.M)


def rom_at_run_time(text: str, has_rom: bool, copies: int = 1) -> str:
    """Verilog whose codebook ROM is loaded at run time from ``+vqe_rom=FILE`` (``$readmemh``), not built in.

    ``copies``: ROMs in the engine, one per processing element (``EngineConfig.pes``), each loaded so.

    Raises
    ------
    ValueError
        If the ROM's initial block is not found exactly ``copies`` times in an engine that has a ROM (a
        change in how Amaranth writes memories): a build would otherwise keep one program's codebook.
    """
    found = len(_ROM_INIT.findall(text))
    if found != int(has_rom) * copies:
        raise ValueError(f"expected {int(has_rom) * copies} codebook-ROM initialisation in the engine's Verilog, "
                         f"found {found}")
    path = f"reg [8*{PLUSARG_PATH_CHARS}-1:0] rom_path;"
    return _ROM_INIT.sub(lambda m: f"{m['indent']}{m['decl']}\n{m['indent']}{path}\n"
                                   f"{m['indent']}initial if ($value$plusargs(\"vqe_rom=%s\", rom_path)) "
                                   f"$readmemh(rom_path, rom);\n", text)


def placeholder_rom(config: EngineConfig) -> EngineConfig:
    """``config`` with its ROM's contents replaced by placeholders, keeping its size.

    What `compiled_top_verilog` elaborates, so the Verilog does not depend on the codewords.  Entry
    ``i`` holds ``i``'s 7-bit digits: distinct, so no synthesis pass folds the ROM into constants.
    """
    rom = tuple(tuple((i >> (7 * lane)) & 0x7F for lane in range(config.lanes)) for i in range(len(config.rom)))
    return replace(config, rom=rom)


def rom_hex(config: EngineConfig) -> str:
    """The codebook ROM's entries as the ``$readmemh`` file ``+vqe_rom`` loads.

    One lane-word per line in hex, entry 0 first (`hw.memories.pack_lane_word`).
    """
    from hw.memories import pack_lane_word
    digits = 2 * config.lanes   # two hex digits per int8 lane
    return "".join(f"{pack_lane_word(cw, config.lanes):0{digits}x}\n" for cw in config.rom)


def compiled_top_verilog(config: EngineConfig, harness: bool = False) -> str:
    """Verilog of the simulation top for the compiled simulators.

    A blank DRAM (`SimTop` with ``image=None``, the storage module's source included) and a codebook
    ROM, both loaded at run time (``+vqe_dram=FILE``, ``+vqe_rom=FILE`` with `rom_hex`).  The text
    depends on the engine's parameters and ROM size only, so one build serves every program of that
    shape (and this process elaborates each shape once).  ``harness``: the Verilator harness's top
    (`HarnessTop`), else the cocotb testbenches' (`SimTop`).
    """
    return _compiled_top_text(placeholder_rom(config), harness)


@functools.lru_cache(maxsize=16)
def _compiled_top_text(shaped: EngineConfig, harness: bool) -> str:
    """`compiled_top_verilog` of an engine whose ROM holds placeholders (elaborating takes seconds)."""
    top = HarnessTop(shaped) if harness else SimTop(shaped, None)
    text = verilog.convert(top, name=TOP_NAME, emit_src=False)
    return (rom_at_run_time(settle_at_time_zero(text), bool(shaped.rom), shaped.pes) + "\n"
            + STORAGE_VERILOG.read_text())


def engine_verilog(config: EngineConfig, addr_width: int = 24, name: str = "vqe_engine",
                   simulation: bool = True) -> str:
    """The engine's Verilog; ``simulation=False`` leaves out the time-zero events (for synthesis)."""
    text = verilog.convert(Engine(config, addr_width=addr_width), name=name, emit_src=False)
    return settle_at_time_zero(text) if simulation else text
