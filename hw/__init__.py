"""VQ Engine hardware: Amaranth 0.5 components, one per block (see ``hw.engine.Engine``)."""
