"""The svctrace command line: the app, the shared options, and the single error boundary.

Only typer is imported at module level: shell completion runs this program on every TAB, so
rich, kubernetes, scapy and iptc are imported inside the commands that need them.
"""

from __future__ import annotations

import os
import sys

import typer

from svctrace.errors import ExitStatus, SvctraceError

app = typer.Typer(
    name="svctrace",
    help="Show how a Kubernetes Service is really implemented: its objects, the kube-proxy rules "
         "programmed for it, and where a packet to it really goes.\n\n"
         "See 'man svctrace' (or man -l man/svctrace.1) for the full manual.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # typer renders --help with rich unless told otherwise; rich costs ~100 ms of start-up and
    # --help must stay cheap. Plain click help reads the same.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEBUG = False


def _version_callback(value: bool) -> None:
    if value:
        from svctrace.cli.version import version_text
        typer.echo(version_text())
        raise typer.Exit(0)


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the versions of svctrace and its libraries and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show a traceback on errors."),
) -> None:
    """svctrace: where does a packet to this Service really go, and why?"""
    global DEBUG
    DEBUG = debug or bool(os.environ.get("SVCTRACE_DEBUG"))


def _register() -> None:
    from svctrace.cli import commands
    commands.register(app)


def run() -> None:
    """Entry point: the one error boundary. Errors become one line and a documented exit status."""
    _register()
    from svctrace.cli.env import Stdout
    sys.stdout = Stdout(sys.stdout)      # type: ignore[assignment]  # see Stdout
    try:
        rc = app(standalone_mode=False)
    except SvctraceError as err:
        _fail(err.message, err.hint, err.exit_status)
    except KeyboardInterrupt:
        sys.stderr.write("svctrace: interrupted\n")
        sys.exit(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except typer.Exit as ex:
        if ex.exit_code == ExitStatus.INTERRUPTED:
            sys.stderr.write("svctrace: interrupted\n")
        _exit_now(ex.exit_code)
    except _click_errors() as err:  # usage errors from click
        _usage(err)
    except Exception as err:  # noqa: BLE001 - the boundary: never a traceback unless --debug
        if DEBUG:
            raise
        _fail(f"internal error: {type(err).__name__}: {err}",
              "run again with --debug for a traceback, and report it", ExitStatus.USAGE)
    if rc == ExitStatus.INTERRUPTED:      # typer turns Ctrl-C into Exit(130)
        sys.stderr.write("svctrace: interrupted\n")
    _exit_now(rc if isinstance(rc, int) else 0)


def _exit_now(status: int) -> None:
    """Exit without tearing down the interpreter: freeing a 230,000-rule ruleset object by
    object takes 0.1-0.2 s that nobody waits for. Output is flushed first (a closed pipe
    keeps the command's own status; a full disk is one error line); svctrace registers no
    atexit work."""
    try:
        sys.stdout.flush()
    except SvctraceError:
        pass                                 # kept as the Stdout's error, just below
    failed = getattr(sys.stdout, "error", None)     # also when click swallowed it (--help)
    if isinstance(failed, SvctraceError):
        _fail(failed.message, failed.hint, failed.exit_status)
    sys.stderr.flush()
    os._exit(status)


def _click_errors() -> tuple[type[BaseException], ...]:
    from typer._click import exceptions  # typer bundles its own click

    return (exceptions.ClickException, typer.Abort)


def _usage(err: BaseException) -> None:
    from typer._click import exceptions

    if isinstance(err, typer.Abort):
        sys.stderr.write("svctrace: interrupted\n")
        sys.exit(ExitStatus.INTERRUPTED)
    assert isinstance(err, exceptions.ClickException)
    if isinstance(err, exceptions.UsageError) and err.ctx is not None:
        sys.stderr.write(err.ctx.get_usage() + "\n")
    _fail(err.format_message(), "see 'svctrace --help'", ExitStatus.USAGE)


def _fail(message: str, hint: str | None, status: int) -> None:
    if DEBUG and sys.exc_info()[0] is not None:
        import traceback
        traceback.print_exc()
    from svctrace.render.literal import printable  # names and exec stderr are data
    sys.stderr.write(f"svctrace: error: {printable(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {printable(hint)}\n")
    sys.exit(int(status))


def _quiet_broken_pipe() -> None:
    # stdout closed early (| head): exit quietly, as coreutils do
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)
