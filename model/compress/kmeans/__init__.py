"""k-means VQ per layer (Gong et al. 2014): lanes-dimensional sub-vectors, per-layer codebooks, trained codewords.

``network`` (the coding, its torch form and fine-tuning), ``method`` (its registration as ``--method kmeans``).

May import: what ``model.compress`` may.
"""
