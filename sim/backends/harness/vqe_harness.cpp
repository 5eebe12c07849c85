// The compiled Verilator harness of the engine's simulation top (vqe_sim_top).
//
// One process runs any number of jobs, one per line of standard input:
//
//     IMAGE ROM OUT_ADDR OUT_WORDS MAX_CYCLES LATENCY STALL SEED VCD
//
// IMAGE and ROM are $readmemh files loaded at construction into the blank
// DRAM (+vqe_dram=IMAGE) and the codebook ROM (+vqe_rom=ROM); VCD is a
// waveform path, or "-" for none (only a build with --trace writes one).  For
// each job the harness builds a fresh model of the harness top (HarnessTop in
// sim/backends/top.py: it resets itself at power-on and registers its inputs),
// sets the DRAM timing ports, pulses start and clocks the design from C++ until
// done or MAX_CYCLES, then reads error, the counters and OUT_WORDS output words
// through the dbg port.  It prints one
// JSON object per job on standard output, in the fields and with the cycle
// accounting of the cocotb test (sim/backends/cocotb_top.py):
//
//     {"done", "error", "cycles_simulated", "counters": [...], "layer_cycles": [...],
//      "outputs": [...], "sim_seconds"}
//
// Arguments: N_COUNTERS COUNTER_BITS CYCLES_FIELD POWER_ON_CYCLES (the counters
// port holds N_COUNTERS fields of COUNTER_BITS bits, field i at bit
// COUNTER_BITS*i; the cycle counter is field CYCLES_FIELD, read where the phase
// changes for the per-layer cycles; the top holds itself in reset for
// POWER_ON_CYCLES edges).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "Vvqe_sim_top.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

namespace {

// Half the clock period in the waveform's time unit (picoseconds): a 10 ns clock, as the cocotb
// testbench's.
constexpr uint64_t kHalfPeriodPs = 5000;

// Bits [lsb, lsb + width) of a port as an unsigned integer (width <= 64).
template <std::size_t N>
uint64_t field(const VlWide<N>& v, int lsb, int width) {
    uint64_t r = 0;
    for (int i = 0; i < width; ++i) {
        const int b = lsb + i;
        if ((v[b / 32] >> (b % 32)) & 1u) r |= uint64_t{1} << i;
    }
    return r;
}
uint64_t field(uint64_t v, int lsb, int width) {
    return (v >> lsb) & (width >= 64 ? ~uint64_t{0} : ((uint64_t{1} << width) - 1));
}

struct Job {
    std::string image, rom, vcd;
    uint64_t out_addr = 0, out_words = 0, max_cycles = 0;
    unsigned latency = 10, stall = 0;
    uint64_t seed = 1;
};

class Run {
  public:
    Run(const Job& job) : ctx_(new VerilatedContext) {
        const std::string dram = "+vqe_dram=" + job.image, rom = "+vqe_rom=" + job.rom;
        const char* argv[] = {"vqe_harness", dram.c_str(), rom.c_str()};
        ctx_->commandArgs(3, argv);
        top_.reset(new Vvqe_sim_top{ctx_.get()});
#if VM_TRACE
        if (job.vcd != "-") {
            ctx_->traceEverOn(true);
            trace_.reset(new VerilatedVcdC);
            top_->trace(trace_.get(), 99);
            trace_->open(job.vcd.c_str());
        }
#endif
    }
    ~Run() {
#if VM_TRACE
        if (trace_) trace_->close();
#endif
        top_->final();
    }
    Vvqe_sim_top& top() { return *top_; }
    // Half a clock period: clk to `level`, evaluate, dump.
    void half(int level) {
        top_->clk = level;
        top_->eval();
#if VM_TRACE
        if (trace_) trace_->dump(time_);
#endif
        time_ += kHalfPeriodPs;
    }
    void rising() { half(1); }
    void falling() { half(0); }

  private:
    std::unique_ptr<VerilatedContext> ctx_;
    std::unique_ptr<Vvqe_sim_top> top_;
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> trace_;
#endif
    uint64_t time_ = 0;
};

// The edges before start are those of the top's power-on reset (POWER_ON_RESET_CYCLES in
// sim/backends/top.py, an argument): start, raised after them, is registered at the first edge out
// of reset and reaches the engine at the next one, as the cocotb testbench's start reaches SimTop
// one edge after its reset; so the DRAM model's stall LFSR, seeded at that first edge, runs in step
// with the testbench's and the two agree cycle for cycle.
void run_job(const Job& job, int n_counters, int counter_bits, int cycles_field, int power_on_cycles) {
    Run run(job);
    Vvqe_sim_top& top = run.top();
    top.clk = 0;
    top.start = 0;
    top.dbg_addr = 0;
    top.dram_latency = job.latency;
    top.dram_stall = job.stall;
    top.dram_seed = static_cast<uint32_t>(job.seed);
    run.falling();
    for (int i = 0; i < power_on_cycles; ++i) { run.rising(); run.falling(); }
    top.start = 1;
    run.rising();   // the top's input register takes start; the engine sees it at the next edge
    run.falling();
    top.start = 0;
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t cycles = 0;
    std::vector<uint64_t> layer_cycles;
    unsigned phase = 0;
    uint64_t since = 0;
    bool done = false;
    while (cycles < job.max_cycles) {
        run.rising();   // the first one is the engine's start edge: cycles count as the cocotb testbench's
        ++cycles;
        const unsigned now_phase = top.phase;
        if (now_phase != phase) {
            const uint64_t now = field(top.counters, counter_bits * cycles_field, counter_bits);
            if (phase) {
                if (layer_cycles.size() < phase) layer_cycles.resize(phase, 0);
                layer_cycles[phase - 1] += now - since;
            }
            phase = now_phase;
            since = now;
        }
        if (top.done) { done = true; break; }
        run.falling();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    run.falling();   // everything registered on done's edge has settled
    std::ostringstream out;
    out << "{\"done\": " << (done ? "true" : "false") << ", \"error\": " << unsigned(top.error)
        << ", \"cycles_simulated\": " << cycles << ", \"sim_seconds\": " << seconds << ", \"counters\": [";
    for (int i = 0; i < n_counters; ++i)
        out << (i ? ", " : "") << field(top.counters, counter_bits * i, counter_bits);
    out << "], \"layer_cycles\": [";
    for (std::size_t i = 0; i < layer_cycles.size(); ++i) out << (i ? ", " : "") << layer_cycles[i];
    out << "], \"outputs\": [";
    // The address register and the dbg port's read take a cycle each: set, clock twice, collect.
    for (uint64_t i = 0; i < job.out_words; ++i) {
        top.dbg_addr = job.out_addr + i;
        for (int edge = 0; edge < 2; ++edge) { run.rising(); run.falling(); }
        out << (i ? ", " : "") << top.dbg_data;
    }
    out << "]}";
    std::cout << out.str() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s N_COUNTERS COUNTER_BITS CYCLES_FIELD POWER_ON_CYCLES < jobs\n", argv[0]);
        return 2;
    }
    const int n_counters = std::atoi(argv[1]), counter_bits = std::atoi(argv[2]), cycles_field = std::atoi(argv[3]),
              power_on_cycles = std::atoi(argv[4]);
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        std::istringstream in(line);
        Job job;
        if (!(in >> job.image >> job.rom >> job.out_addr >> job.out_words >> job.max_cycles >> job.latency >> job.stall
                 >> job.seed >> job.vcd)) {
            std::fprintf(stderr, "vqe_harness: bad job line: %s\n", line.c_str());
            return 2;
        }
        run_job(job, n_counters, counter_bits, cycles_field, power_on_cycles);
    }
    return 0;
}
