"""The universal codebook (VQ4ALL, arXiv 2412.06875), shared by every network and kept in ROM.

``codebook`` (the file), ``extract`` (KDE extraction from donor networks), ``nested`` (the nested
ROM's stages), ``fit`` (differentiable assignment), ``error_feedback`` (an optional start),
``lower`` (int8 lowering), ``recipes`` (per-network budgets, model-level fits), ``method``
(``--method universal``).

May import: what ``model.compress`` may.
"""
