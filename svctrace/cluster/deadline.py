"""Waits that end: a bound on a block of code, measured on the wall clock, end to end.

urllib3's and websocket-client's timeouts bound each socket operation, not a request: a
server that trickles one byte a second keeps a 2 s read timeout alive forever, and so does
one that trickles its headers or its TLS handshake. `bounded(seconds)` arms a real-time timer
(SIGALRM) and raises out of whatever the block is waiting in — connect, TLS, headers, body,
a websocket upgrade. The exception is a BaseException, so no library's `except Exception`
swallows it; should a finaliser swallow it anyway, the timer fires again every 100 ms until
the block is left.

Signals reach only the main thread: elsewhere (shell completion looks names up in a worker
thread, which its caller abandons after its own limit) the block runs with its socket
timeouts alone.
"""

from __future__ import annotations

import math
import signal
import threading
import time

REPEAT = 0.1


class _Expired(BaseException):
    """Raised by the timer; carries the bound it belongs to."""


class TimedOut(Exception):
    """A bounded block ran out of time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{seconds:g}s")
        self.seconds = seconds


class bounded:  # noqa: N801 - used as a function: `with bounded(2.0): ...`
    """Run the block for at most `seconds` (main thread); TimedOut when it takes longer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = threading.current_thread() is threading.main_thread() and \
            math.isfinite(seconds)

    def __enter__(self) -> bounded:
        if not self.armed:
            return self
        if self.seconds <= 0:
            raise TimedOut(self.seconds)
        self.began = time.monotonic()
        self.previous = signal.signal(signal.SIGALRM, self._expire)
        self.outer, _ = signal.setitimer(signal.ITIMER_REAL, self.seconds, REPEAT)
        if self.outer and self.outer < self.seconds:   # an enclosing bound ends first
            signal.setitimer(signal.ITIMER_REAL, self.outer, REPEAT)
        return self

    def _expire(self, signum: int, frame: object) -> None:
        raise _Expired(self)

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if not self.armed:
            return
        while True:           # the timer may fire once more while it is being disarmed
            try:
                self._disarm()
                break
            except _Expired:
                continue
        if isinstance(error, _Expired) and error.args[0] is self:
            raise TimedOut(self.seconds) from None

    def _disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        if self.outer:                          # give the enclosing bound what is left
            left = self.outer - (time.monotonic() - self.began)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), REPEAT)
