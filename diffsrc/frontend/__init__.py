"""Frontend: recover a function's source, desugar it, lower it to SSA IR."""
