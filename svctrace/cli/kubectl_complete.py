"""`kubectl_complete-svctrace`: completion for `kubectl svctrace …` (kubectl ≥ 1.26).

kubectl runs `kubectl_complete-svctrace ARG… WORD` with the words typed after
`kubectl svctrace` (the last one being completed, possibly empty) and expects Cobra's
`__complete` answer: candidates one a line, then `:<directive>`. The same engine as
`svctrace __complete` answers it (svctrace.cli.complete). Never fails: on any error the
answer is "nothing, and no file names" (`:4`).
"""

from __future__ import annotations

import os
import sys


def answer(words: list[str]) -> str:
    """The Cobra-format answer for the words typed after `kubectl svctrace`."""
    try:
        from svctrace.cli import complete
        return complete.complete(root_command(), words).cobra()
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return ":4\n"


def root_command() -> object:
    """The click command tree of the svctrace CLI, with every command registered."""
    import typer.main

    from svctrace.cli import commands, main
    commands.register(main.app)
    return typer.main.get_command(main.app)


def run() -> None:
    """Console-script entry point."""
    sys.stdout.write(answer(sys.argv[1:]))
    sys.stdout.flush()
    from svctrace.cli import complete
    if complete.TIMED_OUT.is_set():
        os._exit(0)       # a live look-up is still stuck in its thread: do not wait for it
    sys.exit(0)


if __name__ == "__main__":
    run()
