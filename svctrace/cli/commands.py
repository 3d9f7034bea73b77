"""Which command modules make up the CLI. Each module has `register(app)` and imports only typer."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "svctrace.cli.explain_cmd",
    "svctrace.cli.rules_cmd",
    "svctrace.cli.trace_cmd",
    "svctrace.cli.snapshot_cmd",
    "svctrace.cli.completion_cmd",
)


def register(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
