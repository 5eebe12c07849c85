"""Verification campaigns: random and corrupted programs on the compiled RTL against the golden model
(`sim.verify.campaign`), on the engine families of `sim.verify.families`."""
