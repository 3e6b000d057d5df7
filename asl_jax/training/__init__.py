"""Training: building a run from its config (setup), the optimiser, warm starts, and the step and epoch
loop (train)."""
