"""The values of iptables options, read as iptables-restore reads them (libxtables).

One place for both sides: the parser checks every value it meets (a value iptables-restore
refuses is a located error there, never a ValueError later), and the evaluator reads the same
values with the same functions. Each function raises ValueError with a message in
iptables-restore's own words; the caller adds `FILE:LINE`.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


@lru_cache(maxsize=4096)
def parse_address(text: str) -> Address:
    """One IPv4 or IPv6 address (iptables-restore resolves names; a dump never holds one)."""
    try:
        return ip_address(text)
    except ValueError:
        raise ValueError(f'host/network "{text}" not found (not an IP address)') from None


@lru_cache(maxsize=4096)
def parse_prefix(text: str) -> Network:
    """`-s`/`-d`: `ADDR`, `ADDR/LEN` or `ADDR/DOTTED-MASK` (restore input may use a mask)."""
    addr_text, slash, mask = text.partition("/")
    addr = parse_address(addr_text)
    if not slash:
        return ip_network(addr)
    if mask.isdigit() and mask.isascii():
        if int(mask) > addr.max_prefixlen:
            raise ValueError(f'invalid mask "{mask}" specified')
        return ip_network(f"{addr}/{int(mask)}", strict=False)
    try:
        return ip_network(f"{addr}/{mask}", strict=False)
    except ValueError:
        raise ValueError(f'invalid mask "{mask}" specified') from None


@lru_cache(maxsize=1024)
def parse_port(text: str, protocol: str = "tcp") -> int:
    """A port number (0–65535) or a service name from /etc/services, as xtables_parse_port."""
    if text.isascii() and text.isdigit():
        if int(text) > 65535:
            raise ValueError(f'invalid port/service "{text}" specified')
        return int(text)
    try:
        return socket.getservbyname(text, "udp" if protocol == "udp" else "tcp")
    except (OSError, UnicodeError):
        raise ValueError(f'invalid port/service "{text}" specified') from None


def parse_port_range(text: str, protocol: str = "tcp") -> tuple[int, int]:
    """`N`, `N:M`, `:M`, `N:` → (low, high)."""
    if ":" not in text:
        port = parse_port(text, protocol)
        return port, port
    lo, _, hi = text.partition(":")
    low = parse_port(lo, protocol) if lo else 0
    high = parse_port(hi, protocol) if hi else 65535
    if low > high:
        raise ValueError(f'invalid port range "{text}" (first port above the last)')
    return low, high


def parse_port_list(text: str, protocol: str = "tcp") -> list[tuple[int, int]]:
    """multiport's comma list of ports and ranges (at most 15 entries, as xt_multiport)."""
    items = text.split(",")
    if len(items) > 15:
        raise ValueError(f'too many ports in "{text}" (multiport takes at most 15)')
    return [parse_port_range(item, protocol) for item in items]


def _c_integer(text: str) -> int:
    """strtoul(text, NULL, 0): 0x… hexadecimal, 0… octal, else decimal."""
    lowered = text.lower()
    if lowered.startswith("0x"):
        return int(lowered[2:], 16)
    if len(text) > 1 and text.startswith("0"):
        return int(text[1:], 8)
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return int(text)


@lru_cache(maxsize=1024)
def parse_mark(text: str, option: str = "--mark") -> tuple[int, int]:
    """`VALUE[/MASK]` (32-bit each) → (value, mask); the mask defaults to 0xffffffff."""
    value_text, slash, mask_text = text.partition("/")
    try:
        value = _c_integer(value_text)
        mask = _c_integer(mask_text) if slash else 0xFFFFFFFF
    except ValueError:
        raise ValueError(f"not a number (VALUE[/MASK], e.g. 0x4000/0x4000) for {option}") \
            from None
    if value > 0xFFFFFFFF or mask > 0xFFFFFFFF:
        raise ValueError(f"out of range for {option} (32 bits)")
    return value, mask


@lru_cache(maxsize=1024)
def parse_probability(text: str) -> Fraction:
    """`--probability P` (0 ≤ P ≤ 1) as the kernel keeps it: a 31-bit threshold (xt_statistic,
    lround(P * 2^31)), so the printed 0.33333333349 is exactly 715827883 / 2^31."""
    try:
        p = float(text)
    except ValueError:
        raise ValueError("not a number from 0 to 1") from None
    if math.isnan(p):
        raise ValueError("not a number (iptables-restore stores it as 0, the kernel never "
                         "matches)")
    if not 0.0 <= p <= 1.0:
        raise ValueError("out of range (0-1)")
    return Fraction(round(p * 2**31), 2**31)


@lru_cache(maxsize=1024)
def parse_ip_range(text: str) -> tuple[Address, Address]:
    """iprange's `FROM[-TO]`."""
    lo, dash, hi = text.partition("-")
    try:
        low = ip_address(lo)
        high = ip_address(hi) if dash else low
    except ValueError:
        bad = lo if not _is_ip(lo) else hi
        raise ValueError(f'bad value "{bad}" in range "{text}"') from None
    if low.version != high.version:
        raise ValueError(f'range "{text}" mixes IPv4 and IPv6')
    return low, high


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class NatTo:
    """A DNAT/SNAT `--to-destination`/`--to-source` value: `[ADDR[-ADDR]][:PORT[-PORT]]`."""

    address: Address | None          # None: keep the packet's address (`:PORT`)
    address_high: Address | None     # the end of an address range, else None
    port: int | None                 # None: keep the packet's port
    port_high: int | None

    @property
    def is_range(self) -> bool:
        return self.address_high is not None or self.port_high is not None


@lru_cache(maxsize=4096)
def parse_nat_to(text: str) -> NatTo:
    """`10.0.0.1:80`, `[fd00::1]:80`, `fd00::1`, `:80`, `10.0.0.1-10.0.0.9:80-90`."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f'bad address "{text}"')
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    lo, high = _nat_addresses(host, text)
    port_lo, port_hi = _nat_ports(port_text)
    return NatTo(lo, high, port_lo, port_hi)


def _nat_addresses(host: str, text: str) -> tuple[Address | None, Address | None]:
    if not host:
        if text.startswith(":") and len(text) > 1:
            return None, None
        raise ValueError(f'bad IP address "{text}"')
    lo, dash, hi = host.partition("-")
    try:
        return ip_address(lo), (ip_address(hi) if dash else None)
    except ValueError:
        raise ValueError(f'bad IP address "{host}"') from None


def _nat_ports(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    lo, dash, hi = text.partition("-")
    for part in (lo, hi) if dash else (lo,):
        if not (part.isascii() and part.isdigit()) or int(part) > 65535:
            raise ValueError(f'port "{text}" not valid')
    return int(lo), (int(hi) if dash else None)
