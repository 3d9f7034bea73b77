"""Parsers for option values that Python's own conversions accept too generously.

`int()` takes `1_0` (10) and non-ASCII digits (`٨٠` is 80); iptables and the kernel take
neither, and a port a user did not mean to type must be refused, not guessed. Protocol names
are case-insensitive, as in iptables (`-p TCP`).
"""

from __future__ import annotations

import re

import typer

from svctrace.model.packet import PROTOCOLS

_PORT = re.compile(r"[0-9]{1,5}")       # ASCII digits only ([0-9], not \d)


def port_number(text: str) -> int:
    """`text` as a port 1-65535, written in ASCII digits; ValueError otherwise."""
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise ValueError(f"{text!r} is not a port number (1-65535, digits 0-9 only)")
    return int(text)


def port(value: str | int) -> int:
    """typer parser for a port option (`--dport 80`)."""
    if isinstance(value, int):          # the option's default
        return value
    try:
        return port_number(value)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def protocol(value: str) -> str:
    """typer parser for `--proto`: tcp, udp or sctp, in any case."""
    name = value.lower()
    if name not in PROTOCOLS:
        raise typer.BadParameter(f"unknown protocol {value!r} (expected tcp, udp or sctp)")
    return name
