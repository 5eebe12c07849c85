"""Networks lowered from their torch graph onto the engine's layer kinds, in the engine's data layout."""
