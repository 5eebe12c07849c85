# VQ Engine.  `make` = setup, compress the default network, run it bit-exactly on
# the RTL simulator, write the engine's Verilog and the report.  `make test` = pytest.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

VENV    ?= .venv
PY      := $(VENV)/bin/python
VQE     := $(VENV)/bin/vqe
BUILD   := build
PROGRAM := $(BUILD)/lenet300.vqz
PVQ_PROGRAM := $(BUILD)/lenet300-pvq.vqz
# PVQ at the k-means program's bits per weight (8 lanes, 2-bit budget): energy at equal bits.
PVQ_2B_PROGRAM := $(BUILD)/lenet300-pvq-2b.vqz
DEEPCOMP_PROGRAM := $(BUILD)/lenet300-deepcomp.vqz
# Two networks against the one shipped universal codebook: one engine runs both.
UNIVERSAL_PROGRAMS := $(BUILD)/lenet300-universal.vqz $(BUILD)/lenet5-universal.vqz
# The convolutional networks, whole on the engine, in the report (LeNet-5's universal program is above).
CONV_PROGRAMS := $(BUILD)/lenet5-kmeans.vqz $(BUILD)/rnet-kmeans.vqz $(BUILD)/rnet-universal.vqz \
                 $(BUILD)/onet-kmeans.vqz $(BUILD)/onet-universal.vqz \
                 $(BUILD)/crepe-tiny-kmeans.vqz $(BUILD)/crepe-tiny-universal.vqz
IMAGES  ?= 2
PYTEST_ARGS ?=
# make test's pytest workers (pytest-xdist), a test file each at a time: module fixtures are built once.
# The suite alone keeps about one core busy; two workers fill a 2-core machine.  TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

# Amaranth must use its bundled Yosys (Debian's 0.23 is too old; a newer system one
# would silently win); nothing is fetched from a model hub at run time.
export AMARANTH_USE_YOSYS := builtin
export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all setup test verilog cocotb reports bench verify compress run universal experiments clean help

help:
	@echo "make          setup, compress lenet300 (k-means), run it on Icarus bit-exactly, write Verilog and the report"
	@echo "make setup    system packages (when root) and the Python venv in $(VENV); quick when nothing to do"
	@echo "make test     the test suite (pytest -q tests, on TEST_WORKERS=$(TEST_WORKERS) workers)"
	@echo "make verilog  the engine's Verilog for the default program: $(BUILD)/engine.v"
	@echo "make cocotb   the cocotb tests, and the default program on Icarus and Verilator"
	@echo "make universal  LeNet-300-100 and LeNet-5 on the universal ROM: one Verilog, both bit-exact on Icarus"
	@echo "make reports  regenerate reports/"
	@echo "make experiments  the long model-level sweeps behind reports/pvq_zoo.json and reports/universal_table.json (hours), reports/lvq.json, reports/lattice_table.json (E8P vs KDE at equal bits), and every method on the engine (reports/methods_table.*), cycles, energy and area against processing elements (reports/pes_table.*)"
	@echo "make bench    simulation speed of every backend on the default program, as ratios to Icarus ($(BUILD)/bench/)"
	@echo "make verify   1,000 random and 10,000 corrupted programs on Verilator against the golden model"
	@echo "make clean    remove $(BUILD)/"

setup:
	@bash scripts/setup.sh

all: setup $(PROGRAM) $(PVQ_PROGRAM) $(PVQ_2B_PROGRAM) $(DEEPCOMP_PROGRAM) universal
	$(VQE) run $(DEEPCOMP_PROGRAM) --backend icarus --images $(IMAGES) --json > $(BUILD)/run_icarus_deepcomp.json
	@$(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); c = r["counters"]; \
	  print("deepcomp: bit_exact=%s, %.2fx vs fp32, Huffman decoder %.3f symbols per busy cycle" % (r["bit_exact"], r["compression"]["ratio_vs_fp32"], c["huffman_symbols"] / c["huffman_busy_cycles"])); \
	  sys.exit(0 if r["bit_exact"] is True else "make: the deepcomp RTL run is not bit-exact")' $(BUILD)/run_icarus_deepcomp.json
	$(VQE) run $(PROGRAM) --backend icarus --images $(IMAGES) --json > $(BUILD)/run_icarus.json
	@cat $(BUILD)/run_icarus.json; echo
	@$(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); \
	  ok = r.get("bit_exact") is True; \
	  print("RTL run (%s, %s images): bit_exact=%s, accuracy=%s, cycles=%s" % (r.get("backend"), r.get("images"), r.get("bit_exact"), r.get("accuracy"), r.get("cycles"))); \
	  sys.exit(0 if ok else "make: the RTL run is not bit-exact with the golden model")' $(BUILD)/run_icarus.json
	$(VQE) verilog --program $(PROGRAM) -o $(BUILD)/engine.v --force
	$(VQE) report -o reports --cached-only

compress: setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network lenet300 --method kmeans -o $(PROGRAM) --force

# The PVQ program the report compares with (its own scenario).
$(PVQ_PROGRAM): | setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network lenet300 --method pvq -o $(PVQ_PROGRAM)

# The default program, compressed once when missing (`make compress` redoes it).
$(PROGRAM): | setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network lenet300 --method kmeans -o $(PROGRAM)

$(PVQ_2B_PROGRAM): | setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network lenet300 --method pvq --lanes 8 --bits-per-weight 2 -o $(PVQ_2B_PROGRAM)

# Deep Compression (pruning, trained quantization, Huffman-coded sparse rows): its own scenario.
$(DEEPCOMP_PROGRAM): | setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network lenet300 --method deepcomp -o $(DEEPCOMP_PROGRAM)

# The universal programs, compressed once when missing.
$(BUILD)/%-universal.vqz: | setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network $* --method universal -o $@

# k-means programs of the other networks (lenet300's is $(PROGRAM)), compressed once when missing.
$(BUILD)/%-kmeans.vqz: | setup
	@mkdir -p $(BUILD)
	$(VQE) compress --network $* --method kmeans -o $@

# One elaborated engine, the universal chip (`vqe verilog` with no program), runs both networks bit-exactly.
universal: $(UNIVERSAL_PROGRAMS)
	$(VQE) verilog -o $(BUILD)/engine-universal.v --force
	@for p in $(UNIVERSAL_PROGRAMS); do \
	  $(VQE) run $$p --chip universal --backend icarus --images $(IMAGES) --json > $${p%.vqz}.icarus.json || exit 1; \
	  $(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); \
	    print("universal: %s on the universal chip (icarus), %s images: bit_exact=%s, cycles=%s, %.2fx vs fp32" % (r["network"], r["images"], r["bit_exact"], r["cycles"], r["compression"]["ratio_vs_fp32"])); \
	    sys.exit(0 if r["bit_exact"] is True else "make: not bit-exact")' $${p%.vqz}.icarus.json; \
	done

test: setup
	@rc=0; $(PY) -m pytest -q tests -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

verilog: $(PROGRAM)
	$(VQE) verilog --program $(PROGRAM) -o $(BUILD)/engine.v --force

run: $(PROGRAM)
	$(VQE) run $(PROGRAM) --backend icarus --images $(IMAGES) --json

cocotb: $(PROGRAM)
	$(PY) -m pytest -q tests -k cocotb $(PYTEST_ARGS)
	$(VQE) run $(PROGRAM) --backend icarus --images $(IMAGES) --json
	$(VQE) run $(PROGRAM) --backend verilator --images $(IMAGES) --json

# The cross-check runs on Verilator: CREPE-tiny takes 9.2M cycles per frame (Icarus: 17 min each).
reports: setup $(PROGRAM) $(PVQ_PROGRAM) $(PVQ_2B_PROGRAM) $(DEEPCOMP_PROGRAM) $(UNIVERSAL_PROGRAMS) $(CONV_PROGRAMS)
	$(VQE) report -o reports --backend verilator

# Simulation speed of every backend on the default program, as ratios to Icarus in the same run
# (verilator: 100 images on one core; the slow simulators fewer).  Rows in $(BUILD)/bench/bench.json.
bench: $(PROGRAM)
	$(PY) -m sim.bench $(PROGRAM) --json $(BUILD)/bench/bench.json

# The verification campaign (not part of `make test`): random and corrupted programs on the
# Verilator harness against the golden model, sharded on a LocalCluster; failures in $(BUILD)/verify.
VERIFY_RANDOM ?= 1000
VERIFY_CORRUPT ?= 10000
verify: setup
	$(VQE) verify --random $(VERIFY_RANDOM) --corrupt $(VERIFY_CORRUPT) --out $(BUILD)/verify

# Long sweeps (not part of `make` or the tests): PVQ vs k-means on every zoo network, and the
# universal codebook against the per-layer baselines.  One torch thread each, as measured.
experiments: setup
	OMP_NUM_THREADS=1 $(PY) -m scripts.experiments.pvq --zoo reports/pvq_zoo.json
	OMP_NUM_THREADS=1 $(PY) -m scripts.experiments.universal --networks lenet300 lenet5 rnet minilm --json reports/universal_table.json --markdown reports/universal_table.md
	OMP_NUM_THREADS=1 $(PY) -m scripts.experiments.lvq --json reports/lvq.json
	OMP_NUM_THREADS=1 $(PY) -m scripts.experiments.lattice --json reports/lattice_table.json
	OMP_NUM_THREADS=1 $(PY) -m scripts.experiments.methods --json reports/methods_table.json --markdown reports/methods_table.md --plots reports
	$(PY) -m scripts.experiments.minilm_engine --json reports/minilm_engine.json
	OMP_NUM_THREADS=1 $(PY) -m scripts.experiments.libraries --json reports/libraries.json
	$(PY) -m scripts.experiments.pes --json reports/pes_table.json --markdown reports/pes_table.md --plot reports/pes_scaling.png
	$(PY) -m scripts.experiments.columns_engine --json reports/columns_engine.json --markdown reports/columns_engine.md --plot reports/columns_engine.png --report reports/REPORT.md
	$(PY) -m scripts.experiments.sparse_columns --json reports/sparse_columns.json --markdown reports/sparse_columns.md --plot reports/sparse_columns.png --report reports/REPORT.md

clean:
	rm -rf $(BUILD)
