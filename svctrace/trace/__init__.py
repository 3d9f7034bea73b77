"""The evaluator: hooks in kernel order, one function per match and per target (model only)."""
