"""The VQ Engine: runs a whole network, for every image of a job, from one start."""
from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

from hw.avg_pool import AvgPool
from hw.column_unit import ColumnUnit
from hw.counters import STEP_BITS, EventCounters
from hw.datapaths import NEAREST_PATH, datapaths
from hw.descriptor_check import DescriptorCheck, log2
from hw.gearbox import Gearbox
from hw.layouts import (COUNT_BITS, SAVE_BIT, DescriptorLayout, DramReadSignature, JobHeaderLayout, RowParams,
                        control_members, dram_write_signature)
from hw.max_pool import MaxPool
from hw.memories import ActivationSram, BlockRamFIFO, SkipBuffer
from hw.packer import OutputPacker
from hw.processing_elements import ResultMerger, WeightBanks, WordDistributor
from hw.requantizer import Requantizer
from hw.residual_add import ResidualAdd
from hw.serial_multiplier import SerialMultiplier
from hw.weight_sram import Place, StreamReader
from hw.window_setup import WindowSetup
from hw.window_walker import WindowWalker
from model.codecs.layers.kinds import pooling_kinds
from model.contract.config import EngineConfig
from model.contract.errors import ERROR_BITS, EngineError
from model.contract.ints import ceil_div
from model.contract.layout import (COLUMNS_KEPT_WORD, DESC_WORDS, JOB_MAGIC, JOB_WORDS, NEAREST_OUTPUTS, WORD_BITS,
                                   WORD_BYTES, LayerKind, LayerMode, vector_align)

#: Rows whose parameters may be read before the MAC finishes the previous ones.
ROW_PARAMS_DEPTH = 4


class Engine(wiring.Component):
    """Fetches the job header and each layer's descriptor from DRAM, then runs the layers.

    For each image: the input vector is loaded from DRAM into one half of the
    activation SRAM; each layer streams its rows from DRAM through its mode's
    datapath (:class:`hw.datapaths.Datapath`) into the other half: a row source (the index
    path for dense VQ and PVQ layers, one codebook lookup per cycle; the sparse
    row path for sparse Huffman-coded layers, one weight per symbol), the
    fetch stage reading the activation SRAM and the codebook ROM, a
    dot-product unit (the MAC lanes, or the PVQ unit), then the shared
    requantizer and output packer.  A sparse layer's stream starts with a
    size word, read first, so the rest comes in one pipelined read.  The last
    layer's output is stored back to DRAM.  Every descriptor is checked
    (:class:`hw.descriptor_check.DescriptorCheck`) before its layer runs; on a
    bad one, or a bad stream, the engine stops with ``error`` set and ``done``
    high.  With ``config.pes > 1`` the dense layers run on that many processing
    elements, each with its own index path, ROM copy and MAC lanes, in lockstep
    on one broadcast activation read (:mod:`hw.processing_elements`;
    :mod:`model.contract.layout`, "Processing elements").  Golden twin:
    :class:`model.golden.engine.GoldenEngine`.

    Parameters
    ----------
    config : model.contract.config.EngineConfig
        Lanes, codebook depth, ROM contents, activation capacity, optional PVQ
        unit and Huffman decoder.
    addr_width : int
        DRAM word-address width.
    fifo_depth : int
        DRAM reads in flight; should exceed the DRAM latency.

    Members
    -------
    start : In(1)
        Run the job in DRAM (ignored while busy; after an error, reset first).
    busy, done : Out(1)
        ``done`` rises when the job finishes or stops on an error and stays up until the next start.
    error : Out(4)
        :class:`model.contract.errors.EngineError` value, 0 when none.
    counters : Out(CounterLayout)
        Event counters since the last start (:mod:`model.contract.counters`).
    phase : Out(PHASE_BITS)
        ``i + 1`` while layer ``i`` runs (from its descriptor fetch to its last
        output), 0 otherwise (job header, input loads, output stores, idle):
        testbenches read ``counters.cycles`` where it changes, for cycles per layer.
    dram_rd : Out(DramReadSignature(addr_width))
    dram_wr : Out(dram_write_signature(addr_width))
    """

    def __init__(self, config: EngineConfig, addr_width: int = 24, fifo_depth: int = 16):
        self.config = config
        self._aw = addr_width
        self._fifo_depth = fifo_depth
        super().__init__({
            **control_members(),
            "dram_rd": Out(DramReadSignature(addr_width)),
            "dram_wr": Out(dram_write_signature(addr_width)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes = cfg.lanes
        align = vector_align(lanes)

        # Several PEs have their own weight SRAM, in banks (WeightBanks, below).
        m.submodules.reader = reader = StreamReader(self._aw, self._fifo_depth,
                                                    cfg.weight_sram_words if cfg.pes == 1 else 0)
        paths = datapaths(m, cfg)
        # COLUMNS layers run in the column unit, beside the datapaths (model.contract.layout).
        columns = cfg.columns
        if columns:
            m.submodules.column_unit = unit = ColumnUnit(cfg)
            # While a column-wise layer computes, the reader is free (after image 0 it reads no stream, in image
            # 0 once the stream is in): the next descriptor is read then (``prefetching``), the next layer's or,
            # after the last layer, the next image's first, and that layer starts at its check.
            prefetched = Signal(DESC_WORDS * WORD_BITS, name="prefetched")
            prefetch_words = Signal(range(DESC_WORDS), name="prefetch_words")
            prefetching, prefetch_valid = Signal(name="prefetching"), Signal(name="prefetch_valid")
        # Processing element p > 0 has its own datapaths (index path, ROM copy, MAC lanes): see
        # pe_datapaths below and model.contract.layout, "Processing elements".
        pes = cfg.pes
        pe_paths = [paths] + [datapaths(m, cfg, f"_pe{p}") for p in range(1, pes)]
        sources = list(dict.fromkeys(path.source for each in pe_paths for path in each.values()))
        dots = list(dict.fromkeys(path.dot for each in pe_paths for path in each.values()))
        # Several PEs in a sparse layer each read their own activations (sparse_rows, below).
        sparse_pes = pes > 1 and LayerMode.HUFFMAN in paths
        m.submodules.sram = sram = ActivationSram(lanes, cfg.sram_words, pes - 1 if sparse_pes else 0)
        m.submodules.requantizer = requantizer = Requantizer()
        m.submodules.packer = packer = OutputPacker(lanes, len(sram.wr_addr))
        m.submodules.load_gearbox = load_gb = Gearbox(WORD_BYTES, lanes)
        m.submodules.store_gearbox = store_gb = Gearbox(lanes, WORD_BYTES)
        m.submodules.descriptor_check = check = DescriptorCheck(cfg)
        # Counters move per beat that reads the memories (by mode) and with the blocks' own events.
        reading = Signal()   # the fetch stage takes a beat that reads the memories
        read_steps = {value: path.read_steps(reading) for value, path in paths.items()}
        if pes > 1:   # each PE's reads, summed: the PE reads when the fetch stage takes its beat
            pe_reading = [Signal(name=f"reading_pe{p}") for p in range(pes)]
            read_steps = {value: {name: sum(pe_paths[p][value].read_steps(pe_reading[p])[name] for p in range(pes))
                                  for name in path.read_steps(reading)} for value, path in paths.items()}
        # The blocks' own events, summed over the PEs (a sparse layer's decoders and MACs run in each).
        counted = {name: sum((pe_paths[p][value].event_steps()[name] for p in range(1, pes)), step)
                   for value, path in paths.items() for name, step in path.event_steps().items()}
        wsram = cfg.weight_sram_words > 0
        # Average pooling adds a lane-word per tap it reads (the PVQ unit's counter; never both at once).
        pool_events = {"adds": Signal(range(lanes + 1), name="pool_adds")} if cfg.avgpool else {}
        unit_events = dict(pool_events)
        if cfg.residual:   # the residual add adds a lane-word per lane-word it reads
            residual_adds = Signal(range(lanes + 1), name="residual_adds")
            unit_events["adds"] = unit_events["adds"] + residual_adds if "adds" in unit_events else residual_adds
        if columns:   # the column unit's MACs, skips and memory accesses
            for name in ("macs", "zero_skips", *([] if wsram else ["weight_sram_reads", "weight_sram_writes"])):
                step = getattr(unit.events, name)
                unit_events[name] = unit_events[name] + step if name in unit_events else step
        m.submodules.event_counters = counters = EventCounters(dict.fromkeys([
            "dram_read_words", "dram_write_words", "sram_reads", "sram_writes", "cycles", "stall_cycles",
            *(["weight_sram_reads", "weight_sram_writes"] if wsram else []),
            *(name for mode_steps in read_steps.values() for name in mode_steps), *counted, *unit_events]),
            *([max(STEP_BITS, (max(cfg.rvq_stages_max, 1) * lanes * pes).bit_length(),
                   (pes * ((1 << STEP_BITS) - 1)).bit_length() if sparse_pes else 0)] if pes > 1 else []),
            **({"wide": {"zero_skips": WORD_BITS}} if columns else {}))
        # Row parameters run ahead of their row's beats by the pipeline's depth.
        m.submodules.row_params = row_params = BlockRamFIFO(width=RowParams.size, depth=ROW_PARAMS_DEPTH)

        wiring.connect(m, reader.dram, wiring.flipped(self.dram_rd))
        wiring.connect(m, requantizer.output, packer.output)

        # --- job and layer registers ---------------------------------------------------------
        fetched = Signal(JOB_WORDS * WORD_BITS)   # header or descriptor words, word 0 lowest
        job = data.View(JobHeaderLayout, fetched)
        desc = data.View(DescriptorLayout, fetched[:DescriptorLayout.size])   # after DESC_READ
        n_fetched = Signal(range(JOB_WORDS + 1))
        n_layers, n_images = Signal(COUNT_BITS), Signal(COUNT_BITS)
        desc_addr, in_ptr, out_ptr = (Signal(self._aw, name=n) for n in ("desc_addr", "in_ptr", "out_ptr"))
        # The running layer's descriptor address, ``desc_addr + layer * DESC_WORDS`` in full (no wrap), kept
        # in a register that moves with ``layer``: the multiply-add set the engine's clock (timing, issue 16).
        desc_ptr = Signal(len(desc_addr + (2 ** COUNT_BITS - 1) * DESC_WORDS))
        input_features = Signal(COUNT_BITS)
        dram_words = Signal(WORD_BITS)   # the job's bound on DRAM reads (model.contract.layout; 0: none)
        image = Signal(COUNT_BITS)
        layer = Signal(COUNT_BITS)
        features = Signal(COUNT_BITS)  # size of the vector now in SRAM
        select = Signal()              # SRAM half holding that vector
        error = Signal(ERROR_BITS)
        # The running layer's mode, which selects its datapath; between layers it keeps the
        # last one (whose blocks are idle then).
        mode = Signal(len(desc.mode), init=next(iter(paths)))
        relu = Signal()
        floor = Signal()
        size_word = Signal(WORD_BITS)  # a sized stream's size word (model.contract.layout)
        # Where the layer's stream comes from: a resident one from DRAM into the weight SRAM in
        # image 0, from the weight SRAM after (model.contract.layout, weight SRAM).
        place = Signal(Place)
        first_position = Signal()   # a convolution reads its stream once per position
        with m.If(desc.resident & (image == 0) & first_position):
            m.d.comb += place.eq(Place.FILL)
        with m.Elif(desc.resident):
            m.d.comb += place.eq(Place.SRAM)

        def vector_words(n):   # DRAM words of an aligned vector (model.contract.layout.vector_words)
            return ((n + align - 1) >> log2(align)) << log2(align // WORD_BYTES)

        def lane_words(n):     # SRAM lane-words of an aligned vector
            return ((n + align - 1) >> log2(align)) << log2(align // lanes)

        sized_modes = [value for value, path in paths.items() if path.sized] + ([LayerMode.COLUMNS] if columns else [])

        def sized(value):
            return reduce(or_, [value == s for s in sized_modes], Const(0))

        # Values the layer writes: a nearest-prototype layer writes its one label.
        out_values = desc.out_features
        if cfg.nearest_prototype:
            out_values = Mux(desc.kind == LayerKind.NEAREST, NEAREST_OUTPUTS, desc.out_features)

        windows = cfg.windows
        packer_base = Signal(COUNT_BITS)   # a convolution's position: where its pixel goes
        conv = Signal()   # the running layer is a convolution: its beats read through the walker
        average = Signal()   # the running layer is average pooling: the walked taps go to the AvgPool
        if windows:
            m.submodules.window_setup = setup = WindowSetup(cfg)
            m.submodules.window_walker = walker = WindowWalker()
            m.submodules.max_pool = pool = MaxPool(lanes)
            m.d.comb += [setup.descriptor.eq(desc), setup.features.eq(features),
                         walker.descriptor.eq(desc), walker.steps.eq(setup.steps)]
        if cfg.avgpool:
            m.submodules.avg_pool = avg = AvgPool(lanes)
        # The residual add (model.contract.layout, "Skip buffer"): the layer saving its output runs with
        # ``save``; ``saved`` is the size of the vector the skip buffer holds (0: none this image).
        add_word, add_written = Signal(COUNT_BITS, name="add_word"), Signal(COUNT_BITS, name="add_written")
        add_valid, add_read = Signal(name="add_valid"), Signal(name="add_read")
        if cfg.residual:
            m.submodules.skip_buffer = skip = SkipBuffer(lanes, cfg.sram_words)
            m.submodules.residual_add = adder = ResidualAdd(lanes)
            save, saved = Signal(name="save"), Signal(COUNT_BITS, name="saved")
            m.d.comb += check.saved.eq(saved)
        # The check's verdict is registered (timing, issue 16): it is computed on the descriptor as the
        # last DESC_READ cycle completes it (the words shifted in so far and the arriving one), so
        # ``check_error`` holds the verdict on ``desc`` in DESC_CHECK, which always follows that cycle,
        # and no cycle is added.  ``features`` and ``saved`` do not change between the two.
        completed = Cat(fetched[WORD_BITS * (JOB_WORDS - DESC_WORDS + 1):], reader.data.payload)   # as `fetch`
        check_error = Signal(ERROR_BITS)
        m.d.sync += check_error.eq(check.error)
        m.d.comb += [
            check.descriptor.eq(completed[:DescriptorLayout.size]), check.features.eq(features),
            sram.select.eq(select),
            packer.rows.eq(out_values), packer.words.eq(lane_words(out_values)),
            packer.base.eq(packer_base),
            requantizer.relu.eq(relu), requantizer.floor.eq(floor),
        ]

        # --- datapath: row source -> ROM + SRAM read (the fetch stage) -> dot-product unit ------
        running = Signal()       # the layer's stream goes to its row source
        start_layer = Signal()   # strobe: the layer's stream is being read
        source_busy, source_error, dot_error = Signal(), Signal(ERROR_BITS), Signal()
        advance = Signal()       # the fetch stage takes the next beat
        fetch_valid = Signal()   # the fetch stage holds a beat: its memory reads are out now
        held = Signal(max(len(source.beats.payload.as_value()) for source in sources))
        held_inside = Signal()   # the held beat's tap is in the map (a convolution's padding is zero)
        inside = Signal(init=1)  # the beat offered now reads a tap in the map
        steps = counters.steps
        # A counter both a mode's reads and the blocks' events move (RVQ's adds, with PVQ or pooling) sums them.
        shared_steps = {name: Signal(len(getattr(steps, name)), name=f"{name}_read_step")
                        for name in dict.fromkeys(n for mode_steps in read_steps.values() for n in mode_steps)
                        if name in counted or name in unit_events}
        # An engine with one datapath does not decode the mode to pick it: its handshakes then start at
        # their own registers, not at the mode register (timing, issue 16).
        with m.Switch(mode if len(paths) > 1 or columns else Const(next(iter(paths)), len(mode))):
            for value, path in (paths.items() if pes == 1 else ()):   # several PEs: pe_datapaths
                source, dot = path.source, path.dot
                beat = source.beats.payload
                rom_entry, sram_word, reads = path.lookup(beat)
                with m.Case(value):
                    m.d.comb += path.configure(desc)
                    with m.If(running):
                        wiring.connect(m, reader.data, source.words)
                    wiring.connect(m, source.params, row_params.w_stream)
                    wiring.connect(m, row_params.r_stream, dot.params)
                    wiring.connect(m, dot.result, requantizer.result)
                    m.d.comb += [
                        source.start.eq(start_layer), source_busy.eq(source.busy),
                        source_error.eq(source.error), dot_error.eq(dot.error),
                        # The fetch stage holds its beat, and the memories their data, while the
                        # unit cannot take it: the PVQ unit stalls, the MAC lanes never do.
                        advance.eq(~fetch_valid | dot.operands.ready),
                        source.beats.ready.eq(advance),
                        reading.eq(source.beats.valid & advance & reads),
                        sram.rd_addr.eq(sram_word), sram.rd_en.eq(advance & reads & inside),
                    ]
                    if windows:
                        m.d.comb += [walker.first.eq(beat.first), walker.take.eq(conv & source.beats.valid & advance)]
                        with m.If(conv):
                            m.d.comb += [sram.rd_addr.eq(walker.addr), inside.eq(walker.inside)]
                    m.d.comb += [shared_steps.get(name, getattr(steps, name)).eq(step)
                                 for name, step in read_steps[value].items()]
                    if path.rom is not None:
                        m.d.comb += path.read_rom(desc, rom_entry, advance & reads, beat, source.beats.valid & advance)
                    with m.If(advance):
                        m.d.sync += [fetch_valid.eq(source.beats.valid), held.eq(beat.as_value()),
                                     held_inside.eq(inside)]
                    taken = data.View(beat.shape(), held[:beat.shape().size])
                    operands = dot.operands
                    m.d.comb += [operands.valid.eq(fetch_valid),
                                 operands.payload.activations.eq(Mux(held_inside, sram.rd_data, 0)),
                                 operands.payload.first.eq(taken.first), operands.payload.last.eq(taken.last)]
                    m.d.comb += path.weights(taken, desc)
            if columns:
                with m.Case(LayerMode.COLUMNS):
                    with m.If(running & ~prefetching):
                        wiring.connect(m, reader.data, unit.words)
                    m.d.comb += [source_busy.eq(unit.busy), source_error.eq(unit.error),
                                 sram.rd_addr.eq(unit.sram_addr), sram.rd_en.eq(unit.sram_en)]

        def pe_datapaths(source_busy, source_error, dot_error):
            # (Arguments, not closure cells: a cell would lose the signals' names in every engine's Verilog.)
            """The datapath of ``pes > 1`` processing elements (model.contract.layout, "Processing elements").

            The stream's words go round-robin to the PEs' index paths (WordDistributor).  The PEs run in
            lockstep: the fetch stage takes a beat when every PE with a row in the current row group
            offers one, reads one activation lane-word for all of them (broadcast) and each PE's ROM
            copy; each PE's MAC lanes take their operand next cycle, and their row results go to the
            requantizer in row order (ResultMerger).
            """
            m.submodules.distributor = dist = WordDistributor(pes, queued=sparse_pes)
            # Sparse rows: room for every row a PE has (ResultMerger), so the PEs never wait for each other.
            m.submodules.merger = merger = ResultMerger(pes, queue_depth=ceil_div(cfg.max_features, pes)
                                                        if sparse_pes else None)
            banks = None
            if wsram:   # a resident stream comes from the banks, up to P words a cycle
                m.submodules.weight_banks = banks = WeightBanks(pes, cfg.weight_sram_words)
                wiring.connect(m, banks.out, dist.wide)
                m.d.comb += dist.from_wide.eq(place == Place.SRAM)
            fifos = [row_params] + [BlockRamFIFO(width=RowParams.size, depth=ROW_PARAMS_DEPTH)
                                    for _ in range(1, pes)]
            for p in range(1, pes):
                m.submodules[f"row_params_pe{p}"] = fifos[p]
            rows = desc.out_features
            row_base = Signal(COUNT_BITS)   # the first row of the group the fetch stage is at
            active = [Signal(name=f"active_pe{p}") for p in range(pes)]   # PE p has a row in that group
            held_active = [Signal(name=f"held_active_pe{p}") for p in range(pes)]
            take = Signal()   # the fetch stage takes the group's beats
            m.d.comb += [active[p].eq(row_base + p < rows) for p in range(pes)]
            with m.If(running):
                wiring.connect(m, reader.data, dist.words)
            m.d.comb += [dist.start.eq(start_layer), dist.rows.eq(rows), dist.row_words.eq(desc.row_words),
                         # The merger goes on from one position to the next (its groups wrap at ``rows``).
                         merger.start.eq(start_layer & first_position), merger.rows.eq(rows)]
            wiring.connect(m, merger.output, requantizer.result)
            if not sparse_pes:   # a PE's dense modes share its index path
                for p in range(pes):
                    (index_path,) = {path.source for path in pe_paths[p].values()}
                    wiring.connect(m, dist.outs[p], index_path.words)
            with m.Switch(mode):
                for value in paths:
                    pe = [pe_paths[p][value] for p in range(pes)]
                    if value == LayerMode.HUFFMAN:
                        with m.Case(value):
                            sparse_rows(pe, dist, merger, fifos, banks, source_busy, source_error, dot_error,
                                        size_word)
                        continue
                    beats = [path.source.beats for path in pe]
                    first = beats[0].payload.first
                    with m.Case(value):
                        for p, path in enumerate(pe):
                            source, dot = path.source, path.dot
                            if sparse_pes:   # the index path's words, when the sparse paths' are not
                                wiring.connect(m, dist.outs[p], source.words)
                            # Rows r = p, p + P, ..: the PE's share of the layer's rows.
                            m.d.comb += path.configure(desc)
                            m.d.comb += source.config.rows.eq((rows + (pes - 1 - p)) >> log2(pes))
                            wiring.connect(m, source.params, fifos[p].w_stream)
                            wiring.connect(m, fifos[p].r_stream, dot.params)
                            wiring.connect(m, dot.result, merger.results[p])
                            rom_entry, _, _ = path.lookup(source.beats.payload)
                            if path.rom is not None:
                                m.d.comb += path.read_rom(desc, rom_entry, advance, source.beats.payload,
                                                          take & active[p])
                            held = Signal(source.beats.payload.shape(), name=f"held_pe{p}")
                            with m.If(advance):
                                m.d.sync += [held.eq(source.beats.payload), held_active[p].eq(active[p])]
                            operands = dot.operands
                            m.d.comb += [source.start.eq(start_layer), source.beats.ready.eq(take & active[p]),
                                         pe_reading[p].eq(take & active[p]),
                                         *([merger.row_starts[p].eq(take & first & active[p])] if sparse_pes else []),
                                         operands.valid.eq(fetch_valid & held_active[p]),
                                         operands.payload.activations.eq(Mux(held_inside, sram.rd_data, 0)),
                                         operands.payload.first.eq(held.first), operands.payload.last.eq(held.last)]
                            m.d.comb += path.weights(held, desc)
                        _, sram_word, _ = pe[0].lookup(beats[0].payload)
                        # Every PE with a row in the group offers its beat (PE 0 always has one), and a
                        # group starts only when the merger has room for its results.
                        offered = beats[0].valid
                        for p in range(1, pes):
                            offered &= ~active[p] | beats[p].valid
                        m.d.comb += [
                            advance.eq(~fetch_valid | pe[0].dot.operands.ready),
                            take.eq(offered & advance & (~first | (merger.room & ~packer_pending))),
                            merger.group_start.eq(take & first),
                            reading.eq(take),
                            sram.rd_addr.eq(sram_word), sram.rd_en.eq(advance & inside),
                            source_busy.eq(reduce(or_, [path.source.busy for path in pe]) | dist.busy
                                           | (banks.busy if banks is not None else 0)),
                            dot_error.eq(reduce(or_, [path.dot.error for path in pe])),
                        ]
                        # The first PE with an error (all a dense row can have is BAD_INDEX).
                        for path in reversed(pe):
                            with m.If(path.source.error != EngineError.NONE):
                                m.d.comb += source_error.eq(path.source.error)
                        if windows:
                            m.d.comb += [walker.first.eq(first), walker.take.eq(conv & take)]
                            with m.If(conv):
                                m.d.comb += [sram.rd_addr.eq(walker.addr), inside.eq(walker.inside)]
                        m.d.comb += [shared_steps.get(name, getattr(steps, name)).eq(step)
                                     for name, step in read_steps[value].items()]
                        with m.If(take & beats[0].payload.last):
                            m.d.sync += row_base.eq(row_base + pes)
            with m.If(advance):
                m.d.sync += [fetch_valid.eq(take), held_inside.eq(inside)]
            with m.If(start_layer):
                m.d.sync += row_base.eq(0)
            return banks

        def sparse_rows(pe, dist, merger, fifos, banks, source_busy, source_error, dot_error, size_word):
            # (Signals as arguments, not closure cells, as for pe_datapaths.)
            """A sparse layer on ``pes > 1`` PEs (model.contract.layout, "Processing elements").

            Each PE decodes its own sub-stream (its rows ``p, p + P, ..``), which the distributor deals
            it word by word, and runs on its own: its sparse row path, a fetch stage reading its own
            activation-SRAM port and ROM copy, its MAC lanes.  Their row results go to the requantizer
            in row order (ResultMerger, with room for all of a PE's rows).
            """
            m.d.comb += [dist.rows.eq(size_word[:16]), dist.row_words.eq(size_word[16:])]
            ports = [(sram.rd_addr, sram.rd_en, sram.rd_data)] + [(r.addr, r.en, r.data) for r in sram.reads]
            bank_busy = banks.busy if banks is not None else 0
            for p, path in enumerate(pe):
                source, dot = path.source, path.dot
                beat = source.beats.payload
                m.d.comb += path.configure(desc)
                m.d.comb += source.config.rows.eq((desc.out_features + (pes - 1 - p)) >> log2(pes))
                wiring.connect(m, dist.outs[p], source.words)
                # No more words for this PE: none queued for it and none left to deal.
                m.d.comb += source.dry.eq(reader.idle & ~bank_busy & ~dist.queued[p])
                wiring.connect(m, source.params, fifos[p].w_stream)
                wiring.connect(m, fifos[p].r_stream, dot.params)
                wiring.connect(m, dot.result, merger.results[p])
                rom_entry, sram_word, reads = path.lookup(beat)
                rd_addr, rd_en, rd_data = ports[p]
                # The MAC lanes never stall: the fetch stage takes a beat whenever one is offered, but a
                # row's first waits for room for its result.
                ready = ~beat.first | merger.rooms[p]
                take = Signal(name=f"sparse_take_pe{p}")
                fetch_valid = Signal(name=f"sparse_fetch_valid_pe{p}")
                held = Signal(beat.shape(), name=f"sparse_held_pe{p}")
                m.d.comb += [take.eq(source.beats.valid & ready), source.start.eq(start_layer),
                             source.beats.ready.eq(ready), rd_addr.eq(sram_word), rd_en.eq(reads),
                             *path.read_rom(desc, rom_entry, reads, beat, take),
                             pe_reading[p].eq(take & reads), sparse_reads[p].eq(take & reads),
                             merger.row_starts[p].eq(take & beat.first)]
                m.d.sync += [fetch_valid.eq(take), held.eq(beat)]
                operands = dot.operands
                m.d.comb += [operands.valid.eq(fetch_valid), operands.payload.activations.eq(rd_data),
                             operands.payload.first.eq(held.first), operands.payload.last.eq(held.last),
                             *path.weights(held, desc)]
            m.d.comb += [source_busy.eq(reduce(or_, [path.source.busy for path in pe]) | dist.busy | bank_busy),
                         dot_error.eq(reduce(or_, [path.dot.error for path in pe]))]
            for path in reversed(pe):   # the lowest PE with an error this cycle
                with m.If(path.source.error != EngineError.NONE):
                    m.d.comb += source_error.eq(path.source.error)
            m.d.comb += [shared_steps.get(name, getattr(steps, name)).eq(step)
                         for name, step in read_steps[LayerMode.HUFFMAN].items()]

        # Several PEs in a convolution: its positions overlap (the next one's stream is read while the rows
        # of this one still go through the requantizer); the packer starts a position once it has written
        # the last one's pixel (``packer_pending``), and the PEs take no beat of it before.
        overlap = pes > 1 and windows
        packer_pending = Signal(name="packer_pending")
        sparse_reads = Signal(pes, name="sparse_reads")   # bit p: sparse PE p reads an activation
        # Every row source's ``dry``: the reader's; a sparse PE's own (sparse_rows) follows and wins.  (In
        # other engines it comes after the PE datapaths, as it always has: the order of statements is part
        # of an engine's Verilog, and the area cache is keyed on it.)
        dry = [source.dry.eq(reader.idle) for source in sources]
        if sparse_pes:
            m.d.comb += dry
        banks = pe_datapaths(source_busy, source_error, dot_error) if pes > 1 else None
        if not sparse_pes:
            m.d.comb += dry

        # SRAM writes come from the input load or from the packer.
        load_words = Signal(COUNT_BITS)
        m.d.comb += [
            sram.wr_addr.eq(packer.write.payload.addr),
            sram.wr_data.eq(packer.write.payload.data),
            sram.wr_en.eq(packer.write.valid),
        ]

        # Store: SRAM -> gearbox -> DRAM writes.
        store_read, store_written = Signal(COUNT_BITS), Signal(COUNT_BITS)
        store_pending = Signal()
        m.d.comb += [
            store_gb.i.payload.eq(sram.rd_data),
            store_gb.i.valid.eq(store_pending),
            self.dram_wr.payload.addr.eq(out_ptr + store_written),
            self.dram_wr.payload.data.eq(store_gb.o.payload),
            self.dram_wr.valid.eq(store_gb.o.valid),
            store_gb.o.ready.eq(self.dram_wr.ready),
        ]
        m.d.sync += store_written.eq(store_written + (self.dram_wr.valid & self.dram_wr.ready))

        m.d.comb += load_gb.o.ready.eq(1)

        def read(addr, rows, row_words, wsram_offset=None):
            """Read ``rows * row_words`` words; with ``wsram_offset``, the layer's stream words from
            ``addr`` on, which a resident layer keeps from its weight-SRAM address plus the offset."""
            cmd = reader.cmd.payload
            m.d.comb += [reader.cmd.valid.eq(1), cmd.addr.eq(addr), cmd.rows.eq(rows), cmd.row_words.eq(row_words)]
            if wsram_offset is not None:
                m.d.comb += [cmd.place.eq(place), cmd.wsram_addr.eq(desc.wsram_addr + wsram_offset)]

        # A stream's length is a product of two descriptor (or size-word) fields: computed once per
        # layer, one bit per cycle, and checked against the DRAM's end (the job's ``dram_words``) and,
        # for a resident stream, the weight SRAM before any of the stream is read.
        m.submodules.place_multiplier = place_mul = SerialMultiplier(COUNT_BITS)

        def check_placement(rows, row_words):
            m.d.comb += [place_mul.start.eq(1), place_mul.a.eq(rows), place_mul.b.eq(row_words)]
            m.next = "PLACE"

        def past_end(addr, words, bound=dram_words):
            """Reading ``words`` words from ``addr`` would pass the DRAM's end ``bound`` (none when it is 0)."""
            return (bound != 0) & (addr + words > bound)

        def end_layer(out_features):
            """The layer's output, ``out_features`` values, is the next one's input."""
            m.d.sync += [select.eq(~select), features.eq(out_features), layer.eq(layer + 1),
                         desc_ptr.eq(desc_ptr + DESC_WORDS)]
            if cfg.residual:
                with m.If(save):
                    m.d.sync += saved.eq(out_features)
            with m.If(layer == n_layers - 1):
                m.d.sync += [store_read.eq(0), store_written.eq(0)]
                m.next = "STORE"
            with m.Else():
                m.next = "DESC_BOUND"
                if columns:
                    with m.If(prefetch_valid):
                        m.next = "DESC_PREFETCHED"

        # Pooling: the tap and the lane-word walked now, and the tap read last cycle.
        pool_tap_x, pool_tap_y, pool_group = (Signal(COUNT_BITS, name=n) for n in ("pool_tap_x", "pool_tap_y",
                                                                                   "pool_group"))
        pool_valid, pool_first, pool_last, pool_inside, pool_read = (
            Signal(name=n) for n in ("pool_valid", "pool_first", "pool_last", "pool_inside", "pool_read"))
        pool_written = Signal(COUNT_BITS)
        if windows:
            # Each pooling unit reduces the walked taps of its own kind and writes its lane-words in order.
            units = [(pool, ~average)] + ([(avg, average)] if cfg.avgpool else [])
            for unit, selected in units:
                m.d.comb += [unit.valid.eq(pool_valid & selected), unit.first.eq(pool_first),
                             unit.last.eq(pool_last), unit.inside.eq(pool_inside), unit.data.eq(sram.rd_data)]
                with m.If(unit.done):
                    m.d.comb += [sram.wr_addr.eq(pool_written), sram.wr_data.eq(unit.result), sram.wr_en.eq(1)]
                    m.d.sync += pool_written.eq(pool_written + 1)
            with m.If(setup.start):
                m.d.sync += pool_written.eq(0)
        if cfg.avgpool:
            m.d.comb += [avg.mult.eq(desc.pool_mult), avg.shift.eq(desc.pool_shift), avg.act.eq(desc.pool_act),
                         avg.relu.eq(relu), avg.floor.eq(floor),
                         pool_events["adds"].eq(Mux(pool_read & average, lanes, 0))]
        if cfg.residual:
            # The add takes the lane-words read last cycle; a saving layer's writes go to the skip buffer too.
            base = add_word << log2(lanes)
            m.d.comb += [adder.valid.eq(add_valid), adder.a.eq(sram.rd_data), adder.b.eq(skip.rd_data),
                         adder.mult.eq(desc.pool_mult), adder.shift.eq(desc.pool_shift), adder.act.eq(desc.pool_act),
                         adder.relu.eq(relu), adder.floor.eq(floor), residual_adds.eq(Mux(add_read, lanes, 0))]
            m.d.sync += adder.keep.eq(Cat(base + i < features for i in range(lanes)))
            with m.If(adder.done):
                m.d.comb += [sram.wr_addr.eq(add_written), sram.wr_data.eq(adder.result), sram.wr_en.eq(1)]
                m.d.sync += add_written.eq(add_written + 1)
            m.d.comb += [skip.wr_addr.eq(sram.wr_addr), skip.wr_data.eq(sram.wr_data),
                         skip.wr_en.eq(sram.wr_en & save & ~sram.write_same)]

        # The size word: from the reader, or with several PEs from the weight banks when the layer is resident.
        size_asked, size_taken = Signal(name="size_asked"), Signal(name="size_taken")
        size_in = reader.data
        if banks is not None and sized_modes:
            size_in = stream.Signature(WORD_BITS).create(path=("size_in",))
            from_banks = place == Place.SRAM
            m.d.comb += [size_in.valid.eq(Mux(from_banks, banks.out.avail != 0, reader.data.valid)),
                         size_in.payload.eq(Mux(from_banks, banks.out.words[0], reader.data.payload))]

        def fail(code):
            m.d.sync += error.eq(code)
            m.next = "ERROR"

        def fetch(state, addr, n_words, then):
            """Two states: ``state`` asks for ``n_words`` words at ``addr``, ``state_READ`` shifts
            them into ``fetched`` (word 0 lowest), then the FSM goes to ``then``."""
            with m.State(state):
                read(addr, 1, n_words)
                m.d.sync += n_fetched.eq(0)
                with m.If(reader.cmd.ready):
                    m.next = f"{state}_READ"
            with m.State(f"{state}_READ"):
                m.d.comb += reader.data.ready.eq(1)
                with m.If(reader.data.valid):
                    m.d.sync += [fetched.eq(Cat(fetched[WORD_BITS:], reader.data.payload)),
                                 n_fetched.eq(n_fetched + 1)]
                    with m.If(n_fetched == n_words - 1):
                        if n_words < JOB_WORDS:   # align word 0 to the bottom
                            m.d.sync += fetched.eq(Cat(fetched[WORD_BITS * (JOB_WORDS - n_words + 1):],
                                                       reader.data.payload))
                        m.next = then

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += error.eq(0)
                    m.next = "JOB"
            fetch("JOB", 0, JOB_WORDS, "JOB_CHECK")
            with m.State("JOB_CHECK"):
                # The same checks as model.contract.descriptor.read_job_header and check_input.
                m.d.sync += [n_layers.eq(job.n_layers), n_images.eq(job.n_images), desc_addr.eq(job.desc_addr),
                             in_ptr.eq(job.input_addr), input_features.eq(job.input_features),
                             out_ptr.eq(job.output_addr), dram_words.eq(job.dram_words), image.eq(0)]
                with m.If((job.magic != JOB_MAGIC) | (job.n_layers == 0) | (job.n_images == 0)):
                    fail(EngineError.BAD_JOB)
                with m.Elif((job.input_features == 0) | (job.input_features > cfg.max_features)):
                    fail(EngineError.BAD_SHAPE)
                with m.Elif(past_end(job.desc_addr, DESC_WORDS, job.dram_words)):
                    # The full 32-bit address: ``desc_addr`` keeps only the DRAM's address bits.
                    fail(EngineError.BAD_STREAM)
                with m.Else():
                    m.next = "LOAD"
            with m.State("LOAD"):
                read(in_ptr, 1, vector_words(input_features))
                m.d.sync += [load_words.eq(0), select.eq(0), features.eq(input_features), layer.eq(0),
                             desc_ptr.eq(desc_addr)]
                if cfg.residual:
                    m.d.sync += saved.eq(0)
                with m.If(reader.cmd.ready):
                    m.next = "LOAD_DATA"
            with m.State("LOAD_DATA"):
                wiring.connect(m, reader.data, load_gb.i)
                m.d.comb += [sram.write_same.eq(1), sram.wr_addr.eq(load_words),
                             sram.wr_data.eq(load_gb.o.payload), sram.wr_en.eq(load_gb.o.valid)]
                with m.If(load_gb.o.valid):
                    m.d.sync += load_words.eq(load_words + 1)
                    with m.If(load_words == lane_words(input_features) - 1):
                        m.d.sync += in_ptr.eq(in_ptr + vector_words(input_features))
                        m.next = "DESC_BOUND"
            with m.State("DESC_BOUND"):
                with m.If(past_end(desc_ptr, DESC_WORDS)):
                    fail(EngineError.BAD_STREAM)
                with m.Else():
                    m.next = "DESC"
                if columns:   # (a prefetched descriptor was within the DRAM's end)
                    with m.If(prefetch_valid):
                        m.next = "DESC_PREFETCHED"
            fetch("DESC", desc_ptr, DESC_WORDS, "DESC_CHECK")
            with m.State("DESC_CHECK"):
                with m.If(check_error != EngineError.NONE):
                    fail(check_error)
                with m.Else():
                    m.d.sync += [relu.eq(desc.relu), floor.eq(desc.floor), mode.eq(desc.mode), packer_base.eq(0), first_position.eq(1),
                                 conv.eq(desc.kind == LayerKind.CONV), average.eq(desc.kind == LayerKind.AVGPOOL)]
                    if cfg.nearest_prototype:   # the kind picks the unit (its rows are VQ)
                        with m.If(desc.kind == LayerKind.NEAREST):
                            m.d.sync += mode.eq(NEAREST_PATH)
                    if cfg.residual:
                        m.d.sync += save.eq(desc.as_value()[SAVE_BIT])
                    # A sized stream's length is known after its size word (SIZE_READ).
                    with m.If(~sized(desc.mode)):
                        check_placement(desc.out_features, desc.row_words)
                    if sized_modes:
                        with m.If(sized(desc.mode)):
                            m.next = "SIZE"
                    # An add has neither a window nor a stream (an engine without it never gets here with one).
                    windowed = ((desc.kind != LayerKind.FC) & (desc.kind != LayerKind.ADD) if cfg.residual
                                else desc.kind != LayerKind.FC)
                    if windows:   # a window is checked, and its steps derived, before its stream
                        with m.If(windowed):
                            m.d.comb += setup.start.eq(1)
                            m.next = "WINDOW"
                    if cfg.residual:
                        with m.If(desc.kind == LayerKind.ADD):
                            m.d.sync += [add_word.eq(0), add_written.eq(0)]
                            m.next = "ADD"
                    if columns:   # resident in the column unit: image 0 reads its stream, later images nothing
                        with m.If((desc.kind == LayerKind.FC) & (desc.mode == LayerMode.COLUMNS)):
                            with m.If(unit.unfit):
                                fail(EngineError.BAD_STREAM)
                            with m.Elif(image != 0):
                                m.next = "COLUMNS_START"
            if cfg.residual:
                with m.State("ADD"):
                    # One lane-word of the input and of the skip buffer per cycle, added next cycle.
                    m.d.comb += [sram.rd_addr.eq(add_word), sram.rd_en.eq(1), skip.rd_addr.eq(add_word),
                                 skip.rd_en.eq(1), add_read.eq(1)]
                    m.d.sync += [add_valid.eq(1), add_word.eq(add_word + 1)]
                    with m.If(add_word == lane_words(desc.in_features) - 1):
                        m.next = "ADD_DRAIN"
                with m.State("ADD_DRAIN"):
                    m.d.sync += add_valid.eq(0)
                    with m.If(~adder.busy):
                        end_layer(desc.out_features)
            if windows:
                with m.State("WINDOW"):
                    with m.If(~setup.busy):
                        with m.If(setup.error != EngineError.NONE):
                            fail(setup.error)
                        with m.Else():
                            m.d.comb += walker.restart.eq(1)
                            with m.If(reduce(or_, [desc.kind == kind for kind in pooling_kinds()])):
                                m.d.sync += [pool_tap_x.eq(0), pool_tap_y.eq(0), pool_group.eq(0)]
                                m.next = "POOL"
                            with m.Else():
                                check_placement(desc.out_features, desc.row_words)
                with m.State("POOL"):
                    # One tap per cycle: the walker's address into the SRAM now, the maximum next cycle.
                    tap_last_x = pool_tap_x == desc.kernel_w - 1
                    row_last = tap_last_x & (pool_tap_y == desc.kernel_h - 1)
                    group_last = pool_group == setup.steps.groups - 1
                    m.d.comb += [walker.pooling.eq(1), walker.group.eq(pool_group), walker.take.eq(1),
                                 walker.first.eq((pool_tap_x == 0) & (pool_tap_y == 0)),
                                 sram.rd_addr.eq(walker.addr), sram.rd_en.eq(walker.inside), pool_read.eq(walker.inside)]
                    m.d.sync += [pool_valid.eq(1), pool_first.eq(walker.first), pool_last.eq(row_last),
                                 pool_inside.eq(walker.inside), pool_tap_x.eq(pool_tap_x + 1)]
                    with m.If(tap_last_x):
                        m.d.sync += [pool_tap_x.eq(0), pool_tap_y.eq(pool_tap_y + 1)]
                    with m.If(row_last):
                        m.d.sync += [pool_tap_y.eq(0), pool_group.eq(pool_group + 1)]
                        with m.If(group_last):
                            m.d.sync += pool_group.eq(0)
                            m.d.comb += walker.next_position.eq(1)
                            with m.If(walker.last_position):
                                m.next = "POOL_DRAIN"
                with m.State("POOL_DRAIN"):
                    m.d.sync += pool_valid.eq(0)
                    # Average pooling's last lane-words are still in its requantizers.
                    with m.If(~avg.busy if cfg.avgpool else Const(1)):
                        end_layer(setup.steps.out_map)
            if sized_modes:
                with m.State("SIZE"):
                    with m.If(past_end(desc.stream_addr, 1)):
                        fail(EngineError.BAD_STREAM)
                    with m.Else():
                        read(desc.stream_addr, 1, 1, wsram_offset=0)
                        with m.If(reader.cmd.ready):
                            m.d.comb += size_asked.eq(1)
                            m.next = "SIZE_READ"
                with m.State("SIZE_READ"):
                    m.d.comb += [reader.data.ready.eq(1), size_taken.eq(size_in.valid)]
                    with m.If(size_in.valid):
                        m.d.sync += size_word.eq(size_in.payload)
                        # The multiplier takes a cycle per bit of its second operand: the size word's
                        # rows (a sparse stream's C * P, a few bits) rather than its row words.
                        check_placement(size_in.payload[16:], size_in.payload[:16])
            with m.State("PLACE"):
                with m.If(~place_mul.busy):
                    misplaced = (desc.resident & (desc.wsram_addr + place_mul.product + sized(mode)
                                                  > cfg.weight_sram_words)) if wsram else Const(0)
                    with m.If(past_end(desc.stream_addr + sized(mode), place_mul.product) | misplaced):
                        fail(EngineError.BAD_STREAM)
                    with m.Else():
                        m.next = "STREAM"
            with m.State("STREAM"):
                # A sized stream's rest comes in one read: its size word says exactly how long it is.
                with m.If(sized(mode)):
                    read(desc.stream_addr + 1, size_word[:16], size_word[16:], wsram_offset=1)
                with m.Else():
                    read(desc.stream_addr, desc.out_features, desc.row_words, wsram_offset=0)
                with m.If(reader.cmd.ready):
                    m.d.comb += [start_layer.eq(1), packer.start.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                if columns:
                    # The next descriptor: the next layer's, or after the last layer the next image's first.
                    last = layer == n_layers - 1
                    next_desc = Mux(last, desc_addr, desc_ptr + DESC_WORDS)
                    with m.If((mode == LayerMode.COLUMNS) & reader.idle & ~prefetching & ~prefetch_valid
                              & (~last | (image != n_images - 1)) & ~past_end(next_desc, DESC_WORDS)):
                        read(next_desc, 1, DESC_WORDS)
                        with m.If(reader.cmd.ready):
                            m.d.sync += [prefetching.eq(1), prefetch_words.eq(0)]
                with m.If(source_error != EngineError.NONE):
                    fail(source_error)
                with m.Elif(dot_error):
                    fail(EngineError.BAD_INDEX)
                drained = ~source_busy & reader.idle & ~packer.busy
                if overlap:   # a convolution's next position starts while the packer writes this one's pixel
                    drained = ~source_busy & reader.idle & (~packer.busy | (conv & ~walker.last_position
                                                                            & ~packer_pending))
                with m.Elif(drained):
                    # Every row read and written, and whatever followed them drained.
                    if windows:
                        with m.If(conv & ~walker.last_position):   # the convolution's next position
                            m.d.comb += walker.next_position.eq(1)
                            if overlap:   # the packer moves on when it starts the position (below)
                                m.d.sync += first_position.eq(0)
                            else:
                                m.d.sync += [packer_base.eq(packer_base + lane_words(desc.out_features)),
                                             first_position.eq(0)]
                            m.next = "STREAM"
                        with m.Elif(conv):
                            end_layer(setup.steps.out_map)
                        with m.Else():
                            end_layer(out_values)
                    else:
                        end_layer(out_values)
            if columns:
                with m.State("COLUMNS_START"):
                    m.d.comb += start_layer.eq(1)   # the unit writes its outputs itself: no packer
                    m.next = "RUN"
            with m.State("STORE"):
                # Keep one SRAM word in flight into the gearbox; hold it while it waits.
                m.d.comb += sram.rd_addr.eq(store_read)
                store_advance = ~store_pending | store_gb.i.ready
                m.d.comb += sram.rd_en.eq(store_advance)
                with m.If(store_advance):
                    with m.If(store_read != lane_words(features)):
                        m.d.sync += [store_pending.eq(1), store_read.eq(store_read + 1)]
                    with m.Else():
                        m.d.sync += store_pending.eq(0)
                with m.If((store_written == vector_words(features)) & ~store_pending):
                    m.d.sync += [out_ptr.eq(out_ptr + vector_words(features)), image.eq(image + 1)]
                    with m.If(image == n_images - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "LOAD"
            if columns:
                with m.State("DESC_PREFETCHED"):
                    # The prefetched descriptor is checked as one read now would be: the verdict is registered.
                    m.d.comb += check.descriptor.eq(prefetched[:DescriptorLayout.size])
                    m.d.sync += [fetched.eq(prefetched), prefetch_valid.eq(0)]
                    m.next = "DESC_CHECK"
            with m.State("DONE"):
                with m.If(self.start):
                    m.d.sync += error.eq(0)
                    m.next = "JOB"
            with m.State("ERROR"):
                pass

        # ``done`` a cycle after the FSM finishes: the event counters add each step a cycle late.
        m.d.sync += self.done.eq((fsm.ongoing("DONE") & ~self.start) | fsm.ongoing("ERROR"))
        busy = ~fsm.ongoing("IDLE") & ~fsm.ongoing("DONE") & ~fsm.ongoing("ERROR")
        between_layers = ~busy | fsm.ongoing("JOB") | fsm.ongoing("JOB_READ") | fsm.ongoing("JOB_CHECK") \
            | fsm.ongoing("LOAD") | fsm.ongoing("LOAD_DATA") | fsm.ongoing("STORE")
        m.d.comb += self.phase.eq(Mux(between_layers, 0, layer + 1))
        restart = self.start & ~busy
        m.d.comb += [self.busy.eq(busy), self.error.eq(error)]
        for dot in dots:
            m.d.comb += dot.clear.eq(restart)

        # --- event counters (model.contract.counters); those per memory read are set per mode above
        storing = fsm.ongoing("STORE")
        sram_reads = ((reading & inside & ~storing) | pool_read
                      | (storing & sram.rd_en & (store_read != lane_words(features))))
        m.d.comb += [
            steps.dram_read_words.eq(self.dram_rd.resp.valid & self.dram_rd.resp.ready),
            steps.dram_write_words.eq(self.dram_wr.valid & self.dram_wr.ready),
            steps.sram_reads.eq(sram_reads),
            steps.sram_writes.eq(sram.wr_en),
            steps.cycles.eq(busy),
            steps.stall_cycles.eq(busy & reader.data.ready & ~reader.data.valid),
            counters.clear.eq(restart),
            self.counters.eq(counters.counters),
        ]
        if sparse_pes:   # each sparse PE reads its own activations
            sram_reads = sram_reads + sum(sparse_reads[p] for p in range(pes))
            m.d.comb += steps.sram_reads.eq(sram_reads)
        if columns:   # the column unit writes its output lane-words itself (the packer is not started)
            with m.If(running & (mode == LayerMode.COLUMNS)):
                m.d.comb += [sram.wr_addr.eq(unit.wr_addr), sram.wr_data.eq(unit.wr_data), sram.wr_en.eq(unit.wr_en)]
            with m.If(fsm.ongoing("STREAM") & (mode == LayerMode.COLUMNS)):
                m.d.comb += packer.start.eq(0)
        if columns:   # the next descriptor's words, while a column-wise layer runs
            with m.If(prefetching):
                m.d.comb += reader.data.ready.eq(1)
                with m.If(reader.data.valid):
                    m.d.sync += [prefetched.eq(Cat(prefetched[WORD_BITS:], reader.data.payload)),
                                 prefetch_words.eq(prefetch_words + 1)]
                    with m.If(prefetch_words == DESC_WORDS - 1):
                        m.d.sync += [prefetching.eq(0), prefetch_valid.eq(1)]
            with m.If(self.start & ~busy):
                m.d.sync += [prefetching.eq(0), prefetch_valid.eq(0)]
        if columns:   # the column unit reads the activations itself, and is told where a job and an image start
            sram_reads = sram_reads + unit.events.sram_reads
            m.d.comb += [steps.sram_reads.eq(sram_reads),
                         unit.new_job.eq(fsm.ongoing("JOB_CHECK")), unit.new_image.eq(fsm.ongoing("LOAD")),
                         unit.start.eq(start_layer & (mode == LayerMode.COLUMNS)), unit.fill.eq(image == 0),
                         unit.dry.eq(reader.idle), unit.sram_data.eq(sram.rd_data),
                         unit.layer.in_features.eq(desc.in_features), unit.layer.out_features.eq(desc.out_features),
                         unit.layer.in_words.eq(lane_words(desc.in_features)),
                         unit.layer.out_words.eq(lane_words(desc.out_features)), unit.layer.k.eq(desc.row_words),
                         unit.relu.eq(relu), unit.floor.eq(floor),
                         unit.layer.kept.eq(desc.as_value()[COLUMNS_KEPT_WORD * WORD_BITS:][:WORD_BITS]),
                         unit.layer.mult.eq(desc.pool_mult), unit.layer.shift.eq(desc.pool_shift),
                         unit.layer.act.eq(desc.pool_act)]
        if cfg.residual:   # an add reads the input and the skip buffer; a saving layer writes both
            m.d.comb += [steps.sram_reads.eq(sram_reads + Mux(add_read, 2, 0)),
                         steps.sram_writes.eq(sram.wr_en + skip.wr_en)]
        for name in dict.fromkeys([*counted, *unit_events]):
            step = counted.get(name, 0) + unit_events.get(name, 0)
            m.d.comb += getattr(steps, name).eq(step + shared_steps[name] if name in shared_steps else step)
        if wsram:   # (the column unit's accesses added only where it exists: the others' Verilog stays as it was)
            m.d.comb += [steps.weight_sram_reads.eq(reader.events.wsram_read + unit.events.weight_sram_reads
                                                    if columns else reader.events.wsram_read),
                         steps.weight_sram_writes.eq(reader.events.wsram_write + unit.events.weight_sram_writes
                                                     if columns else reader.events.wsram_write)]
        if overlap:
            with m.If(start_layer & conv & ~first_position):
                m.d.comb += packer.start.eq(0)
                m.d.sync += packer_pending.eq(1)
            with m.If(packer_pending & ~packer.busy):
                m.d.comb += packer.start.eq(1)
                m.d.sync += [packer_pending.eq(0), packer_base.eq(packer_base + lane_words(desc.out_features))]
        if banks is not None:
            # Several PEs: a resident stream's words go to the banks as image 0 reads them from DRAM, and
            # come from the banks after (the reader, without a weight SRAM, reads DRAM only).
            # A sized stream's size word is the resident stream's first word (model.contract.layout): image 0
            # writes it as it takes it, later images read it from the banks too.
            # (An engine without sized streams has no SIZE states: asking the FSM about one would add it.)
            from_sram = place == Place.SRAM
            sizing = fsm.ongoing("SIZE_READ") if sized_modes else None
            fill = ((running | sizing) if sized_modes else running) & (place == Place.FILL) \
                & reader.data.valid & reader.data.ready
            fill_addr = Signal(len(desc.wsram_addr))
            if sized_modes:
                with m.If(size_asked):
                    m.d.sync += fill_addr.eq(desc.wsram_addr)
                with m.Elif(start_layer):
                    m.d.sync += fill_addr.eq(desc.wsram_addr + sized(mode))
                with m.Elif(fill):
                    m.d.sync += fill_addr.eq(fill_addr + 1)
                with m.If((fsm.ongoing("STREAM") | fsm.ongoing("SIZE")) & from_sram):
                    m.d.comb += reader.cmd.valid.eq(0)
                with m.If(sizing & from_sram):
                    m.d.comb += banks.out.taken.eq(size_taken)
                m.d.comb += [banks.start.eq((start_layer | size_asked) & from_sram),
                             banks.addr.eq(Mux(size_asked, desc.wsram_addr, desc.wsram_addr + sized(mode))),
                             banks.count.eq(Mux(size_asked, 1, place_mul.product))]
            else:
                with m.If(start_layer):
                    m.d.sync += fill_addr.eq(desc.wsram_addr)
                with m.Elif(fill):
                    m.d.sync += fill_addr.eq(fill_addr + 1)
                with m.If(fsm.ongoing("STREAM") & from_sram):
                    m.d.comb += reader.cmd.valid.eq(0)
                m.d.comb += [banks.start.eq(start_layer & from_sram), banks.addr.eq(desc.wsram_addr),
                             banks.count.eq(place_mul.product)]
            m.d.comb += [banks.wr_addr.eq(fill_addr), banks.wr_data.eq(reader.data.payload), banks.wr_en.eq(fill),
                         steps.weight_sram_reads.eq(banks.out.taken), steps.weight_sram_writes.eq(fill)]
        return m
