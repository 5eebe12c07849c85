"""The engine's contract: DRAM image layout, layer descriptors, error codes, counters.

The hardware (``hw/``) and the golden model (``model/golden/``) both read the
DRAM image laid out here; nothing else is shared between them.  All addresses
are in 32-bit words.

DRAM image
==========
``JOB_WORDS`` words of job header at address 0:

====  ==============================================================
word  contents
====  ==============================================================
0     ``JOB_MAGIC``
1     ``n_layers`` [15:0], ``n_images`` [31:16]
2     address of the descriptor table
3     address of image 0's input vector
4     ``input_features`` (must equal layer 0's ``in_features``)
5     address of image 0's output vector
6     ``dram_words``: the DRAM's size in words, written by the host
      (``Program.dram_image`` does).  A layer whose descriptor or stream
      would be read at or past it stops the job with ``BAD_STREAM``, before
      any of it is read.  0: no bound (the engine reads what the DRAM holds).
7     reserved, zero
====  ==============================================================

Then ``n_layers`` descriptors of ``DESC_WORDS`` words:

====  ==============================================================
word  contents
====  ==============================================================
0     ``in_features`` [15:0], ``out_features`` [31:16]
1     VQ, HUFFMAN, RVQ, PQ: ``codebook_base`` [15:0] (ROM entry), ``codebook_size`` [31:16]
      (RVQ: each stage's size; PQ: each column block's); E8P: not read, zero;
      PVQ: ``K`` [15:0] (pulses per sub-vector), ``entry_bits`` [31:16];
      AVGPOOL, ADD: the layer's requantization word (a row stream's format, below)
2     address of the layer's row stream
3     VQ, PVQ: ``row_words`` [15:0]; HUFFMAN: ``table_words`` [15:0];
      flags [31:16]: bit 0 ReLU, bit 1 resident, bit 2 floor activation (not with ReLU:
      ``BAD_MODE``), bit 3 compact rows, bits 4..7 mode (:class:`LayerMode`),
      bits 8..11 kind (:class:`LayerKind`), bit 12 save (``FLAG_SAVE``, below),
      bits 13..15 the mode's parameter (``MODE_PARAM``: RVQ ``stages - 1``, PQ
      ``log2`` of the block width in sub-vectors; read by no other mode)
4     ``wsram_addr`` [23:0]: the resident stream's word address in the weight SRAM;
      windowed kinds: ``channel_groups`` [31:24]
5..7  windowed kinds (CONV, MAXPOOL, AVGPOOL): the window (:mod:`model.contract.window`);
      FC: reserved, zero
====  ==============================================================

Layer kinds
===========
A layer's *kind* (:class:`LayerKind`) says what its rows are applied to; its
*mode* says how the rows are coded.

* ``FC``: one output per row, each row a dot product with the whole input vector.
* ``CONV``: a 2-D convolution (1-D is a height of 1).  Feature maps are HWC,
  each pixel's channels padded with zeros to ``channel_groups *
  vector_align(lanes)`` (a whole number of lane-words).  The descriptor's
  ``in_features`` is the length of a row, ``kernel_h * kernel_w`` padded
  channels (the im2col patch in (ky, kx, channel) order) and
  ``out_features`` the output channels (rows).  For every output position,
  row-major, the engine reads the layer's whole row stream again and takes
  each row's dot product with the position's window, read from the
  activation SRAM by an address generator (no copy); a tap outside the input
  map (padding) is zero and reads nothing.  The position's outputs are
  written as one padded pixel.  Only dense modes (VQ, PVQ).
* ``MAXPOOL``: per channel, the maximum over the window's taps inside the
  input map (a window with none gives ``ACT_MIN``); no stream, the mode and
  codebook fields are not read.  ``in_features`` is ``kernel_h * kernel_w``
  padded channels and ``out_features`` the padded channels.
* ``AVGPOOL``: average pooling, shaped as ``MAXPOOL`` (same window, same
  walk, one tap's lane-word per cycle).  Per channel, the sum of the
  window's taps, a tap outside the input map counting as zero (PyTorch's
  ``count_include_pad=True``), in a ``POOL_SUM_BITS``-wide accumulator
  (:mod:`model.contract.window`: it cannot overflow), then requantized as a
  row's accumulator is (:func:`model.contract.fixedpoint.requantize`) with
  the one requantization word in descriptor word 1 (``mult`` [15:0],
  ``shift`` [21:16], activation parameter [31:22]) and the ReLU and floor
  flags of word 3: ``out = sat(round(sum * mult / 2**shift))``.  The
  lowering picks ``mult / 2**shift ~ in_scale / (kernel_h * kernel_w *
  out_scale)`` with ``out_scale = in_scale``, so the divisor is always the
  whole window, ``kernel_h * kernel_w``.  No stream; the mode, stream and
  ``row_words`` fields are not read.  Counters per image: the descriptor's
  ``DESC_WORDS`` DRAM reads, one activation-SRAM read per lane-word of a tap
  inside the map, one write per output lane-word (as ``MAXPOOL``) and
  ``lanes`` ``adds`` per lane-word read (padding lanes included, as
  ``macs`` counts them); a padding tap reads and adds nothing.
* ``ADD``: the residual connection's elementwise add (engines with
  ``residual``, :class:`model.contract.config.EngineConfig`).  No rows, no
  window (words 4..7 are not read); ``in_features`` and ``out_features`` are
  both ``C``, the size of the layer's input (else ``BAD_SHAPE``; the input
  must be the previous layer's output as for FC, else ``BAD_CHAIN``).  For
  each lane-word ``i`` of the input vector, the engine reads lane-word ``i``
  of the input and lane-word ``i`` of the *skip buffer* in the same cycle,
  adds them lane-wise (int8 + int8) and requantizes each lane's sum as
  ``AVGPOOL`` does its window sums, with the requantization word in
  descriptor word 1 and the ReLU and floor flags of word 3: ``out =
  act(sat(round((x + skip) * mult / 2**shift)))``; lanes past ``C`` are
  written as zero.  One lane-word per cycle, written to the other half of
  the activation SRAM.  The lowering gives both operands one quantization
  scale, so ``mult / 2**shift ~ operand_scale / out_scale``.

* ``NEAREST``: the nearest-prototype unit (engines with ``nearest_prototype``,
  :class:`model.contract.config.EngineConfig`; see "Nearest-prototype layers"
  below).  Rows in VQ mode; the output is one value, the winning row's label.

Nearest-prototype layers (``LayerKind.NEAREST``)
================================================
The layer's ``out_features`` rows are prototypes, coded exactly as a VQ
layer's rows (``LayerMode.VQ``: one codebook index per sub-vector, the
codewords in the ROM; the stream may be resident in the weight SRAM).  For
the input ``x`` (the previous layer's output, ``in_features`` int8 values)
the engine computes each row's squared Euclidean distance
``d_r = sum_i (x_i - p_r[i])**2`` and writes **one** output value: the label
of the row with the smallest distance, ties to the lowest row.

* Row header: word 0 (the bias word of an FC row) is the row's label, 0 to
  ``ACT_MAX``; word 1 (the requantization word) is not read and is written
  as zero.  A label outside 0..``ACT_MAX`` is ``BAD_INDEX`` when its row is
  read (the golden model: at the first such row).
* One beat per sub-vector, as VQ: the index path reads one entry per cycle,
  the fetch stage one codeword from the ROM and one activation lane-word;
  the unit forms ``lanes`` 9-bit differences, squares them (a 9 x 9-bit
  multiplier per lane, 16-bit squares: ``SQUARE_BITS``) and adds them into the
  row's distance, ``distance_bits(max_features)`` wide
  (:func:`model.contract.fixedpoint.distance_bits`: it cannot overflow).  At
  a row's last beat the distance is compared with the best so far (strictly
  smaller wins, so ties keep the lower row); after the last row the winning
  label passes the requantizer unchanged (``mult`` 1, ``shift`` 0, no
  activation) into output value 0.  The layer's output vector is
  ``NEAREST_OUTPUTS`` = 1 value.
* Descriptor rules (after the common ones): ReLU or floor set, or a mode
  other than VQ, or an engine without the unit: ``BAD_MODE``;
  ``in_features`` not a multiple of ``lanes`` (a padding lane would add
  ``p**2`` to every distance): ``BAD_SHAPE``; ``in_features`` other than the
  previous layer's output: ``BAD_CHAIN``; then VQ's codebook and stream
  rules (``BAD_CODEBOOK``, ``BAD_STREAM``) and indices (``BAD_INDEX``).
* Counters per beat: one ``rom_reads``, one ``sram_reads``, ``lanes``
  ``macs`` (the squares, priced as 8-bit multiply-accumulates) and ``lanes``
  ``adds`` (the differences); per image, the descriptor and stream words
  (``dram_read_words``, or ``weight_sram_reads`` when resident) and
  ``lane_words(1)`` ``sram_writes`` for the output.  The argmin's compare
  (one per row) is not counted (control, as the accumulators' row ends).

Skip buffer (``FLAG_SAVE``)
===========================
An engine with ``residual`` has a *skip buffer* of ``max_features`` values
beside the activation SRAM.  A layer of any kind with ``FLAG_SAVE`` set
writes each output lane-word into the skip buffer as well, in the same cycle
as into the activation SRAM (no extra cycles), and the engine records the
saved vector's size.  An ``ADD`` layer reads it; an ``ADD`` may itself carry
``FLAG_SAVE`` (residual blocks in sequence: its output is then the next
block's skip).  The saved size is cleared when each image's input is loaded.
An ``ADD`` whose ``in_features`` differs from the saved size (0 when nothing
was saved in this image) stops the job with ``BAD_CHAIN``, as an input of
the wrong size does.  An engine without ``residual`` has no skip buffer and
ignores ``FLAG_SAVE``, as it ignores the other unused flag bits (it runs no
``ADD``: ``BAD_MODE``), so its logic is what it was before the skip buffer;
the program writer sets ``residual`` whenever a layer saves.  Counters: each skip-buffer write is an ``sram_writes`` (a
saving layer counts its output writes twice); an ``ADD`` counts, per image,
the descriptor's ``DESC_WORDS`` DRAM reads, two ``sram_reads`` per lane-word
(the input and the skip buffer), one ``sram_writes`` per output lane-word and
``lanes`` ``adds`` per lane-word.

A windowed layer's input is the previous layer's output read as an
``in_height x in_width`` map; its output is the ``out_height x out_width``
map, ``out_height * out_width * round_up(channels, vector_align(lanes))``
values, which the next layer takes as its input (a following FC layer takes
it flattened in HWC order).

Weight SRAM (resident layers)
=============================
An engine may have an on-chip weight SRAM of ``weight_sram_words`` 32-bit
words (:class:`model.contract.config.EngineConfig`).  A layer whose resident
flag is set keeps its stream there: the stream's words (a HUFFMAN stream's
size word included) are word for word at ``wsram_addr``.  In a job's image 0
the engine reads the stream from DRAM, as for any layer, and writes every
word it reads into the weight SRAM as well (``weight_sram_writes``); in
every later image it reads the stream from the weight SRAM
(``weight_sram_reads``) and not from DRAM.  Before a resident layer's stream
is read (a HUFFMAN layer's: after its size word), the engine checks that the
stream fits: ``wsram_addr`` plus the stream's words (``out_features *
row_words``, or one plus the size word's total) at most
``weight_sram_words``, else ``BAD_STREAM`` (always, on an engine without a
weight SRAM).  The weight SRAM keeps what image 0 wrote; program files never
place two resident streams over each other (the golden model follows the
engine even where a hand-made image does).

A row stream holds, for each of ``out_features`` rows, ``row_words`` words:
the bias (int32), the requantization word (``mult`` [15:0], ``shift``
[21:16], the activation parameter [31:22], signed: see
:func:`model.contract.fixedpoint.requantize`), then one entry per sub-vector, packed LSB-first as one continuous
bit string padded to a whole word.  A VQ entry is a codebook index of
``index_bits``; a PVQ entry is the sub-vector's enumeration index in its low
``pvq_bits(lanes, K)`` bits and its unsigned scale in the top
``PVQ_SCALE_BITS`` (``entry_bits = pvq_bits(lanes, K) + PVQ_SCALE_BITS``).

Compact rows (``FLAG_COMPACT``; FC layers in VQ mode): every row shares one
shift, one activation parameter and one bias scale, held in descriptor word 5
(shift [5:0], activation parameter [15:6] signed, ``bias_shift`` [20:16]), so
a row's header is one word: ``mult`` [15:0] and a signed 16-bit bias [31:16]
whose value is ``bias16 << bias_shift``.  Then the row's entries as above
(``row_words`` = 1 + the entry words).  The rows' requantization is exactly
the two-word format's with those values
(:func:`model.contract.fixedpoint.compact_row_params` converts a layer's
two-word parameters; what it rounds is what the engine then computes).

Residual VQ layers (``LayerMode.RVQ``)
=====================================
A sub-vector is the sum of ``S`` codewords, one from each of ``S`` stage
codebooks (Gong et al.'s residual quantization; AQLM's "2x8" is ``S = 2``):
``w[r, j] = sum_s rom[codebook_base + s * codebook_size + index_s[r, j]]``.

* ``S = MODE_PARAM + 1``, 1 to the engine's ``rvq_stages_max`` (at most
  ``RVQ_STAGES_MAX``); else ``BAD_CODEBOOK``.
* Stage ``s``'s codebook is the ``codebook_size`` ROM entries from
  ``codebook_base + s * codebook_size``: the stages are consecutive sections
  of the ROM.  A per-layer program puts each layer's stages there; a shared
  multi-stage ROM (a universal codebook of ``S`` sections of ``n`` entries,
  say 2 x 256) is indexed with base 0 and size ``n`` by every layer.
* ``BAD_CODEBOOK`` when ``codebook_size`` is 0 or above ``codebook_depth``,
  or ``codebook_base + S * codebook_size`` is past the ROM's entries.
* An entry is the sub-vector's ``S`` indices, stage 0 in the low
  ``index_bits`` (``log2 codebook_depth``), stage ``s`` at bit ``s *
  index_bits``: ``entry_bits = S * index_bits``, packed LSB-first as any
  dense row (``row_words`` with that width, else ``BAD_STREAM``).  An index at
  or above ``codebook_size`` (checked stage 0 first) is ``BAD_INDEX``.
* The engine reads the ``S`` codewords in the same cycle (one ROM read port
  per stage) and adds them lane-wise into ``stage_sum_bits(S)``-wide lanes
  (:func:`model.contract.fixedpoint.stage_sum_bits`: 10 bits for 4 stages)
  before the multipliers: one entry per cycle, as VQ.
* Counters per entry: ``S`` ``rom_reads``, ``lanes`` ``macs``, ``(S - 1) *
  lanes`` ``adds`` (the lane-wise codeword sums), one ``sram_reads``.
* Compact rows are VQ's only (``BAD_MODE``); RVQ runs in FC and CONV layers.

Product VQ layers (``LayerMode.PQ``)
===================================
A codebook per block of columns (Gong et al.'s product quantization): the
sub-vectors of a row are cut into blocks of ``B = 2**MODE_PARAM`` sub-vectors
(the last may be shorter), and block ``b`` has its own codebook of
``codebook_size`` entries at ``codebook_base + b * codebook_size``:
``w[r, j] = rom[codebook_base + (j // B) * codebook_size + index[r, j]]``.

* ``BAD_CODEBOOK`` when ``codebook_size`` is 0 or above ``codebook_depth``, or
  ``codebook_base + ceil(subvectors / B) * codebook_size`` is past the ROM's
  entries (``subvectors = ceil(in_features / lanes)``).
* Entries are ``index_bits`` wide, as VQ (``BAD_STREAM`` and ``BAD_INDEX``
  as VQ's).  One ROM read per entry and one entry per cycle: the engine keeps
  the block's ROM offset in a register that steps by ``codebook_size`` at
  each block's first sub-vector (no multiplier in the lookup).
* Counters per entry as VQ: one ``rom_reads``, ``lanes`` ``macs``, one ``sram_reads``.
* FC and CONV layers; no compact rows.

E8P lattice layers (``LayerMode.E8P``)
=====================================
A structured universal codebook (in the spirit of QuIP#'s E8P): 2**16 codewords
of dimension 8, points of the shifted lattice ``E8 + 1/4``, decoded in hardware
from a fixed 256-entry table of *source* vectors plus sign flips and a shift
(:mod:`model.codecs.e8p` defines the table, the index and the decode; the engine's
``hw.lattice_codebook.LatticeCodebook`` is its twin).  Engines with ``lattice``
(:class:`model.contract.config.EngineConfig`; 8 lanes only).

* Integer scale: a codeword lane is 4 times the lattice coordinate (``E8P_SCALE``),
  an odd integer in [-11, 11]; the rows' requantization carries the real scale,
  as for any codebook.
* An entry is one 16-bit codeword index (``E8P_INDEX_BITS``): bits 0..7 the table
  entry, bits 8..14 the minus signs of lanes 0..6, bit 15 the shift (1: +1 at
  scale 4, 0: -1).  Lane 7's sign follows the parity rule (the codeword's
  unshifted sum is even).  Every index is a codeword: there is no ``BAD_INDEX``.
* Descriptor word 1 is not read (written as zero): the table is the engine's
  own, not part of the program's ROM; ``row_words`` must fit 16-bit entries
  (``BAD_STREAM``).  The table is fixed at elaboration and identical on every
  lattice engine.
* One entry per cycle: the fetch stage reads the table entry (8 x 8 bits) and
  keeps the index's sign and shift bits; next cycle the decoder negates the
  lanes and adds +-1 before the MAC lanes.
* Counters per entry as VQ: one ``rom_reads`` (a read of the 256-entry table),
  ``lanes`` ``macs``, one ``sram_reads``.  The energy report prices a
  ``rom_reads`` as one read of the engine's codebook memories, the table's
  2 KiB included (:class:`sim.report.energy.memories.OnChipMemories`).
* FC and CONV layers; no compact rows.

Sparse Huffman-coded layers (``LayerMode.HUFFMAN``)
==================================================
Deep Compression / EIE style: weights are scalars, pruned positions are not
stored, and what is stored is entropy coded.

* **Centroids.**  The layer's ``codebook_size`` = ``k`` int8 scalar centroids
  are packed ``lanes`` to a ROM entry: centroid ``j`` is lane ``j % lanes`` of
  entry ``codebook_base + j // lanes`` (the last entry zero-padded).
  Centroid 0 is the exact zero used by filler symbols.  Indices are
  ``idx_bits = huffman_index_bits(k)`` = ``ceil(log2(k))`` bits wide.
* **Symbols.**  Each stored weight of a row is a symbol ``(run, idx)``: ``run``
  positions skipped (pruned) before it, ``idx`` its centroid.  The encoder
  keeps ``run < 2**REL_BITS``; a longer gap gets fillers ``(2**REL_BITS - 1,
  0)``, zero weights that advance the position (:mod:`model.codecs.sparse_rows`).
  The joint symbol is ``run << idx_bits | idx``, coded with one canonical
  Huffman table per layer (:mod:`model.codecs.huffman`) over
  ``huffman_symbol_bits``-bit symbols with codes of at most ``huffman_max_len``
  bits (both engine parameters).
* **Stream** at the descriptor's address (one PE; for ``P > 1`` see *Processing elements* below):

  ======================  ====================================================
  word 0                  size word: ``cmd_rows`` [15:0], ``cmd_row_words``
                          [31:16]; the rest of the stream is exactly
                          ``cmd_rows * cmd_row_words`` words
  word 1                  the layer's requantization word (``mult`` [15:0],
                          ``shift`` [21:16]), shared by every row
  table                   the layer's Huffman table
                          (:meth:`model.codecs.huffman.HuffmanTable.to_words`), at
                          most ``table_words`` words (descriptor word 3); it
                          takes exactly its own words
  rows                    ``out_features`` rows, each one header word, the
                          bias [21:0] (signed, ``SPARSE_BIAS_BITS``) and
                          ``n_symbols - 1`` [31:22] (``SPARSE_COUNT_BITS``),
                          then the row's codes first bit first, LSB-first,
                          zero-padded to a whole word (the decoder takes
                          exactly the words holding them)
  padding                 zero words up to the size word's total, read and
                          discarded
  ======================  ====================================================

  The size word exists because rows vary in length: it lets the engine fetch
  the whole layer with one pipelined DRAM read and no over-fetch, so
  ``dram_read_words`` stays exact.  A row costs one header word: with the
  requantization per layer, a narrow bias and the symbol count beside it
  (the three words per row first planned, bias, requantization and
  ``n_symbols | n_words``, were 17 % of LeNet-300-100's storage and kept it
  below 40x).
* **Decoding** a row: the position ``p`` starts at 0; for each of the
  ``n_symbols`` symbols, ``p += run``, then ``acc += x[p] * centroid[idx]`` and
  ``p += 1``.  One weight per cycle; pruned positions cost nothing, and a
  filler decoded first of a decoder step (two codes) goes with the step's
  second symbol in the same cycle (:class:`hw.sparse_rows.SparseRowPath`).  The next
  row starts at the word after the row's last code bit.  A row holds 1 to
  ``SPARSE_MAX_SYMBOLS`` symbols; the table is loaded for each layer of each
  image, as the stream is read again.
* **Errors**, first in stream order wins: a word needed past the size word's
  total (codes included) is ``BAD_STREAM``; table and code errors are the
  ``HUFF_*`` codes (``HUFF_BASE + model.codecs.huffman.HuffmanStatus``; the codes of
  a row may take up to ``FIELD16`` words, so ``HUFF_TRUNCATED`` means a table
  longer than ``table_words``); a position at or past ``in_features`` is
  ``BAD_SPARSE``; an index at or above ``k`` is ``BAD_INDEX`` (a symbol's
  position is checked before its index).
* **Counters** per symbol: ``huffman_symbols`` 1, ``huffman_bits`` its code
  length; ``huffman_busy_cycles`` counts the decoder's steps, two codes each
  (:mod:`model.codecs.huffman`, *Decoding steps*), so per row it is
  ``ceil(n_symbols / 2)`` (``huffman_max_len <= 16``; one per symbol above);
  and for a real weight (``idx != 0``; fillers read nothing) one ``rom_reads``,
  one ``sram_reads`` and one ``macs`` (one useful 8-bit multiply; the other
  lanes multiply by zero), or one ``zero_skips`` instead of the ``macs`` when
  its activation is zero (:mod:`model.contract.counters`).  ``dram_read_words`` counts the descriptor, the size word
  and the size word's total, for each image.
* **Processing elements** (``P > 1``; with ``P = 1`` everything is as above).  Output row ``r``
  runs on PE ``r mod P``, as in a dense layer, and each PE has its own sparse row path (Huffman
  decoder) fed by its own *sub-stream*: the layer's requantization word, the Huffman table (the same
  table, one copy per PE), then its rows ``p, p + P, p + 2P, ...`` in order, each the row header
  word and the row's codes exactly as above, then zero words padding it to ``L`` words.  ``L`` is
  the longest sub-stream's length before padding, ``L0``, rounded up to ``C * W`` with ``C =
  ceil(L0 / FIELD16)`` and ``W = ceil(L0 / C)`` (the least padding that fits the size word's
  fields).  The size word is ``cmd_rows = C * P`` (a multiple of ``P``) and ``cmd_row_words =
  W``; the body after it is the ``P`` sub-streams interleaved word by word: word ``s`` of PE
  ``p``'s sub-stream is body word ``s * P + p``.  This is the dense layout of
  :func:`pe_stream_position` with ``C * P`` stream "rows" of ``W`` words (a stream row here is a
  chunk of ``W`` words of a sub-stream, not an output row), so the engine's one stream word per
  cycle is dealt to the PEs round-robin.  For ``P = 1`` the size word is the one above.  In
  general (a size word whose ``cmd_rows`` is not a multiple of ``P``, in a corrupted program),
  PE ``p``'s sub-stream is the words of stream rows ``p, p + P, ...`` below ``cmd_rows``, in
  order (:func:`pe_substream_positions`).

  Each PE decodes its sub-stream as a one-PE engine decodes the layer's stream (its
  requantization word for its rows, its table copy within ``table_words``, the same row checks
  and error codes, ``BAD_STREAM`` for a word needed past its sub-stream's end); the padding after
  its last row is read and discarded.  The golden model raises the error of the lowest-numbered
  PE whose sub-stream is bad.  The PEs run concurrently, so when more than one PE's sub-stream is
  bad the RTL reports the one that fails first in time, which may be another bad PE's error; with
  one bad sub-stream RTL and golden model agree.

  Counters with ``P > 1`` are those of ``P = 1`` (``huffman_busy_cycles`` counts each decoder's
  steps, and a row's steps depend only on the row, so their sum is the same), except the stream's
  words: ``dram_read_words`` (and a resident layer's ``weight_sram_reads`` and
  ``weight_sram_writes``) count the longer stream, with its ``P`` requantization words, ``P``
  table copies and the padding.

  Which hidden unit is stored at which row is the writer's choice: for ``P > 1`` it permutes the
  hidden units of a sparse FC layer feeding only a sparse FC layer so that the PEs' work is
  balanced (:mod:`model.program.balance`); the program metadata's ``layers[i].row_order`` then lists
  the original unit of each stored row (absent: the identity).  The permuted network computes the
  same outputs; the next layer's columns move, so its runs, fillers and codes (``huffman_*``
  counters) may differ from the unpermuted layer's.

Processing elements (``EngineConfig.pes``)
==========================================
An engine may have ``P`` processing elements (1, 2, 4 or 8; :class:`model.contract.config.EngineConfig`),
each with its own index path, codebook ROM read port (a copy of the ROM), MAC lanes and
accumulator.  In a dense layer (VQ, RVQ, PQ, E8P; FC or CONV) output row ``r`` runs on PE
``r mod P``, and the PEs run in lockstep: the rows ``g*P .. g*P + n - 1`` of *row group* ``g``
(``n = min(P, out_features - g*P)``) take their sub-vector ``j`` in the same cycle, so one
activation-SRAM read (or a convolution's window tap) feeds every PE (*broadcast*).  The row results
go through the shared requantizer and output packer in row order.  With ``P = 1`` everything is as
above.

Row stream with ``P > 1``: the stream has the same words as for one PE (``out_features *
row_words``, the same descriptor), laid out by row group: group ``g`` starts at word ``g * P *
row_words`` of the stream, and word ``w`` of the group's row ``i`` (``0 <= i < n``) is at
``g * P * row_words + w * n + i`` (:func:`pe_stream_position`).  The group's header words come first,
then its entry words interleaved word by word, so the engine's one stream word per cycle goes to
the PEs round-robin, each PE's words in its own order; a resident layer holds the same words in the
weight SRAM.  At ``lanes = 4`` and 8-bit indices a PE takes a word every 4 cycles, so ``P = 4``
needs one word per cycle, the DRAM's (and the weight SRAM's) rate; more PEs, or wider entries,
are bound by that rate.  The program file records ``P`` in its engine metadata (``engine.pes``,
absent for 1), and an engine runs only programs laid out for its own ``P``.

Counters with ``P > 1``: ``rom_reads``, ``macs`` and ``adds`` are per PE, as for one PE;
``sram_reads`` counts one read per row group and sub-vector (``ceil(out_features / P)`` per
sub-vector, and per window tap inside the map in a convolution).  PVQ and nearest-prototype layers
run on one PE only: an engine with ``P > 1`` has none of their units, and the compressor refuses
such programs with ``--pes`` above 1.

Sparse (HUFFMAN) layers run on ``P`` PEs with a stream of their own layout (see "Sparse
Huffman-coded layers", *Processing elements*): the sub-streams of the ``P`` PEs (each its
requantization word, its copy of the table and its rows ``p, p + P, ...``, padded to one length)
interleaved word by word, which is the dense layout of :func:`pe_stream_position` with the size
word's ``cmd_rows = C * P`` chunks of ``cmd_row_words`` words.  Unlike a dense stream it holds
different words for different ``P``, so it is written for one ``P``: the program records that
``P`` in the layer's metadata (``layers[i].pes``, absent for 1), and a program's sparse layers are
not re-laid out for another ``P`` (the compressor writes them again).

Column-wise sparse layers (``LayerMode.COLUMNS``)
=================================================
EIE's dataflow for Deep Compression's sparse layers, in engines with the
column unit (``EngineConfig.column_entries > 0``; one PE; FC layers only).
The unit has ``S = lanes`` *slots*, each a multiplier with its own memories:
stored row (output) ``r`` belongs to slot ``r mod S`` as its *local row*
``r div S``, and the layer has ``R = ceil(out_features / S)`` local rows.
The unit scans the input a lane-word a cycle, broadcasts each non-zero
activation with its column into every slot's queue, and each slot multiplies
that activation by every kept weight of the column among its rows, one a
cycle, accumulating in its local rows; then local row ``t`` of every slot,
requantized, is output lane-word ``t`` (:class:`hw.column_unit.ColumnUnit`).
Outputs are those of the same weights in any format: the bias plus the kept
weights' products, wrapped to 32 bits, requantized with the layer's word.
Weights are the layer's ``k`` int8 scalar centroids, centroid 0 the zero;
only kept weights (index not 0) are stored.

* **Descriptor.**  Word 1 is the layer's requantization word (as
  ``AVGPOOL``'s: ``mult`` [15:0], ``shift`` [21:16], the activation parameter
  [31:22]), shared by every row; word 3 [15:0] is ``k`` (1..``COLUMN_K_MAX``,
  else ``BAD_CODEBOOK``); ``resident`` must be clear (else ``BAD_STREAM``);
  word 6 is ``kept``, the layer's kept weights (every slot's ``E_s``
  together); words 4, 5 and 7, ``mode_param`` and ``compact`` are not read.
  A layer of more than ``COLUMN_ROWS_MAX`` local rows is not refused, but
  its entries reach only the first ``COLUMN_ROWS_MAX`` (the writer refuses it).
* **Resident in the unit.**  A job's COLUMNS layers all stay in the unit:
  image 0 reads each one's stream from DRAM and writes it into the unit;
  later images read nothing of it.  The unit allocates its memories itself,
  layer after layer in job order (no addresses in the program): ``k``
  centroids, ``R`` local rows per slot, ``in_features`` column-table entries
  per slot and each slot's entries; a layer that does not fit the unit's
  ``column_centroids``, ``column_rows``, ``column_columns`` or
  ``column_entries`` stops the job with ``BAD_STREAM`` before its stream is
  read (entries: when its slot's header word is read).
* **Stream** (read in image 0 only), at the descriptor's address:

  ======================  ====================================================
  word 0                  size word: ``cmd_rows`` [15:0], ``cmd_row_words``
                          [31:16]; the rest is ``cmd_rows * cmd_row_words`` words
  centroids               ``ceil(k / 4)`` words, four int8 centroids each,
                          centroid ``j`` in byte ``j % 4`` of word ``j // 4``
  per slot ``s``          a header word, the slot's entry count ``E_s``
                          [31:0]; ``R`` bias words (local row ``t``'s signed
                          32-bit bias; a local row past ``out_features``:
                          0); ``in_features`` column words, ``start`` [15:0]
                          and ``count`` [31:16] of the column's entries in
                          the slot (``start`` from the slot's first entry of
                          the layer); ``ceil(E_s / 2)`` entry words, entry
                          ``2i`` in [15:0] and ``2i + 1`` in [31:16], the
                          last one's high half zero
  padding                 zero words up to the size word's total, read and
                          discarded
  ======================  ====================================================

  An entry is the local row [``COLUMN_ROW_BITS - 1``:0] and the centroid
  index [15:``COLUMN_ROW_BITS``]; a slot's entries are its kept weights
  column by column, each column's in any order.  The writer pads the stream
  to the least ``cmd_rows * cmd_row_words`` with ``cmd_row_words <= FIELD16``.
* **Checks**, in stream order, the first error stopping the job:
  ``BAD_STREAM`` for a stream that ends before its last entry word, or a slot
  whose entries do not fit; ``BAD_SPARSE`` for a column whose ``start +
  count`` passes ``E_s``, or an entry whose local row is ``R`` or more;
  ``BAD_INDEX`` for an entry whose index is 0 or ``k`` or more; after the
  last slot's entries, ``BAD_STREAM`` when the slots' ``E_s``, or their
  column tables' counts, do not add up to the descriptor's ``kept``.
* **Counters**, per image: the descriptor's ``DESC_WORDS`` DRAM reads (and
  in image 0 the stream's ``1 + cmd_rows * cmd_row_words``); one
  activation-SRAM read per input lane-word; ``macs``, the kept weights whose
  activation is not zero; ``zero_skips``, the kept weights whose activation
  is zero (``macs + zero_skips`` is the layer's kept weights, as in a
  HUFFMAN layer); ``weight_sram_reads``, the unit's column-table and entry
  reads (``S`` per non-zero activation, one per MAC); ``weight_sram_writes``,
  in image 0, the unit's writes of the stream (``k`` centroids, and per slot
  ``R`` biases, ``in_features`` column entries and ``E_s`` entries);
  ``rom_reads`` 0; one activation-SRAM write per output lane-word.

Vectors (inputs, outputs) are int8, four to a word, little-endian, zero-padded
to a multiple of ``vector_align(lanes)`` bytes.
"""
from __future__ import annotations

import enum

from model.contract.ints import ceil_div, round_up

WORD_BITS = 32
WORD_BYTES = WORD_BITS // 8
JOB_MAGIC = 0x31455156  # b"VQE1" little-endian
JOB_WORDS = 8
#: The job header word holding ``dram_words``, the bound on the engine's reads.
DRAM_WORDS_WORD = 6
DESC_WORDS = 8
ROW_HEADER_WORDS = 2  # bias, requantization word
FIELD16 = 0xFFFF
#: The largest activation SRAM (values per vector, ``EngineConfig.max_features``): O-Net's first
#: convolution writes 46 x 46 x 32 = 67,712 values.  Descriptor shape fields stay 16 bits.
MAX_FEATURES_LIMIT = 1 << 17

FLAG_RELU = 1 << 0
FLAG_RESIDENT = 1 << 1
FLAG_FLOOR = 1 << 2
#: Compact rows (FC layers in VQ mode only, else ``BAD_MODE``): see "Compact rows" above.
FLAG_COMPACT = 1 << 3
#: The layer's output is written to the skip buffer too (engines with ``residual``; the others
#: ignore it): see "Skip buffer" above.  Bits 4..11 are the mode and the kind.
FLAG_SAVE = 1 << 12
#: A compact row's header: the multiplier in the low ``MULT_BITS``, the signed bias
#: (``fixedpoint.COMPACT_BIAS_BITS``) above it.
COMPACT_ROW_HEADER_WORDS = 1
#: A compact layer's descriptor word 5: the rows' shift, activation parameter and bias shift
#: (``fixedpoint.COMPACT_BIAS_SHIFT_BITS`` wide) from these bits.
COMPACT_SHIFT_LSB, COMPACT_ACT_LSB, COMPACT_BIAS_SHIFT_LSB = 0, 6, 16
#: Width of a descriptor's weight-SRAM address (word 4).
WSRAM_ADDR_BITS = 24
MODE_SHIFT = 4
MODE_MASK = 0xF
#: Bits 13..15 of the flags (``MODE_PARAM``): a mode's own parameter, RVQ's ``stages - 1`` and PQ's
#: ``log2`` block width (see "Residual VQ layers" and "Product VQ layers" above).
MODE_PARAM_SHIFT = 13
MODE_PARAM_BITS = 3
#: Most residual-VQ stages an engine may be built for.
RVQ_STAGES_MAX = 4


#: Bits of a descriptor's flags holding the layer kind.
KIND_SHIFT = 8
KIND_MASK = 0xF


class LayerKind(enum.IntEnum):
    """What a layer's rows are applied to (see "Layer kinds" above)."""
    FC = 0       #: fully connected: each row against the whole input vector
    CONV = 1     #: convolution: each row against each output position's window
    MAXPOOL = 2  #: max pooling: no rows, the maximum of each channel over each window
    AVGPOOL = 3  #: average pooling: no rows, each channel's window sum requantized by descriptor word 1
    ADD = 4      #: residual add: no rows, no window, the input plus the skip buffer requantized by word 1
    NEAREST = 5  #: nearest prototype: VQ rows as prototypes, the label (row header word 0) of the nearest one


#: Values a ``NEAREST`` layer writes: the winning prototype's label.
NEAREST_OUTPUTS = 1


#: The kinds whose descriptor words 4..7 hold a window (:mod:`model.contract.window`).
WINDOWED_KINDS = (LayerKind.CONV, LayerKind.MAXPOOL, LayerKind.AVGPOOL)


class LayerMode(enum.IntEnum):
    """How a layer's rows are coded."""
    VQ = 0   #: dense rows of fixed-width codebook indices
    HUFFMAN = 1  #: sparse rows of Huffman-coded (run, index) symbols, scalar centroids
    PVQ = 2  #: dense rows of pyramid-VQ enumeration indices and scales (no codebook)
    RVQ = 3  #: dense rows of ``S`` stage indices per sub-vector, the sum of ``S`` codewords (residual VQ)
    PQ = 4   #: dense rows of indices into a codebook per block of columns (product VQ)
    E8P = 5  #: dense rows of 16-bit E8P lattice codeword indices, decoded from the engine's table
    COLUMNS = 6  #: sparse layers column by column in the column unit, EIE's dataflow (scalar centroids)


#: E8P lattice layers (see "E8P lattice layers" above; :mod:`model.codecs.e8p` decodes them): the codeword
#: dimension, the integer scale of the lattice's coordinates, and a codeword index's fields.
E8P_DIM = 8
E8P_SCALE = 4
E8P_TABLE_BITS = 8
E8P_SIGN_BITS = E8P_DIM - 1
E8P_INDEX_BITS = E8P_TABLE_BITS + E8P_SIGN_BITS + 1
E8P_SHIFT_BIT = E8P_INDEX_BITS - 1


#: The modes whose rows are dense (one entry per sub-vector), which convolutions may use.
DENSE_MODES = (LayerMode.VQ, LayerMode.PVQ, LayerMode.RVQ, LayerMode.PQ, LayerMode.E8P)


#: Width of a PVQ sub-vector's unsigned scale.
PVQ_SCALE_BITS = 8

#: Width of a sparse symbol's run field (zeros skipped before a weight), as in EIE.
REL_BITS = 4
#: Words of a HUFFMAN stream before its table: the size word and the requantization word.
SPARSE_LAYER_WORDS = 2
#: Words at the start of a HUFFMAN row: ``bias | (n_symbols - 1) << SPARSE_BIAS_BITS``.
SPARSE_ROW_HEADER_WORDS = 1
#: Width of a HUFFMAN row's signed bias in its header word.
SPARSE_BIAS_BITS = 22
#: Width of a HUFFMAN row's ``n_symbols - 1`` in its header word.
SPARSE_COUNT_BITS = WORD_BITS - SPARSE_BIAS_BITS
#: Most symbols a HUFFMAN row may have.
SPARSE_MAX_SYMBOLS = 1 << SPARSE_COUNT_BITS
#: Widest joint symbol the RTL decoder supports (its duplicate check keeps a flop per symbol).
HUFFMAN_SYMBOL_BITS_MAX = 10
#: Default code length limit of a HUFFMAN engine.
HUFFMAN_DEFAULT_MAX_LEN = 15
#: Longest code a Huffman decoder may be built for: a code must fit in one stream word,
#: so one new word always completes the symbol being decoded.
HUFFMAN_MAX_LEN_LIMIT = WORD_BITS


#: A COLUMNS entry (see "Column-wise sparse layers"): 16 bits, the local row below the centroid index.
COLUMN_ENTRY_BITS = 16
COLUMN_ROW_BITS = 11
COLUMN_INDEX_BITS = COLUMN_ENTRY_BITS - COLUMN_ROW_BITS
#: Most centroids of a COLUMNS layer (its index field's reach).
COLUMN_K_MAX = 1 << COLUMN_INDEX_BITS
#: Most local rows a COLUMNS layer may have per slot.
COLUMN_ROWS_MAX = 1 << COLUMN_ROW_BITS
#: The descriptor word of a COLUMNS layer's ``kept``.
COLUMNS_KEPT_WORD = 6
#: Centroids per word of a COLUMNS stream.
COLUMN_CENTROIDS_PER_WORD = WORD_BITS // 8


def huffman_index_bits(k: int) -> int:
    """Bits of a centroid index for ``k`` centroids: ``ceil(log2(k))`` (0 for one centroid)."""
    return max(0, (k - 1).bit_length())


def vector_align(lanes: int) -> int:
    """Vectors are padded to this many bytes so DRAM words and SRAM lane-words both tile them."""
    return max(WORD_BYTES, lanes)


def vector_words(features: int, lanes: int) -> int:
    """DRAM words one int8 vector of ``features`` occupies."""
    return round_up(features, vector_align(lanes)) // WORD_BYTES


def index_words_per_row(in_features: int, lanes: int, entry_bits: int) -> int:
    return ceil_div(ceil_div(in_features, lanes) * entry_bits, WORD_BITS)


def row_words(in_features: int, lanes: int, entry_bits: int, compact: bool = False) -> int:
    """Words of one dense row: its header (two words, or one for compact rows) and its packed entries."""
    header = COMPACT_ROW_HEADER_WORDS if compact else ROW_HEADER_WORDS
    return header + index_words_per_row(in_features, lanes, entry_bits)


#: Processing elements an engine may have (``EngineConfig.pes``).
PES = (1, 2, 4, 8)


def pe_stream_position(row: int, word: int, rows: int, row_words: int, pes: int) -> int:
    """Where word ``word`` of row ``row`` is in a dense layer's stream laid out for ``pes`` PEs (see
    "Processing elements" above; ``pes = 1``: ``row * row_words + word``)."""
    group, i = divmod(row, pes)
    n = min(pes, rows - group * pes)
    return group * pes * row_words + word * n + i


def pe_substream_positions(pe: int, rows: int, row_words: int, pes: int) -> list[int]:
    """Where each word of PE ``pe``'s sub-stream is in a sparse (HUFFMAN) layer's body (the stream after
    its size word of ``rows`` and ``row_words``) laid out for ``pes`` PEs: the words of stream rows
    ``pe, pe + pes, ...`` below ``rows``, in order (see "Sparse Huffman-coded layers", *Processing
    elements*).  With ``rows`` a multiple of ``pes``, word ``s`` is at ``s * pes + pe``."""
    return [pe_stream_position(r, w, rows, row_words, pes)
            for r in range(pe, rows, pes) for w in range(row_words)]


def pe_stream_order(rows: int, row_words: int, pes: int) -> list[int]:
    """For each word of a stream laid out for ``pes`` PEs, its index in the row-major ``(rows, row_words)``
    stream of one PE: ``stream_for_pes = row_major[order]`` and ``row_major[order] = stream_for_pes``."""
    order = [0] * (rows * row_words)
    for r in range(rows):
        for w in range(row_words):
            order[pe_stream_position(r, w, rows, row_words, pes)] = r * row_words + w
    return order
