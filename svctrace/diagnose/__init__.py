"""Checks that turn the model (and, later, traces) into findings with stable ids."""
