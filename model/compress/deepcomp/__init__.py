"""Deep Compression (Han, Mao, Dally 2015): pruning, trained quantization, Huffman-coded sparse rows.

``prune`` (iterative magnitude pruning), ``trained_quant`` (shared scalar centroids, fine-tuned),
``stats`` (every stored bit of the sparse format), ``recipe`` (the whole flow, its cache, its
registration as ``--method deepcomp``).

May import: what ``model.compress`` may.
"""
