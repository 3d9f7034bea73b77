"""Typed reads of API object fields, for the converter. Each names the object and the field
when the value has the wrong type or is out of range, as the API server's validation would
("Service shop/web: spec.ports[0].port: must be between 1 and 65535, got -1"): a snapshot is
a file anyone can edit, and what it holds must never reach the model unchecked.
"""

from __future__ import annotations

import ipaddress
from typing import Any

Obj = dict[str, Any]


class ConversionError(ValueError):
    """An API object that does not have the shape the API defines."""


def show(value: Any) -> str:
    """A short description of a bad value for an error line (never the whole of it)."""
    if isinstance(value, dict | list):
        return f"a{'n object' if isinstance(value, dict) else ' list'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def field(obj: Obj, key: str, where: str) -> tuple[Any, str]:
    """The value of `key` (None when absent) and its location for messages."""
    return obj.get(key), f"{where}.{key}" if where and not where.endswith(": ") else \
        f"{where}{key}"


def mapping(obj: Obj, key: str, where: str) -> Obj:
    value, at = field(obj, key, where)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConversionError(f"{at}: expected an object, got {show(value)}")
    return value


def objects(obj: Obj, key: str, where: str) -> list[tuple[Obj, str]]:
    """A list of objects, each with its location (`spec.ports[2]`)."""
    value, at = field(obj, key, where)
    out = []
    for index, item in enumerate(_list(value, at)):
        if not isinstance(item, dict):
            raise ConversionError(f"{at}[{index}]: expected an object, got {show(item)}")
        out.append((item, f"{at}[{index}]"))
    return out


def strings(obj: Obj, key: str, where: str) -> tuple[str, ...]:
    value, at = field(obj, key, where)
    return tuple(_str(item, f"{at}[{i}]") for i, item in enumerate(_list(value, at)))


def text(obj: Obj, key: str, where: str, default: str | None = None) -> str | None:
    """An optional string field; `default` when absent or empty."""
    value, at = field(obj, key, where)
    if value is None or value == "":
        return default
    return _str(value, at)


def flag(obj: Obj, key: str, where: str) -> bool | None:
    """An optional boolean field."""
    value, at = field(obj, key, where)
    if value is None or isinstance(value, bool):
        return value
    raise ConversionError(f"{at}: expected true or false, got {show(value)}")


def integer(obj: Obj, key: str, where: str, low: int = -(2 ** 63),
            high: int | None = None) -> int | None:
    """An optional integer field (decimal strings accepted), within [low, high] when given."""
    value, at = field(obj, key, where)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or \
            (isinstance(value, str) and not _decimal(value)):
        raise ConversionError(f"{at}: expected an integer, got {show(value)}")
    number = int(value)
    if high is not None and not low <= number <= high:
        raise ConversionError(f"{at}: must be between {low} and {high}, got {number}")
    if number < low:
        raise ConversionError(f"{at}: must be at least {low}, got {number}")
    return number


def port(obj: Obj, key: str, where: str) -> int | None:
    """An optional port number, 1-65535."""
    return integer(obj, key, where, 1, 65535)


def ip(value: Any, at: str) -> str:
    """An IPv4 or IPv6 address, as written."""
    address = _str(value, at)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConversionError(f"{at}: not an IP address: {show(address)}") from None
    return address


def cidr(value: Any, at: str) -> str:
    """A network in CIDR notation, as written (host bits allowed, as the API allows them)."""
    network = _str(value, at)
    try:
        ipaddress.ip_network(network.strip(), strict=False)
    except ValueError:
        raise ConversionError(f"{at}: not a CIDR: {show(network)}") from None
    return network


def labels(obj: Obj, key: str, where: str) -> dict[str, str]:
    """A map of strings (labels, a selector); scalar values are taken as their text."""
    value, at = field(obj, key, where)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConversionError(f"{at}: expected a map of strings, got {show(value)}")
    out = {}
    for k, v in value.items():
        if isinstance(v, dict | list) or v is None or isinstance(k, dict | list | tuple):
            raise ConversionError(f"{at}.{k}: expected a string, got {show(v)}")
        out[str(k)] = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) \
            else str(v)
    return out


def _list(value: Any, at: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConversionError(f"{at}: expected a list, got {show(value)}")
    return value


def _str(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise ConversionError(f"{at}: expected a string, got {show(value)}")
    return value


def _decimal(value: str) -> bool:
    digits = value[1:] if value[:1] == "-" else value
    return digits.isascii() and digits.isdigit()
