"""typer glue: one module per command; only this package prints, exits, or wires things together."""
