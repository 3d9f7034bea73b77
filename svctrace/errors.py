"""The error tree. Every user-caused error carries its exit status and an optional hint.

Exit statuses are a contract (PRODUCT.md): 0 ok, 1 findings at or above --fail-on,
2 usage error, 3 object not found, 4 cluster unreachable or access denied,
5 rules unreadable, 130 interrupted.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FINDINGS = 1
    USAGE = 2
    NOT_FOUND = 3
    CLUSTER = 4
    RULES = 5
    INTERRUPTED = 130


class SvctraceError(Exception):
    """Base of all errors a user can cause; the CLI prints `svctrace: error: <message>`."""

    exit_status: ExitStatus = ExitStatus.USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(SvctraceError):
    exit_status = ExitStatus.USAGE


class SnapshotError(SvctraceError):
    """A snapshot file that cannot be read or understood."""

    exit_status = ExitStatus.USAGE


class NotFoundError(SvctraceError):
    exit_status = ExitStatus.NOT_FOUND


class ClusterError(SvctraceError):
    """The cluster cannot be reached, or it refused us."""

    exit_status = ExitStatus.CLUSTER


class RulesError(SvctraceError):
    """The node's rules cannot be read or parsed."""

    exit_status = ExitStatus.RULES


class RuleSyntaxError(RulesError):
    """A located parse error: `FILE:LINE: message`."""

    def __init__(self, source: str, line: int, message: str, hint: str | None = None) -> None:
        super().__init__(f"{source}:{line}: {message}", hint)
        self.source = source
        self.line = line


class OutputError(SvctraceError):
    """Standard output cannot be written (`>/dev/full`, a device error)."""

    exit_status = ExitStatus.USAGE
