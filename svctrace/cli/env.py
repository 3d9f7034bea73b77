"""The Environment owns stdout/stderr and colour decisions, so tests can swap it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import IO, Any


class Stdout:
    """Standard output as the commands write to it.

    A reader that went away (`| head -1`) silences the rest of the output instead of ending
    the command, so the exit status stays the command's own (findings or not), never one
    invented by the closed pipe; a write that fails (`>/dev/full`) is one OutputError line,
    not a traceback."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.error: Exception | None = None    # kept: a library may swallow the raise

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            silence(self.stream)
            return len(text)
        except OSError as err:
            raise self._failed(err) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            silence(self.stream)
        except OSError as err:
            raise self._failed(err) from None

    def _failed(self, err: OSError) -> Exception:
        self.error = self.error or output_error(self.stream, err)
        return self.error

    def __getattr__(self, name: str) -> Any:       # isatty, fileno, encoding…
        return getattr(self.stream, name)


def silence(stream: IO[str]) -> None:
    """Send the rest of `stream` (and what its buffer holds) to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


def output_error(stream: IO[str], err: OSError) -> Exception:
    """The error for a failed write to standard output; the stream is silenced first, so
    the interpreter's last flush does not fail again."""
    from svctrace.errors import OutputError
    silence(stream)
    return OutputError(f"cannot write to standard output: {os.strerror(err.errno or 0)}")


@dataclass
class Environment:
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)   # main.run makes it a Stdout
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
        color = self.use_color()
        console = _literal_console_class()(
            file=self.stdout, force_terminal=color, no_color=not color,
            color_system="auto" if color else None, highlight=False,
            soft_wrap=not self.stdout.isatty())
        if not self.stdout.isatty() and "COLUMNS" not in os.environ:
            console.width = piped_width
        return console

    def note(self, text: str) -> None:
        """A diagnostic line on stderr (suppressed by -q)."""
        if not self.quiet:
            from svctrace.render.literal import printable
            self.stderr.write(f"svctrace: {printable(text)}\n")

    def write_json(self, data: object) -> None:
        import json
        self.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def write_yaml(self, data: object) -> None:
        import yaml
        self.stdout.write(yaml.safe_dump(data, sort_keys=True))


@cache
def _literal_console_class() -> Any:
    """rich's Console, made to escape control characters in what it writes.

    The renderers already escape what comes from the cluster or the rules (render.literal);
    this is the backstop for a string they missed: an ESC in a rule comment must not reach
    the terminal. Only text segments are escaped; rich's own control segments and the escape
    codes of styles are written as they are."""
    from rich.console import Console
    from rich.segment import Segment

    from svctrace.render.literal import printable_lines

    class LiteralConsole(Console):
        def _render_buffer(self, buffer: Any) -> str:
            return super()._render_buffer(
                seg if seg.control else Segment(printable_lines(seg.text), seg.style)
                for seg in buffer)

    return LiteralConsole
