"""The energy model: event counters x energy per event, per layer and per network.

``table`` (the energy table: loading and validating ``energy_table.toml``, the capacity anchors),
``memories`` (the capacities of the engine's on-chip memories), ``events`` (priced events, memory
energy by capacity, and how each counter maps to them), ``network`` (a compressed network's facts and
counters, and its cycles), ``golden`` (those facts from the golden model, read by each layer's codec), ``registry``
(what a scenario is, `register_scenario`, which scenarios price which layer kinds), ``measured``
(the engine's counters priced as measured or with the weight stream substituted), the scenarios
(``baselines``: dense fp32 and int8; ``codebook``: VQ; ``pvq``; ``sparse``: Deep Compression),
``pricing`` (a network's energy under every scenario that applies, and its energy.json records), and
``resident`` (the engine's counters and energy with a weight SRAM of each capacity, over jobs of N images).

May import: ``model``.
"""
