"""k-means VQ per layer (Gong et al. 2014): lanes-dimensional sub-vectors, per-layer codebooks, trained codewords."""
