"""Long sweeps and one-off drivers behind ``make experiments``; they import the product, never the reverse.
"""
