"""The evaluator: hooks in kernel order, one small function per match and per target (model only)."""
