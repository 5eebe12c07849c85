"""VQ Engine model side: networks, compression, fixed-point lowering, program files and the golden model."""
