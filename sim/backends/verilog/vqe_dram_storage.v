// The simulated DRAM's word storage for the compiled simulations (Verilator harness, Icarus).
//
// The same ports and timing as the Amaranth memory it stands in for
// (sim/backends/dram_model.py): a synchronous, non-transparent read port for
// the engine, a second one for reading results back, one write port.  Its
// contents come from a file named at run time (+vqe_dram=FILE, $readmemh
// format), so one build of a design serves every program and input.  Words the
// file leaves out are not initialised: the engine reads nothing past the image
// (the job header's dram_words bound, model/contract/layout.py).
module vqe_dram_storage #(parameter AW = 22, parameter PATH_CHARS = 4096) (
    input  wire          clk,
    input  wire [AW-1:0] rd_addr,
    output reg  [31:0]   rd_data,
    input  wire [AW-1:0] dbg_addr,
    output reg  [31:0]   dbg_data,
    input  wire          wr_en,
    input  wire [AW-1:0] wr_addr,
    input  wire [31:0]   wr_data
);
    reg [31:0] mem [0:(1 << AW) - 1];
    reg [8*PATH_CHARS-1:0] path;
    initial begin
        rd_data = 32'd0;
        dbg_data = 32'd0;
        if ($value$plusargs("vqe_dram=%s", path))
            $readmemh(path, mem);
    end
    always @(posedge clk) begin
        if (wr_en)
            mem[wr_addr] <= wr_data;
        rd_data <= mem[rd_addr];
        dbg_data <= mem[dbg_addr];
    end
endmodule
