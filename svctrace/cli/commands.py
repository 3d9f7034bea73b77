"""Which command modules make up the CLI. Each module has `register(app)` and imports only typer."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "svctrace.cli.explain_cmd",
    "svctrace.cli.rules_cmd",
    "svctrace.cli.trace_cmd",
    "svctrace.cli.snapshot_cmd",
    "svctrace.cli.doctor_cmd",
    "svctrace.cli.completion_cmd",
)


def register(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:      # a command still being built in this checkout
                continue
            raise
        module.register(app)
