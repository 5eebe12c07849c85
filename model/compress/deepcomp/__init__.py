"""Deep Compression (Han, Mao, Dally 2015): pruning, trained quantization, Huffman-coded sparse rows.
"""
