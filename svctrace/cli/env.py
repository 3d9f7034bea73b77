"""The Environment owns stdout/stderr and colour decisions, so tests can swap it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Environment:
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    color: str = "auto"          # auto | always | never
    quiet: bool = False

    def use_color(self) -> bool:
        if self.color == "always":
            return True
        if self.color == "never" or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return False
        return self.stdout.isatty()

    def console(self, piped_width: int = 250) -> Any:
        """A rich Console on stdout (imported here: rich is not needed for --help or TAB).

        Piped or redirected output is not cropped to 80 columns: it gets `piped_width`
        columns unless COLUMNS says otherwise."""
        from rich.console import Console
        color = self.use_color()
        console = Console(file=self.stdout, force_terminal=color, no_color=not color,
                          color_system="auto" if color else None, highlight=False,
                          soft_wrap=not self.stdout.isatty())
        if not self.stdout.isatty() and "COLUMNS" not in os.environ:
            console.width = piped_width
        return console

    def note(self, text: str) -> None:
        """A diagnostic line on stderr (suppressed by -q)."""
        if not self.quiet:
            self.stderr.write(f"svctrace: {text}\n")

    def write_json(self, data: object) -> None:
        import json
        self.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def write_yaml(self, data: object) -> None:
        import yaml
        self.stdout.write(yaml.safe_dump(data, sort_keys=True))
