"""The verification campaign (`vqe verify`): a subset of it, the DRAM bound it found missing, and the replay
of a saved case."""
from __future__ import annotations

import json
import shlex

import pytest

from model.contract.descriptor import Descriptor
from model.contract.errors import EngineError, EngineFault
from model.contract.layout import DESC_WORDS, DRAM_WORDS_WORD
from model.golden.engine import GoldenEngine
from sim.cli.main import main
from sim.simulate import simulate
from sim.verify.campaign import Case, draw, plan, run_campaign, save_failure
from sim.verify.families import BY_NAME, FAMILIES


def test_families_each_have_one_engine():
    from sim.backends.top import placeholder_rom
    for family in FAMILIES:
        shapes = {placeholder_rom(family.program(seed).config) for seed in range(12)}
        assert len(shapes) == 1, family.name


def test_plan_spreads_cases_over_families_in_batches():
    batches = plan(12, 7, batch=2)
    cases = [c for b in batches for c in b]
    assert len(cases) == 19 and len(set(cases)) == 19
    assert all(len({c.family for c in b}) == 1 and len(b) <= 2 for b in batches)
    assert {c.family for c in cases} == set(BY_NAME)
    with pytest.raises(ValueError, match="unknown family"):
        plan(1, 0, families=["nope"])


def test_campaign_subset(tmp_path):
    """50 random programs over every family, and 100 corrupted ones: no mismatch, no hang."""
    s = run_campaign(50, 100, seed=1000, batch=30, out_dir=tmp_path, in_process=True)
    assert s["runs"] == {"random": 50, "corrupt": 100}
    assert (s["mismatches"], s["hangs"], s["failures"]) == (0, 0, [])
    assert 0 < s["faults"]["corrupt"] < 100     # some flips are caught, others still run
    assert s["faults"]["random"] == 0
    assert s["families"] == sorted(BY_NAME)


def assert_both_stop_with_bad_stream(program, image, out_addr: int, out_words: int) -> None:
    """The golden model and the Verilator harness both stop ``image`` with ``BAD_STREAM``."""
    with pytest.raises(EngineFault) as fault:
        GoldenEngine(program.config).run(image)
    assert fault.value.code == EngineError.BAD_STREAM
    rtl = simulate(program, image, "verilator", out_addr=out_addr, out_words=out_words, max_cycles=20000,
                   latency=5, stall=0, seed=1, vcd=None)
    assert rtl["done"] and rtl["error"] == EngineError.BAD_STREAM


def test_a_stream_past_the_end_of_dram_is_bad_stream_on_both():
    """A descriptor whose stream runs past ``dram_words`` stops the job before the stream is read."""
    d = draw(Case("vq-4lanes", "random", 3))
    image, out_addr, out_words = d.program.dram_image(d.x)
    desc_at = int(image[2])
    desc = Descriptor.decode(image[desc_at:desc_at + DESC_WORDS])
    desc.stream_addr = int(image[DRAM_WORDS_WORD]) - 1    # starts inside, runs past the end
    image[desc_at:desc_at + DESC_WORDS] = desc.encode()
    assert_both_stop_with_bad_stream(d.program, image, out_addr, out_words)


@pytest.mark.parametrize("kind", ["random", "corrupt"])
def test_a_saved_case_replays_with_vqe_run(tmp_path, capsys, kind):
    case = next(Case("vq-pvq", kind, s) for s in range(100)
                if kind == "random" or draw(Case("vq-pvq", kind, s)).flips)
    path = save_failure({"case": vars(case), "reason": "(a test)"}, tmp_path)
    saved = json.loads(path.with_suffix(".json").read_text())
    argv = shlex.split(saved["replay"])
    assert argv[:2] == ["vqe", "run"] and ("--flip" in argv) == (kind == "corrupt")
    assert main(argv[1:] + ["--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out.get("bit_exact", out.get("agree")) is True


def test_the_bound_covers_descriptors_and_streams_not_the_hosts_inputs():
    """``dram_words`` below the inputs: the job still runs (the header and inputs are the host's); below
    the descriptor table: ``BAD_STREAM`` on both, checked on the header's full 32-bit address."""
    d = draw(Case("vq-4lanes", "random", 4))
    image, out_addr, out_words = d.program.dram_image(d.x)
    inputs_past = image.copy()
    inputs_past[DRAM_WORDS_WORD] = int(image[3])     # the inputs start at the bound
    golden = GoldenEngine(d.program.config).run(inputs_past)
    rtl = simulate(d.program, inputs_past, "verilator", out_addr=out_addr, out_words=out_words * len(d.x),
                   max_cycles=10 ** 6, latency=5, stall=0, seed=1, vcd=None)
    assert rtl["done"] and rtl["error"] == 0 and rtl["counters"]["cycles"] > 0
    assert golden.counters["dram_read_words"] == rtl["counters"]["dram_read_words"]
    table_past = image.copy()
    table_past[2] = 0xFFFFFFF0                         # a descriptor table far past the bound
    assert_both_stop_with_bad_stream(d.program, table_past, out_addr, out_words)
