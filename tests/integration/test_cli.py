"""The ``vqe`` command line: help, one-line errors on bad input, no overwrites, the JSON summary.

Programs are small synthetic networks built in-process (``model.program.synthetic``), so
nothing here trains or compresses the real LeNet.  The CLI runs as a subprocess
(``python -m sim.cli.main``) wherever a crash must really show as a traceback.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from model.contract.counters import COUNTERS
from model.contract.descriptor import Descriptor
from model.contract.ints import ceil_div
from model.contract.layout import DESC_WORDS, ROW_HEADER_WORDS
from model.golden.engine import GoldenEngine
from model.program.file import FORMAT_VERSION, MAGIC, Program
from model.program.synthetic import random_lowered
from model.program.writer import build_program

from cli_helpers import assert_user_error, vqe

#: The JSON summary's contract (README "vqe run --json").
CONTRACT_KEYS = ("network", "method", "backend", "images", "accuracy", "reference_accuracy", "bit_exact",
                 "mismatches", "cycles", "ideal_cycles", "utilization", "counters", "compression",
                 "sim_seconds", "sim_cycles_per_second")
COMPRESSION_KEYS = ("bits_per_weight", "ratio_vs_fp32", "bytes")

LANES = 4
DEPTH = 16
SHAPES = [10, 7, 5]            # neither 10 nor 7 is a multiple of the lanes
CODEBOOK_SIZES = [5, 3]        # below the depth, so an index can be out of range yet fit its bits
HEADER_BYTES = struct.calcsize("<4sHHIII")


def make_program(seed: int = 0, shapes=SHAPES, depth: int = DEPTH, sizes=CODEBOOK_SIZES) -> Program:
    rng = np.random.default_rng(seed)
    return build_program(random_lowered(rng, LANES, list(shapes), depth, codebook_sizes=list(sizes),
                                        name="synthetic"), codebook_depth=depth, config_max_features=64)


def descriptor(program: Program, layer: int) -> tuple[int, Descriptor]:
    addr = int(program.image[2]) + layer * DESC_WORDS
    return addr, Descriptor.decode(program.image[addr:addr + DESC_WORDS])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def program() -> Program:
    return make_program()


@pytest.fixture(scope="module")
def good(work, program) -> Path:
    path = work / "good.vqz"
    program.save(path)
    return path


# --- 1. help ----------------------------------------------------------------------------------
HELP = {
    (): ("compress", "run", "verilog", "inspect", "report", "vector quantization"),
    ("compress",): ("--network", "--method", "--output", "--force", "--lanes", "--codebook-size", "lenet300",
                    "kmeans"),
    ("run",): ("--backend", "--images", "--json", "--vcd", "--force", "--latency", "--stall", "golden",
               "amaranth", "icarus", "verilator"),
    ("verilog",): ("--program", "--output", "--force", "--name", "vqe_engine"),
    ("inspect",): ("program", "metadata"),
    ("report",): ("--output", "--energy-table", "--images", "--quick"),
}


@pytest.mark.parametrize("sub", list(HELP), ids=lambda s: " ".join(s) or "vqe")
def test_help(sub, work):
    res = vqe(*sub, "--help", cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("usage: vqe" + "".join(" " + s for s in sub)), res.stdout[:200]
    for needle in HELP[sub]:
        assert needle in res.stdout, f"vqe {' '.join(sub)} --help does not mention {needle}"


@pytest.mark.parametrize("args", [(), ("run",), ("run", "x.vqz"), ("run", "x.vqz", "--backend", "golden",
                                                                    "--images", "two"), ("frobnicate",)],
                         ids=["no-command", "run-no-file", "run-no-backend", "images-not-int", "unknown-command"])
def test_usage_errors(args, work):
    """argparse's own errors: one line, exit 2, pointing at --help, never a traceback."""
    res = vqe(*args, cwd=work)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith("vqe") and "error:" in res.stderr and "--help" in res.stderr


# --- 2. bad program files ---------------------------------------------------------------------
def patched_header(data: bytes, **fields) -> bytes:
    magic, version, reserved, meta_len, words, crc = struct.unpack_from("<4sHHIII", data)
    values = dict(magic=magic, version=version, reserved=reserved, meta_len=meta_len, words=words, crc=crc)
    values.update(fields)
    return struct.pack("<4sHHIII", *values.values()) + data[HEADER_BYTES:]


def resave(program: Program, image=None, meta=None) -> bytes:
    """The program re-serialised (valid header and CRC) with a modified image or metadata."""
    return Program(program.meta if meta is None else meta,
                   program.image if image is None else np.asarray(image, dtype=np.uint32)).to_bytes()


def bad_index(program: Program) -> bytes:
    """Layer 0, row 0, sub-vector 0 gets index == the layer's codebook size (first bad value)."""
    _, d = descriptor(program, 0)
    assert d.codebook_size == CODEBOOK_SIZES[0] < DEPTH
    img = program.image.copy()
    w = d.stream_addr + ROW_HEADER_WORDS  # indices are packed LSB-first: sub-vector 0 is the low bits
    bits = DEPTH.bit_length() - 1
    assert int(img[w]) & ((1 << bits) - 1) < d.codebook_size
    img[w] = (int(img[w]) & ~((1 << bits) - 1) & 0xFFFFFFFF) | d.codebook_size
    return resave(program, image=img)


def bad_chain(program: Program) -> bytes:
    addr, d = descriptor(program, 1)
    assert d.in_features == SHAPES[1]
    d.in_features += 1
    img = program.image.copy()
    img[addr:addr + DESC_WORDS] = d.encode()
    return resave(program, image=img)


def flip_byte(data: bytes, where: int) -> bytes:
    b = bytearray(data)
    b[where] ^= 0x5A
    return bytes(b)


def meta_edit(program: Program, **changes) -> bytes:
    meta = json.loads(json.dumps(program.meta))
    meta.update(changes)
    return resave(program, meta=meta)


BAD_FILES = {
    # name: (bytes from the good file, words the one-line message must contain)
    "truncated-body": (lambda d, p: d[:-7], ("truncated",)),
    "truncated-header": (lambda d, p: d[:HEADER_BYTES - 3], ("not a VQ Engine program",)),
    "header-only": (lambda d, p: d[:HEADER_BYTES], ("truncated",)),
    "padded": (lambda d, p: d + b"\0\0\0\0", ("padded",)),
    "crc-image-byte": (lambda d, p: flip_byte(d, len(d) - 9), ("CRC",)),
    "crc-meta-byte": (lambda d, p: flip_byte(d, HEADER_BYTES + 5), ("CRC",)),
    "version": (lambda d, p: patched_header(d, version=FORMAT_VERSION + 1),
                (f"version {FORMAT_VERSION + 1}", f"reads version {FORMAT_VERSION}")),
    "empty": (lambda d, p: b"", ("not a VQ Engine program",)),
    "random-bytes": (lambda d, p: np.random.default_rng(5).bytes(300), ("not a VQ Engine program",)),
    "random-after-magic": (lambda d, p: MAGIC + np.random.default_rng(6).bytes(300), ()),
    "text": (lambda d, p: b"this is a text file\nnot a program\n", ("not a VQ Engine program",)),
    "json-meta-broken": (lambda d, p: meta_json_broken(), ("not valid JSON",)),
    "bad-index": (lambda d, p: bad_index(p), ("BAD_INDEX", "index 5", "codebook size", "layer 0 row 0")),
    "bad-chain": (lambda d, p: bad_chain(p), ("BAD_CHAIN", "layer 1", "in_features=8")),
    "meta-output-features": (lambda d, p: meta_edit(p, output_features=9), ("disagree",)),
    "meta-layers": (lambda d, p: meta_edit(p, layers=p.meta["layers"][:1]), ("disagree",)),
    "meta-rom-not-int8": (lambda d, p: meta_edit(p, rom=[[300, 0, 0, 0]] * len(p.meta["rom"])), ("int8",)),
    "meta-missing-key": (lambda d, p: meta_edit(p, compression={}), ("metadata", "bits_per_weight")),
    "meta-lanes": (lambda d, p: meta_edit(p, engine=dict(p.meta["engine"], lanes=3)), ("lanes",)),
}


def meta_json_broken() -> bytes:
    meta = b'{"network": "x", '
    image = b"\0" * 8
    return struct.pack("<4sHHIII", MAGIC, FORMAT_VERSION, 0, len(meta), 2, zlib.crc32(meta + image)) + meta + image


@pytest.fixture(scope="module")
def bad_files(work, good, program) -> dict:
    data = good.read_bytes()
    out = {}
    for i, (name, (make, _)) in enumerate(BAD_FILES.items()):
        path = work / f"case{i:02d}.vqz"  # a neutral name: the needles must come from the message itself
        blob = make(data, program)
        assert blob != data
        path.write_bytes(blob)
        out[name] = path
    return out


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_program_run(name, bad_files, cli):
    path = bad_files[name]
    line = assert_user_error(cli("run", path, "--backend", "golden"), *BAD_FILES[name][1])
    assert path.name in line, "the message names the file"


@pytest.mark.parametrize("name", ["truncated-body", "crc-image-byte", "version", "empty", "text", "bad-index",
                                  "bad-chain", "meta-output-features"])
def test_bad_program_inspect_and_verilog(name, bad_files, work, cli):
    path = bad_files[name]
    assert_user_error(cli("inspect", path), *BAD_FILES[name][1])
    out = work / f"{path.stem}.v"
    assert_user_error(cli("verilog", "--program", path, "-o", out), *BAD_FILES[name][1])
    assert not out.exists(), "no Verilog is written for a bad program"


#: A fresh interpreter for one case of each kind, so a crash outside ``main``'s handler shows too.
#: (Only a few: every error exit imports torch, about 2.5 s of CPU each; the full matrix runs in-process.)
SUBPROCESS_CASES = {
    "truncated": lambda f, w, g: (("run", f["truncated-body"], "--backend", "golden"), ("truncated",)),
    "bad-index": lambda f, w, g: (("run", f["bad-index"], "--backend", "amaranth"), ("BAD_INDEX",)),
    "nonexistent": lambda f, w, g: (("run", w / "nope.vqz", "--backend", "golden"), ("cannot read",)),
    "backend": lambda f, w, g: (("run", g, "--backend", "foo"), ("unknown backend",)),
    "network": lambda f, w, g: (("compress", "--network", "nosuch", "--method", "kmeans", "-o", w / "x.vqz"),
                                ("unknown network 'nosuch'",)),
    "verilog-weight-sram": lambda f, w, g: (("verilog", "--weight-sram", "-1", "-o", w / "x.v"),
                                            ("--weight-sram must be 0..",)),
    "compress-weight-sram": lambda f, w, g: (("compress", "--network", "lenet300", "--method", "kmeans",
                                              "--weight-sram", "99999", "-o", w / "x.vqz"), ("--weight-sram",)),
}


@pytest.mark.parametrize("case", list(SUBPROCESS_CASES))
def test_bad_input_subprocess(case, bad_files, work, good):
    args, needles = SUBPROCESS_CASES[case](bad_files, work, good)
    assert_user_error(vqe(*args, cwd=work), *needles)


def test_bad_program_loader_in_process(program):
    """The same defects through the library: the loader names the engine's error code."""
    from model.program.file import ProgramError
    with pytest.raises(ProgramError, match="BAD_INDEX"):
        Program.from_bytes(bad_index(program))
    with pytest.raises(ProgramError, match="BAD_CHAIN"):
        Program.from_bytes(bad_chain(program))
    # and the unmodified bytes load back to the same program
    again = Program.from_bytes(program.to_bytes())
    np.testing.assert_array_equal(again.image, program.image)
    assert again.meta == program.meta


def test_unreadable_path(work, cli):
    missing = work / "does-not-exist.vqz"
    assert_user_error(cli("run", missing, "--backend", "golden"), "cannot read", str(missing))
    assert_user_error(cli("inspect", missing), "cannot read", str(missing))
    assert_user_error(cli("run", work, "--backend", "golden"), "cannot read", str(work))


@pytest.mark.parametrize("args,needles", [
    (("--backend", "foo"), ("unknown backend 'foo'", "golden", "amaranth")),
    (("--backend", "golden", "--images", "0"), ("--images",)),
    (("--backend", "golden", "--images", "-3"), ("--images",)),
    (("--backend", "golden", "--images", "70000"), ("65535",)),
    (("--backend", "golden", "--latency", "1"), ("--latency", "got 1")),
    (("--backend", "amaranth", "--latency", "1"), ("--latency", "got 1")),
    (("--backend", "golden", "--stall", "256"), ("--stall", "got 256")),
    (("--backend", "golden", "--stall", "-1"), ("--stall",)),
    (("--backend", "golden", "--latency", "33"), ("--latency", "3..32", "got 33")),
    (("--backend", "verilator", "--workers", "0"), ("--workers", "got 0")),
    (("--backend", "verilator", "--shard-images", "0"), ("--shard-images", "got 0")),
    (("--backend", "verilator", "--flip", "1:3"), ("--flip", "job header")),
    (("--backend", "verilator", "--flip", "9"), ("--flip takes WORD:BIT",)),
    (("--backend", "golden", "--flip", "9:1"), ("--flip", "RTL backend")),
    (("--backend", "verilator", "--flip", "9:1", "--workers", "2"), ("--flip", "--workers")),
], ids=["backend", "images0", "images-neg", "images-too-many", "latency-golden", "latency-amaranth", "stall-256",
        "stall-neg", "latency-33", "workers0", "shard-images0", "flip-header", "flip-format", "flip-golden",
        "flip-sharded"])
def test_bad_run_options(args, needles, good, cli):
    assert_user_error(cli("run", good, *args), *needles)


def test_bad_verify_options(cli):
    assert_user_error(cli("verify", "--random", "1", "--corrupt", "0", "--families", "nope"),
                      "unknown family nope", "vq-4lanes")
    assert_user_error(cli("verify", "--random", "0", "--corrupt", "0"), "--random and --corrupt")


def test_unknown_network(work, cli):
    out = work / "nosuch.vqz"
    assert_user_error(cli("compress", "--network", "nosuch", "--method", "kmeans", "-o", out),
                      "unknown network 'nosuch'", "lenet300")
    assert not out.exists()


@pytest.mark.parametrize("args,needles", [
    (("--method", "nosuch"), ("unknown method 'nosuch'", "kmeans")),
    (("--method", "kmeans", "--lanes", "3"), ("--lanes",)),
    (("--method", "kmeans", "--codebook-size", "0"), ("--codebook-size",)),
    (("--method", "kmeans", "--calibration", "0"), ("--calibration",)),
], ids=["method", "lanes", "codebook-size", "calibration"])
def test_bad_compress_options(args, needles, work, cli):
    out = work / "never.vqz"
    assert_user_error(cli("compress", "--network", "lenet300", *args, "-o", out), *needles)
    assert not out.exists()
    assert not (work / "never.vqz.tmp").exists()


def test_verilog_without_program_is_the_universal_engine(work, cli):
    """No program: the engine with the shipped universal codebook in ROM, and the weight SRAM asked for."""
    from model.compress.universal.codebook import load_codebook
    out = work / "universal.v"
    res = cli("verilog", "--weight-sram", "2", "-o", out)
    assert res.returncode == 0, res.stderr
    assert f"{load_codebook().k} ROM entries (the shipped universal codebook), weight SRAM 2 KiB" in res.stderr
    text = out.read_text()
    assert "module vqe_engine" in text and "wsram" in text


# --- 3. nothing is overwritten ----------------------------------------------------------------
def existing(work: Path, name: str) -> tuple[Path, bytes]:
    path = work / name
    content = f"precious {name}\n".encode() + bytes(range(256))
    path.write_bytes(content)
    return path, content


def test_compress_refuses_to_overwrite(work):
    path, content = existing(work, "existing.vqz")
    # Valid options: only the overwrite check stands between this and a real compression
    # (which would not finish within the timeout, so a missing check fails here too).
    res = vqe("compress", "--network", "lenet300", "--method", "kmeans", "-q", "-o", path, cwd=work, timeout=90)
    assert_user_error(res, str(path), "exists", "--force")
    assert path.read_bytes() == content
    assert not path.with_name(path.name + ".tmp").exists()


def test_verilog_refuses_to_overwrite(work, good, cli):
    path, content = existing(work, "existing.v")
    assert_user_error(cli("verilog", "--program", good, "-o", path), str(path), "exists", "--force")
    assert path.read_bytes() == content
    # --force does overwrite (so the refusal above was the overwrite check, not some other failure)
    res = cli("verilog", "--program", good, "-o", path, "--force")
    assert res.returncode == 0, res.stderr
    assert "module vqe_engine" in path.read_text()


def test_run_vcd_refuses_to_overwrite(work, good, cli):
    path, content = existing(work, "existing.vcd")
    res = cli("run", good, "--backend", "amaranth", "--images", "1", "--json", "--vcd", path)
    assert_user_error(res, str(path), "exists", "--force")
    assert path.read_bytes() == content
    res = cli("run", good, "--backend", "amaranth", "--images", "1", "--json", "--vcd", path, "--force")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["bit_exact"] is True
    assert path.read_bytes() != content and path.read_bytes().startswith(b"$")


# --- 4. the JSON summary ----------------------------------------------------------------------
def expected_counters(program: Program, n: int, seed: int = 1) -> dict:
    from model.nets.inputs import load_inputs
    x, _, _ = load_inputs(program.meta, n, 0, seed)
    image, _, _ = program.dram_image(x)
    return GoldenEngine(program.config).run(image).counters


def check_contract(s: dict, program: Program, backend: str, n: int) -> None:
    for key in CONTRACT_KEYS:
        assert key in s, f"summary lacks {key!r}"
    assert set(COUNTERS) <= set(s["counters"]), set(COUNTERS) - set(s["counters"])
    assert set(s["compression"]) == set(COMPRESSION_KEYS)
    for key in COMPRESSION_KEYS:
        assert s["compression"][key] == program.meta["compression"][key]
    assert s["compression"]["bits_per_weight"] > 0 and s["compression"]["ratio_vs_fp32"] > 0
    assert (s["network"], s["method"], s["backend"], s["images"]) == ("synthetic", "random", backend, n)
    assert s["accuracy"] is None and s["reference_accuracy"] is None  # synthetic: no labels
    assert s["mismatches"] == 0
    macs = n * sum(a * b for a, b in zip(SHAPES[:-1], SHAPES[1:]))
    assert s["ideal_cycles"] == ceil_div(macs, LANES)
    golden = expected_counters(program, n)
    assert {k: s["counters"][k] for k in COUNTERS} == {k: golden[k] for k in COUNTERS}
    assert s["sim_seconds"] >= 0


def test_run_golden_json(work, good, program):
    res = vqe("run", good, "--backend", "golden", "--images", "3", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)  # one JSON object, nothing else on stdout
    assert isinstance(s, dict)
    check_contract(s, program, "golden", 3)
    assert s["bit_exact"] is None
    assert s["cycles"] is None and s["utilization"] is None and s["sim_cycles_per_second"] is None


def test_run_golden_text(good, cli):
    res = cli("run", good, "--backend", "golden", "--images", "2")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for key in ("network", "backend", "bit_exact", "ideal_cycles", "compression"):
        assert key in out
    assert "synthetic" in out


def test_run_amaranth_json_and_vcd(work, good, program):
    vcd = work / "out.vcd"
    res = vqe("run", good, "--backend", "amaranth", "--images", "2", "--json", "--vcd", vcd, cwd=work)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    s = json.loads(res.stdout)
    check_contract(s, program, "amaranth", 2)
    assert s["bit_exact"] is True
    assert s["counter_mismatches"] == {}
    assert isinstance(s["cycles"], int) and s["cycles"] > 0
    assert s["cycles"] >= s["ideal_cycles"]
    assert 0 < s["utilization"] <= 1
    assert s["utilization"] == pytest.approx(s["ideal_cycles"] / s["cycles"])
    assert s["sim_cycles_per_second"] > 0
    text = vcd.read_text()
    assert text.startswith("$") and "$enddefinitions" in text and "#" in text
    assert len(text) > 1000


# --- 5. verilog and inspect -------------------------------------------------------------------
def test_verilog_writes_engine(work, good, program):
    out = work / "sub" / "engine.v"
    res = vqe("verilog", "--program", good, "-o", out, cwd=work)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "module vqe_engine" in text and "endmodule" in text
    assert "wrote" in res.stderr and "module vqe_engine" in res.stderr


def test_inspect(work, good, program):
    res = vqe("inspect", good, cwd=work)
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("weight SRAM: ")
    for i, layer in enumerate(program.meta["layers"]):
        assert f"  layer {i} ({layer['mode']}, {layer['in_features']}->{layer['out_features']}): " \
               f"{layer['placement']['words']} words in " in res.stderr
    meta = json.loads(res.stdout)
    for key in ("network", "method", "engine", "layers", "compression", "input_features", "output_features"):
        assert meta[key] == program.meta[key]
    assert meta["rom"] == f"<{len(program.meta['rom'])} codewords>"
    assert meta["image_words"] == len(program.image)
